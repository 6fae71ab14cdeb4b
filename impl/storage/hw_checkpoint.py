"""The high-watermark checkpoint of a data directory, Kafka's ``replication-offset-checkpoint``.

One file per data directory (as Kafka keeps it per log dir), in Kafka's checkpoint text
format: a version line (0), a count line, then one ``<topic> <partition> <high watermark>``
line per partition replica held there.  It is written atomically (tmp + fsync + rename, see
``files``) by the replica manager, periodically and at a clean shutdown, and read on start
so that a restarted replica's high watermark begins where it was.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from impl.storage.errors import StorageError
from impl.storage.files import replace_atomically
from spec.state import TopicPartition

VERSION = 0
HIGH_WATERMARK_CHECKPOINT = "replication-offset-checkpoint"


def checkpoint_path(data_dir: str) -> str:
    return os.path.join(data_dir, HIGH_WATERMARK_CHECKPOINT)


def write_high_watermarks(data_dir: str, high_watermarks: Mapping[TopicPartition, int]) -> None:
    """Replace the data directory's checkpoint with ``high_watermarks``."""
    entries = sorted(high_watermarks.items())
    lines = [str(VERSION), str(len(entries))]
    lines += [f"{tp.topic} {tp.partition} {offset}" for tp, offset in entries]
    replace_atomically(checkpoint_path(data_dir), ("\n".join(lines) + "\n").encode("ascii"))


def read_high_watermarks(data_dir: str) -> dict[TopicPartition, int]:
    """The checkpointed high watermarks ({} when there is no checkpoint yet); raises
    StorageError when the file is malformed."""
    path = checkpoint_path(data_dir)
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise StorageError(f"cannot read {path}: {e}") from None
    try:
        version, count = int(lines[0]), int(lines[1])
        out: dict[TopicPartition, int] = {}
        for line in lines[2:]:
            if not line:
                continue
            topic, partition, offset = line.split(" ")
            out[TopicPartition(topic, int(partition))] = int(offset)
    except (IndexError, ValueError):
        raise StorageError(f"malformed checkpoint file {path}") from None
    if version != VERSION:
        raise StorageError(f"checkpoint {path} has unknown version {version}")
    if count != len(out):
        raise StorageError(f"checkpoint {path} expects {count} entries, has {len(out)}")
    return out
