"""Fetch through the wire against a broker subprocess: long polling woken by a produce
on another connection, min_bytes, max_bytes and partition_max_bytes, OFFSET_OUT_OF_RANGE,
unknown partitions and KIP-320 leader-epoch checks."""

from __future__ import annotations

import select
import time
from typing import Any

from impl.wire import records
from spec.errors import ErrorCode
from tests.impl import kio_requests as kr
from tests.impl.conftest import BrokerProcess, StartBroker
from tests.impl.data_helpers import (
    batch,
    create_topic,
    fetch_one,
    fetch_request,
    headers,
    list_offsets,
    produce,
    values,
)
from tests.impl.wire_client import WireClient

# Long enough that an answer before it can only come from being woken by the produce.
LONG_WAIT_MS = 120_000
CLIENT_DEADLINE_S = 60.0
RETENTION_DEADLINE_S = 30.0


def _answer_pending(client: WireClient) -> bool:
    """Whether a response has started to arrive on ``client`` (never blocks)."""
    ready, _, _ = select.select([client.sock], [], [], 0)
    return bool(ready)


def _receive_fetch(client: WireClient, request: Any) -> Any:
    _, response = client.receive(kr.FETCH, request.__version__)
    return response


def test_long_poll_is_woken_by_a_produce_on_another_connection(
    broker: BrokerProcess,
) -> None:
    with (
        WireClient(broker.host, broker.port, timeout_s=CLIENT_DEADLINE_S) as consumer,
        broker.client() as producer,
    ):
        create_topic(producer, "t")
        request = fetch_request("t", [(0, 0, 1048576)], max_wait_ms=LONG_WAIT_MS, min_bytes=1)
        consumer.send(request)
        # A round trip on the other connection: the broker has read the fetch by now.
        assert fetch_one(producer, "t", 0, 0).high_watermark == 0
        assert not _answer_pending(consumer)
        assert produce(producer, "t", 0, batch([b"wake"])).error_code == ErrorCode.NONE
        response = _receive_fetch(consumer, request)
        part = response.responses[0].partitions[0]
        assert part.error_code == ErrorCode.NONE
        assert values(part.records) == [(0, b"wake")]
        assert part.high_watermark == 1


def test_long_poll_waits_for_min_bytes(broker: BrokerProcess) -> None:
    first, second = batch([b"1" * 100]), batch([b"2" * 100])
    with (
        WireClient(broker.host, broker.port, timeout_s=CLIENT_DEADLINE_S) as consumer,
        broker.client() as producer,
    ):
        create_topic(producer, "t")
        request = fetch_request(
            "t", [(0, 0, 1048576)], max_wait_ms=LONG_WAIT_MS, min_bytes=len(first) + 1
        )
        consumer.send(request)
        produce(producer, "t", 0, first)
        fetch_one(producer, "t", 0, 0)  # a round trip after the first append
        assert not _answer_pending(consumer)
        produce(producer, "t", 0, second)
        part = _receive_fetch(consumer, request).responses[0].partitions[0]
        assert values(part.records) == [(0, b"1" * 100), (1, b"2" * 100)]


