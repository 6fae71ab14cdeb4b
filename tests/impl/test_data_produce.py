"""Produce through the wire against a broker subprocess: acks 0/1/-1, contiguous offsets,
the stored batch (offsets and leader epoch rewritten, compressed bytes kept), corrupt and
too-large batches refused with the log intact, min.insync.replicas, and the idempotent
producer's sequence checks."""

from __future__ import annotations

from impl.wire import records
from spec.errors import ErrorCode
from tests.impl import kio_requests as kr
from tests.impl.conftest import BrokerProcess
from tests.impl.data_helpers import (
    batch,
    create_topic,
    fetch_one,
    headers,
    init_producer_id,
    produce,
    values,
)


def test_offsets_are_contiguous_across_requests_for_acks_1_and_all(
    broker: BrokerProcess,
) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        first = produce(client, "t", 0, batch([b"a", b"b", b"c"]), acks=1)
        second = produce(client, "t", 0, batch([b"d", b"e"]), acks=-1)
        third = produce(client, "t", 0, batch([b"f"]), acks=1)
        assert [r.error_code for r in (first, second, third)] == [ErrorCode.NONE] * 3
        assert [r.base_offset for r in (first, second, third)] == [0, 3, 5]
        assert first.log_start_offset == 0
        part = fetch_one(client, "t", 0, 0)
        assert part.error_code == ErrorCode.NONE
        assert part.high_watermark == part.last_stable_offset == 6
        assert values(part.records) == list(enumerate([b"a", b"b", b"c", b"d", b"e", b"f"]))
        # The stored batches carry their offsets and this leader's epoch (0).
        stored = headers(part.records)
        assert [(h.base_offset, h.partition_leader_epoch) for h in stored] == [
            (0, 0),
            (3, 0),
            (5, 0),
        ]


def test_acks_0_gets_no_response_and_is_appended(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        client.send(kr.produce("t", 0, batch([b"x", b"y"]), acks=0))
        # The next request on the connection is answered first: nothing came for acks=0.
        part = fetch_one(client, "t", 0, 0)
        assert values(part.records) == [(0, b"x"), (1, b"y")]


def test_acks_0_with_a_failed_partition_closes_the_connection(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        client.send(kr.produce("nope", 0, batch([b"x"]), acks=0))
        assert client.closed_by_peer()
    with broker.client() as client:
        assert fetch_one(client, "t", 0, 0).high_watermark == 0


def test_invalid_acks_and_unknown_partitions(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t", partitions=2)
        bad_acks = produce(client, "t", 0, batch([b"a"]), acks=2)
        assert bad_acks.error_code == ErrorCode.INVALID_REQUIRED_ACKS
        assert produce(client, "t", 2, batch([b"a"])).error_code == (
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        )
        assert produce(client, "nope", 0, batch([b"a"])).error_code == (
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        )
        assert fetch_one(client, "t", 0, 0).high_watermark == 0


def test_corrupt_batch_is_refused_and_the_log_stays_intact(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        assert produce(client, "t", 0, batch([b"good"])).base_offset == 0
        corrupt = bytearray(batch([b"evil"]))
        corrupt[-1] ^= 0xFF  # inside the CRC-covered records
        answer = produce(client, "t", 0, bytes(corrupt))
        assert answer.error_code == ErrorCode.CORRUPT_MESSAGE
        truncated = batch([b"short"])[:-3]
        assert produce(client, "t", 0, truncated).error_code == ErrorCode.CORRUPT_MESSAGE
        two_batches = batch([b"one"]) + batch([b"two"])
        assert produce(client, "t", 0, two_batches).error_code == ErrorCode.INVALID_RECORD
        part = fetch_one(client, "t", 0, 0)
        assert values(part.records) == [(0, b"good")]
        assert produce(client, "t", 0, batch([b"next"])).base_offset == 1


def test_batch_over_max_message_bytes_is_refused(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "small", configs={"max.message.bytes": "1000"})
        big = batch([b"x" * 1000])
        assert len(big) > 1000
        assert produce(client, "small", 0, big).error_code == ErrorCode.MESSAGE_TOO_LARGE
        fits = batch([b"x" * 100])
        assert produce(client, "small", 0, fits).error_code == ErrorCode.NONE
        assert values(fetch_one(client, "small", 0, 0).records) == [(0, b"x" * 100)]


def test_min_insync_replicas_is_enforced_for_acks_all(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "strict", configs={"min.insync.replicas": "2"})
        answer = produce(client, "strict", 0, batch([b"a"]), acks=-1)
        assert answer.error_code == ErrorCode.NOT_ENOUGH_REPLICAS
        assert produce(client, "strict", 0, batch([b"a"]), acks=1).base_offset == 0


def test_compressed_batch_is_stored_as_it_came(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        produce(client, "t", 0, batch([b"plain"]))
        gz = batch([b"z1", b"z2", b"z3"], compression=records.GZIP)
        assert produce(client, "t", 0, gz).base_offset == 1
        part = fetch_one(client, "t", 0, 1)
        stored = part.records
        # Everything from the magic byte on is unchanged (offset and epoch lie before it).
        assert len(stored) == len(gz)
        assert stored[16:] == gz[16:]
        assert values(stored) == [(1, b"z1"), (2, b"z2"), (3, b"z3")]


def test_idempotent_retry_gets_its_original_offset_and_a_gap_is_refused(
    broker: BrokerProcess,
) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        init = init_producer_id(client)
        assert init.error_code == ErrorCode.NONE
        pid, epoch = init.producer_id, init.producer_epoch
        assert epoch == 0

        def idem(vals: list[bytes], seq: int) -> bytes:
            return batch(vals, producer_id=pid, producer_epoch=epoch, base_sequence=seq)

        produce(client, "t", 0, batch([b"other"]))
        first = produce(client, "t", 0, idem([b"a", b"b"], 0))
        assert (first.error_code, first.base_offset) == (ErrorCode.NONE, 1)
        retry = produce(client, "t", 0, idem([b"a", b"b"], 0))
        assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, 1)
        gap = produce(client, "t", 0, idem([b"d"], 5))
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        following = produce(client, "t", 0, idem([b"c"], 2))
        assert (following.error_code, following.base_offset) == (ErrorCode.NONE, 3)
        part = fetch_one(client, "t", 0, 0)
        assert values(part.records) == [(0, b"other"), (1, b"a"), (2, b"b"), (3, b"c")]


def test_producer_ids_are_new_each_time(broker: BrokerProcess) -> None:
    with broker.client() as client:
        ids = [init_producer_id(client, version=v).producer_id for v in (0, 2, 4)]
    assert len(set(ids)) == 3
    assert all(i >= 0 for i in ids)
