"""The server's behaviour: the readiness line, pipelined requests answered in order, a
long-polling Fetch that holds back neither other connections nor the records it waits
for, and a clean SIGTERM shutdown after which a restarted broker serves the same data."""

from __future__ import annotations

import select
import time

from impl.wire import codec
from impl.wire.records import build_batch
from spec.errors import ErrorCode
from tests.impl import kio_requests as k
from tests.impl.conftest import BrokerProcess, StartBroker


def test_prints_readiness_line(broker: BrokerProcess) -> None:
    assert broker.stdout() == f"kafkaref broker 1 listening on {broker.host}:{broker.port}\n"


def test_pipelined_requests_are_answered_in_order(broker: BrokerProcess) -> None:
    with broker.client() as client:
        client.request(k.create_topics([("p", 1, 1)]))
        requests = [
            k.api_versions(3),
            k.metadata(["p"]),
            k.produce("p", 0, build_batch([(None, b"1")])),
            k.metadata(None, 1),
            k.produce("p", 0, build_batch([(None, b"2")])),
            k.fetch("p", 0, 0),
            k.describe_cluster(),
        ] * 5
        blob = b"".join(codec.encode_request(r, 1000 + i, "pipe") for i, r in enumerate(requests))
        client.send_raw(blob)
        offsets = []
        for i, r in enumerate(requests):
            correlation_id, response = client.receive(r.__api_key__, r.__version__)
            assert correlation_id == 1000 + i
            if r.__api_key__ == k.PRODUCE:
                offsets.append(int(response.responses[0].partition_responses[0].base_offset))
    assert offsets == list(range(10))


def test_long_poll_fetch_blocks_only_its_own_connection(broker: BrokerProcess) -> None:
    with broker.client() as setup:
        setup.request(k.create_topics([("lp", 1, 1)]))
    with broker.client() as waiting, broker.client() as other:
        correlation_id = waiting.send(k.fetch("lp", 0, 0, max_wait_ms=60_000, min_bytes=1))
        # Other connections are served while the fetch waits for data.
        for _ in range(3):
            assert other.request(k.metadata(["lp"])).topics[0].error_code == 0
        readable, _, _ = select.select([waiting.sock], [], [], 0)
        assert not readable  # the fetch cannot have been answered: no data, 60 s to go
        produced = other.request(k.produce("lp", 0, build_batch([(b"k", b"v")])))
        assert produced.responses[0].partition_responses[0].error_code == 0
        got, response = waiting.receive(k.FETCH, 12)
    assert got == correlation_id
    part = response.responses[0].partitions[0]
    assert part.high_watermark == 1
    assert part.records


def test_sigterm_shuts_down_cleanly_and_data_survives(start_broker: StartBroker) -> None:
    broker = start_broker()
    with broker.client() as client:
        client.request(k.create_topics([("durable", 2, 1)]))
        for value in (b"a", b"b", b"c"):
            client.request(k.produce("durable", 1, build_batch([(None, value)])))
    assert broker.stop() == 0
    assert "shut down cleanly" in broker.stderr()
    again = start_broker()
    with again.client() as client:
        part = client.request(k.fetch("durable", 1, 0)).responses[0].partitions[0]
    assert (part.error_code, part.high_watermark) == (0, 3)


def test_periodic_retention_advances_the_log_start_offset(start_broker: StartBroker) -> None:
    broker = start_broker({"log.retention.check.interval.ms": "50"})
    with broker.client() as client:
        created = client.request(
            k.create_topics([("r", 1, 1)], {"segment.bytes": "200", "retention.bytes": "200"})
        )
        assert created.topics[0].error_code == 0
        for i in range(5):
            value = b"%d" % i * 40
            produced = client.request(k.produce("r", 0, build_batch([(None, value)])))
            assert produced.responses[0].partition_responses[0].error_code == 0
        deadline = time.monotonic() + 30
        while True:
            part = client.request(k.fetch("r", 0, 0)).responses[0].partitions[0]
            if part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                break
            assert time.monotonic() < deadline, "retention did not run"
            time.sleep(0.05)  # poll interval while waiting for the condition
        assert part.log_start_offset > 0
        assert part.high_watermark == 5