def test_max_wait_ends_a_fetch_without_data(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        produce(client, "t", 0, batch([b"a"]))
        response = client.request(
            fetch_request("t", [(0, 1, 1048576)], max_wait_ms=100, min_bytes=1)
        )
        part = response.responses[0].partitions[0]
        assert part.error_code == ErrorCode.NONE
        assert not part.records
        assert part.high_watermark == 1


def test_partition_max_bytes_returns_whole_batches_and_at_least_one(
    broker: BrokerProcess,
) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        batches = [batch([bytes([65 + i]) * 1000]) for i in range(3)]
        for b in batches:
            produce(client, "t", 0, b)
        size = len(batches[0])

        def fetched(limit: int) -> list[int]:
            response = client.request(fetch_request("t", [(0, 0, limit)]))
            return [h.base_offset for h in headers(response.responses[0].partitions[0].records)]

        assert fetched(1) == [0]  # smaller than a batch: still one whole batch
        assert fetched(size) == [0]
        assert fetched(2 * size + size // 2) == [0, 1]
        assert fetched(10 * size) == [0, 1, 2]


def test_response_max_bytes_spans_partitions(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t", partitions=2)
        b0, b1 = batch([b"p0" * 500]), batch([b"p1" * 500])
        produce(client, "t", 0, b0)
        produce(client, "t", 0, b0)
        produce(client, "t", 1, b1)
        both = [(0, 0, 1048576), (1, 0, 1048576)]
        # Room for one batch: the first partition gets it, the second nothing (no error).
        response = client.request(fetch_request("t", both, max_bytes=len(b0)))
        p0, p1 = response.responses[0].partitions
        assert [h.base_offset for h in headers(p0.records)] == [0]
        assert (p1.error_code, p1.records or b"", p1.high_watermark) == (ErrorCode.NONE, b"", 1)
        # max_bytes below one batch still returns the first partition's first batch.
        response = client.request(fetch_request("t", both, max_bytes=1))
        p0, p1 = response.responses[0].partitions
        assert [h.base_offset for h in headers(p0.records)] == [0]
        assert not p1.records
        # Enough for everything.
        response = client.request(fetch_request("t", both, max_bytes=10 * len(b0)))
        p0, p1 = response.responses[0].partitions
        assert len(headers(p0.records)) == 2
        assert len(headers(p1.records)) == 1


def test_offset_out_of_range_and_unknown_partitions(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        produce(client, "t", 0, batch([b"a", b"b"]))
        at_end = fetch_one(client, "t", 0, 2)
        assert (at_end.error_code, at_end.records or b"") == (ErrorCode.NONE, b"")
        beyond = fetch_one(client, "t", 0, 3)
        assert beyond.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        assert (beyond.high_watermark, beyond.log_start_offset) == (2, 0)
        assert fetch_one(client, "t", 0, -1).error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        # A fetch in the middle of a batch returns the whole batch holding the offset.
        assert values(fetch_one(client, "t", 0, 1).records) == [(0, b"a"), (1, b"b")]
        unknown = fetch_one(client, "t", 1, 0)
        assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert fetch_one(client, "nope", 0, 0).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_an_error_answers_a_long_poll_at_once(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port, timeout_s=CLIENT_DEADLINE_S) as client:
        create_topic(client, "t")
        response = client.request(
            fetch_request("t", [(0, 5, 1048576)], max_wait_ms=LONG_WAIT_MS, min_bytes=1)
        )
        assert response.responses[0].partitions[0].error_code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_current_leader_epoch_newer_than_the_leader_is_unknown(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        produce(client, "t", 0, batch([b"a"]))
        assert fetch_one(client, "t", 0, 0, current_leader_epoch=0).error_code == ErrorCode.NONE
        newer = fetch_one(client, "t", 0, 0, current_leader_epoch=1)
        assert newer.error_code == ErrorCode.UNKNOWN_LEADER_EPOCH


def test_older_fetch_versions_read_the_same_batches(broker: BrokerProcess) -> None:
    with broker.client() as client:
        create_topic(client, "t")
        produce(client, "t", 0, batch([b"a", b"b"]))
        for version in (4, 7, 11, 12):
            part = fetch_one(client, "t", 0, 0, version=version)
            assert part.error_code == ErrorCode.NONE
            assert values(part.records) == [(0, b"a"), (1, b"b")]
            assert records.parse_header(part.records).partition_leader_epoch == 0


def test_fetch_below_the_log_start_after_retention_is_out_of_range(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(properties={"log.retention.check.interval.ms": "50"})
    with broker.client() as client:
        create_topic(client, "t", configs={"segment.bytes": "1024", "retention.bytes": "2048"})
        for i in range(12):
            produce(client, "t", 0, batch([bytes([65 + i]) * 400]))
        deadline = time.monotonic() + RETENTION_DEADLINE_S
        start = 0
        while start == 0:
            assert time.monotonic() < deadline, "retention did not advance the log start"
            start = list_offsets(client, "t", 0, -2).offset
            if start == 0:
                time.sleep(0.05)  # poll interval of the condition, not a synchronisation
        gone = fetch_one(client, "t", 0, 0)
        assert gone.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        assert gone.log_start_offset == start
        kept = fetch_one(client, "t", 0, start)
        assert kept.error_code == ErrorCode.NONE
        assert values(kept.records)[0][0] == start
        assert kept.log_start_offset == start
