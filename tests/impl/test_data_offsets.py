"""ListOffsets and OffsetForLeaderEpoch through the wire, the KIP-320 epoch check of a
partition (fenced and unknown epochs), and a broker killed with SIGKILL that serves
everything it acknowledged after a restart."""

from __future__ import annotations

import time
from pathlib import Path

from impl.broker.partition import PartitionState
from impl.storage.config import LogConfig
from impl.storage.partition_log import PartitionLog
from spec.errors import ErrorCode
from spec.state import TopicPartition
from tests.impl.conftest import StartBroker
from tests.impl.data_helpers import (
    batch,
    create_topic,
    fetch_one,
    init_producer_id,
    list_offsets,
    offset_for_leader_epoch,
    produce,
    values,
)
from tests.impl.wire_client import WireClient

EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3


def test_list_offsets_earliest_latest_and_by_timestamp(start_broker: StartBroker) -> None:
    broker = start_broker()
    with broker.client() as client:
        create_topic(client, "t")
        empty_latest = list_offsets(client, "t", 0, LATEST)
        assert (empty_latest.error_code, empty_latest.offset) == (ErrorCode.NONE, 0)
        produce(client, "t", 0, batch([b"a", b"b"], timestamp=1000))  # offsets 0, 1
        produce(client, "t", 0, batch([b"c"], timestamp=3000))  # offset 2
        produce(client, "t", 0, batch([b"d", b"e"], timestamp=2000))  # offsets 3, 4

        earliest = list_offsets(client, "t", 0, EARLIEST)
        assert (earliest.error_code, earliest.offset, earliest.leader_epoch) == (
            ErrorCode.NONE,
            0,
            0,
        )
        latest = list_offsets(client, "t", 0, LATEST)
        assert (latest.offset, latest.timestamp, latest.leader_epoch) == (5, -1, 0)

        def by_time(ts: int, version: int = 7) -> tuple[int, int]:
            answer = list_offsets(client, "t", 0, ts, version=version)
            assert answer.error_code == ErrorCode.NONE
            return answer.offset, answer.timestamp

        assert by_time(0) == (0, 1000)
        assert by_time(1000) == (0, 1000)
        assert by_time(1001) == (2, 3000)  # the first batch whose timestamps reach it
        assert by_time(2500) == (2, 3000)
        assert by_time(3001) == (-1, -1)
        assert by_time(MAX_TIMESTAMP) == (2, 3000)
        assert by_time(1500, version=1) == (2, 3000)

        assert list_offsets(client, "t", 1, LATEST).error_code == (
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        )
        newer = list_offsets(client, "t", 0, LATEST, current_leader_epoch=1)
        assert newer.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH


def test_offset_for_leader_epoch(start_broker: StartBroker) -> None:
    broker = start_broker()
    with broker.client() as client:
        create_topic(client, "t")
        # The leader's epoch starts at the log end offset when it becomes leader.
        empty = offset_for_leader_epoch(client, "t", 0, 0)
        assert (empty.error_code, empty.leader_epoch, empty.end_offset) == (ErrorCode.NONE, 0, 0)
        produce(client, "t", 0, batch([b"a", b"b", b"c"]))
        current = offset_for_leader_epoch(client, "t", 0, 0, current_leader_epoch=0)
        assert (current.error_code, current.leader_epoch, current.end_offset) == (
            ErrorCode.NONE,
            0,
            3,
        )
        above = offset_for_leader_epoch(client, "t", 0, 7)
        assert (above.error_code, above.leader_epoch, above.end_offset) == (
            ErrorCode.NONE,
            -1,
            -1,
        )
        newer = offset_for_leader_epoch(client, "t", 0, 0, current_leader_epoch=2)
        assert newer.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
        unknown = offset_for_leader_epoch(client, "gone", 0, 0)
        assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        for version in (2, 3):
            old = offset_for_leader_epoch(client, "t", 0, 0, version=version)
            assert (old.leader_epoch, old.end_offset) == (0, 3)


def test_current_leader_epoch_check_of_a_later_leader(tmp_path: Path) -> None:
    now = time.time_ns() // 1_000_000
    log = PartitionLog.open(str(tmp_path / "t-0"), LogConfig(), now)
    try:
        partition = PartitionState.lead_alone(TopicPartition("t", 0), log, 1, leader_epoch=3)
        assert partition.check_leader_epoch(-1) == ErrorCode.NONE
        assert partition.check_leader_epoch(3) == ErrorCode.NONE
        assert partition.check_leader_epoch(2) == ErrorCode.FENCED_LEADER_EPOCH
        assert partition.check_leader_epoch(4) == ErrorCode.UNKNOWN_LEADER_EPOCH
        assert log.end_offset_for_epoch(3) == (3, 0)
    finally:
        log.close()


def test_sigkill_then_restart_serves_everything_acknowledged(start_broker: StartBroker) -> None:
    broker = start_broker()
    with broker.client() as client:
        create_topic(client, "t", partitions=2)
        init = init_producer_id(client)
        pid = init.producer_id
        acked: dict[int, list[tuple[int, bytes | None]]] = {0: [], 1: []}
        for i in range(20):
            partition = i % 2
            value = f"v{i}".encode()
            answer = produce(client, "t", partition, batch([value]), acks=-1 if i % 3 else 1)
            assert answer.error_code == ErrorCode.NONE
            acked[partition].append((answer.base_offset, value))
        idem = batch([b"idem"], producer_id=pid, producer_epoch=0, base_sequence=0)
        first = produce(client, "t", 0, idem)
        acked[0].append((first.base_offset, b"idem"))
    broker.kill()

    restarted = start_broker()
    with restarted.client() as client:
        for partition in (0, 1):
            part = fetch_one(client, "t", partition, 0)
            assert values(part.records) == acked[partition]
            assert part.high_watermark == len(acked[partition])
            assert list_offsets(client, "t", partition, LATEST).offset == len(acked[partition])
        # The producer state was rebuilt from the log: the retry gets its first offset.
        retry = produce(client, "t", 0, idem)
        assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, first.base_offset)
        assert produce(client, "t", 1, batch([b"more"])).base_offset == len(acked[1])
        # Producer ids are never handed out twice.
        assert init_producer_id(client).producer_id > pid
        assert offset_for_leader_epoch(client, "t", 0, 0).end_offset == len(acked[0])


def test_producer_ids_survive_a_clean_restart_too(start_broker: StartBroker) -> None:
    broker = start_broker()
    with WireClient(broker.host, broker.port) as client:
        before = init_producer_id(client).producer_id
    assert broker.stop() == 0
    restarted = start_broker()
    with restarted.client() as client:
        assert init_producer_id(client).producer_id > before
