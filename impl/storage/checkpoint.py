"""Checkpoint files in Kafka's text format, written atomically (tmp + fsync + rename).

Layout (Kafka's ``CheckpointFile``)::

    <version>            0
    <count>              number of entry lines
    <entry>              one per line, fields separated by one space

``leader-epoch-checkpoint`` entries are ``<epoch> <start offset>``.  The per-partition
``log-start-offset-checkpoint`` and ``recovery-point-offset-checkpoint`` files hold one
entry, ``<offset>`` (Kafka keeps these per data directory with ``<topic> <partition>
<offset>`` entries; here the partition directory names the partition).
"""

from __future__ import annotations

from collections.abc import Sequence

from impl.storage.errors import StorageError
from impl.storage.files import replace_atomically

VERSION = 0
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"


def write_checkpoint(path: str, entries: Sequence[Sequence[int]]) -> None:
    """Replace ``path`` atomically with ``entries`` in the checkpoint format."""
    lines = [str(VERSION), str(len(entries))]
    lines += [" ".join(str(field) for field in entry) for entry in entries]
    data = ("\n".join(lines) + "\n").encode("ascii")
    replace_atomically(path, data)


def read_checkpoint(path: str, fields: int) -> list[tuple[int, ...]] | None:
    """The entries of the checkpoint at ``path`` (each ``fields`` integers), or None when
    there is no such file; raises StorageError when it is malformed."""
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise StorageError(f"cannot read checkpoint {path}: {e}") from None
    try:
        version, count = int(lines[0]), int(lines[1])
        entries = [tuple(int(x) for x in line.split(" ")) for line in lines[2:] if line]
    except (IndexError, ValueError):
        raise StorageError(f"malformed checkpoint file {path}") from None
    if version != VERSION:
        raise StorageError(f"checkpoint {path} has unknown version {version}")
    if count != len(entries) or any(len(e) != fields for e in entries):
        raise StorageError(f"checkpoint {path} expects {count} entries of {fields} fields")
    return entries


def write_offset(path: str, offset: int) -> None:
    """Write a single-offset checkpoint (log start offset, recovery point)."""
    write_checkpoint(path, [(offset,)])


def read_offset(path: str) -> int | None:
    """The offset in a single-offset checkpoint, or None when there is none."""
    entries = read_checkpoint(path, 1)
    if not entries:
        return None
    return entries[0][0]
