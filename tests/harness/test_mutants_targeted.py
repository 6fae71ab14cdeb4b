"""A seeded defect shown by a targeted test on a real broker as well as by ``kafkaref
conform``: the same scenario with the correct broker and with the defect, and the defect
changes what a client sees.

reuse-offsets-after-retention (conform's retention rules catch it too:
tests/harness/test_conform_retention.py): the broker's own retention pass
(every 100 ms) finds records written a day ago past ``log.retention.ms``.  The correct
broker keeps the active segment and the log end offset; the defective one starts the log
again at offset 0, and the next record reuses an offset consumers have already read.
(The cluster defects are in tests/cluster/test_mutants_cluster.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness import client_admin
from harness.client import KafkaClient
from harness.client_admin import NewTopic
from harness.launcher import start_broker
from impl import mutants
from impl.wire.records import build_batch
from spec.actions import EARLIEST_TIMESTAMP
from spec.errors import ErrorCode
from spec.state import TopicPartition

pytestmark = pytest.mark.timeout(120)

TP = TopicPartition("retained", 0)
DAY_MS = 86_400_000
DEADLINE_S = 30.0


def earliest(client: KafkaClient) -> int:
    got = client.list_offsets({TP: EARLIEST_TIMESTAMP})[TP]
    assert got.error == ErrorCode.NONE
    return got.offset


def first_record_gone(client: KafkaClient) -> bool:
    """Whether a fetch at offset 0 no longer returns the first record."""
    got = client.fetch({TP: 0}).partitions[TP]
    return got.error != ErrorCode.NONE or not got.records


def produce(client: KafkaClient, value: bytes, timestamp: int) -> int:
    batch = build_batch([(None, value)], timestamp=timestamp)
    answer = client.produce({TP: batch}, acks=-1)
    assert answer is not None and answer[TP].error == ErrorCode.NONE
    return answer[TP].base_offset


@pytest.mark.parametrize("mutant", [None, mutants.REUSE_OFFSETS_AFTER_RETENTION])
def test_retention_never_makes_offsets_restart(mutant: str | None, tmp_path: Path) -> None:
    config: dict[str, object] = {
        "log.retention.ms": 60_000,
        "log.retention.check.interval.ms": 100,
        "log.segment.bytes": 100,  # every batch gets a segment of its own
    }
    if mutant is not None:
        config[mutants.PROPERTY] = mutant
    with (
        start_broker(work_dir=tmp_path, config=config) as broker,
        KafkaClient(broker.host, broker.port) as client,
    ):
        client.connect()
        client.negotiate()
        created = client_admin.create_topics(client, [NewTopic(TP.topic, 1, 1)])
        assert created[TP.topic][0] == ErrorCode.NONE
        old = time.time_ns() // 1_000_000 - DAY_MS
        assert [produce(client, b"old-%d" % i, old) for i in range(3)] == [0, 1, 2]
        # Wait (with a deadline) until retention has deleted the expired first segment.
        deadline = time.monotonic() + DEADLINE_S
        while not first_record_gone(client):
            assert time.monotonic() < deadline, "retention never ran"
            time.sleep(0.05)
        new = produce(client, b"new", time.time_ns() // 1_000_000)
        if mutant is None:
            assert (earliest(client), new) == (2, 3)  # the active segment [2] stays
        else:
            assert (earliest(client), new) == (0, 0)  # offset 0 again, read long ago
