"""Delivery semantics with real clients (docs/semantics.md explains them for users).

- At-most-once: a consumer that commits a batch's offsets before processing it and
  crashes mid-batch loses the records it had not processed; its successor resumes after
  them.
- At-least-once: a consumer that commits after processing and crashes mid-batch has the
  unprocessed part of the batch, and the processed-but-uncommitted part, redelivered to
  its successor; nothing is lost.
- Exactly-once into a partition, producer side: when a produce response is lost and the
  producer retries, the idempotent producer's retry is recognised by the broker (same
  producer id, epoch and sequence) and not appended twice; a producer without
  idempotence writes the record twice.
- Transactions (exactly-once across read-process-write) are not offered: a
  transactional producer cannot initialise.

Consumers run as subprocesses (``group_member``) so that their crash is a SIGKILL;
every wait is a condition with a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest

from harness.launcher import BrokerProcess, start_broker
from spec.errors import ErrorCode
from tests.impl import kio_requests as kr
from tests.impl.wire_client import WireClient
from tests.interop.dropping_proxy import DroppingProxy
from tests.interop.group_support import Member, members_cleanup
from tests.interop.group_wire import DEADLINE_S, GroupWire, find_coordinator
from tests.interop.support import (
    consume_confluent,
    create_topic,
    produce_all,
    unique_topic,
)

GROUP_CONFIG = {
    "offsets.topic.num.partitions": 5,
    "group.initial.rebalance.delay.ms": 0,
}
RECORDS = 30
BATCH = 10
PRODUCE, FIND_COORDINATOR, INIT_PRODUCER_ID = 0, 10, 22
TRANSACTION_APIS = {
    24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn",
    26: "EndTxn",
    27: "WriteTxnMarkers",
    28: "TxnOffsetCommit",
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """This module's broker: a small __consumer_offsets, no initial rebalance delay."""
    with start_broker(1, work_dir=tmp_path_factory.mktemp("broker"), config=GROUP_CONFIG) as b:
        yield b


def topic_with_records(bootstrap: str, prefix: str) -> str:
    """A one-partition topic holding ``v0`` .. ``v29`` at offsets 0 .. 29."""
    topic = create_topic(bootstrap, unique_topic(prefix), 1)
    produce_all(bootstrap, topic, [(None, f"v{i}".encode()) for i in range(RECORDS)], partition=0)
    return topic


def committed(bootstrap: str, group: str, topic: str) -> int:
    _, address = find_coordinator(bootstrap, group, DEADLINE_S)
    with GroupWire.to(address) as wire:
        return wire.committed(group, topic, [0])[0]


def crash_mid_batch(
    tmp_path: Path, bootstrap: str, topic: str, group: str, *, commit: str, hold_at: int
) -> Member:
    """A member that handles batches of 10 committing ``before`` or ``after`` processing,
    stuck after processing ``hold_at`` records, then SIGKILLed."""
    with members_cleanup() as started:
        member = Member.start(
            tmp_path,
            "crashing",
            client="confluent",
            bootstrap=bootstrap,
            group=group,
            topic=topic,
            commit=commit,
            batch=BATCH,
            full_batches=True,
            hold_at=hold_at,
        )
        started.append(member)
        member.wait(lambda m: m.snapshot("holding"), f"the member stuck after {hold_at} records")
        member.kill()
    return member


def resume(tmp_path: Path, bootstrap: str, topic: str, group: str, commit: str) -> Member:
    """A successor in the same group, run until it has processed the last record."""
    with members_cleanup() as started:
        member = Member.start(
            tmp_path,
            "successor",
            client="confluent",
            bootstrap=bootstrap,
            group=group,
            topic=topic,
            commit=commit,
            batch=BATCH,
        )
        started.append(member)
        member.wait(
            lambda m: any(o == RECORDS - 1 for _, o, _ in m.records()),
            "the successor processing the last record",
        )
        member.stop()
    return member


def test_at_most_once_a_crash_loses_the_records_in_flight(bootstrap: str, tmp_path: Path) -> None:
    topic = topic_with_records(bootstrap, "amo")
    group = unique_topic("amo-group")
    crashed = crash_mid_batch(tmp_path, bootstrap, topic, group, commit="before", hold_at=3)
    first_batch = crashed.snapshot("batch")[0]["offsets"]
    assert first_batch == [[0, o] for o in range(BATCH)]
    assert crashed.committed() == {0: BATCH}  # the whole batch, before processing it
    assert [o for _, o, _ in crashed.records()] == [0, 1, 2]
    assert committed(bootstrap, group, topic) == BATCH

    successor = resume(tmp_path, bootstrap, topic, group, "before")
    after = [o for _, o, _ in successor.records()]
    assert after == list(range(BATCH, RECORDS))  # resumes at the committed offset
    processed = [o for _, o, _ in crashed.records()] + after
    lost = set(range(RECORDS)) - set(processed)
    assert lost == set(range(3, BATCH))  # the rest of the batch: committed, never processed
    assert len(processed) == len(set(processed))  # and nothing processed twice


def test_at_least_once_a_crash_redelivers_what_was_not_committed(
    bootstrap: str, tmp_path: Path
) -> None:
    topic = topic_with_records(bootstrap, "alo")
    group = unique_topic("alo-group")
    crashed = crash_mid_batch(tmp_path, bootstrap, topic, group, commit="after", hold_at=BATCH + 3)
    assert crashed.committed() == {0: BATCH}  # the first batch, after processing it
    assert [o for _, o, _ in crashed.records()] == list(range(BATCH + 3))
    assert committed(bootstrap, group, topic) == BATCH

    successor = resume(tmp_path, bootstrap, topic, group, "after")
    after = [o for _, o, _ in successor.records()]
    assert after == list(range(BATCH, RECORDS))  # resumes at the committed offset
    processed = [o for _, o, _ in crashed.records()] + after
    assert set(processed) == set(range(RECORDS))  # nothing lost
    twice = sorted(o for o in set(processed) if processed.count(o) > 1)
    assert twice == [BATCH, BATCH + 1, BATCH + 2]  # processed, not committed, redelivered
    assert [v for _, _, v in successor.records()] == [f"v{i}" for i in range(BATCH, RECORDS)]


@pytest.fixture
def proxy() -> Iterator[DroppingProxy]:
    """A proxy that loses the response to the first Produce request."""
    with DroppingProxy(drop_api_key=PRODUCE, drops=1) as p:
        yield p


@pytest.fixture
def proxied_broker(proxy: DroppingProxy, tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker that advertises the proxy, so that clients reach it only through it."""
    config = {"advertised.listeners": f"PLAINTEXT://{proxy.address}"}
    with start_broker(1, work_dir=tmp_path / "proxied", config=config) as b:
        proxy.start(b.host, b.port)
        yield b


@pytest.mark.parametrize(
    ("idempotence", "expected_log"),
    [(True, [b"first", b"second"]), (False, [b"first", b"first", b"second"])],
    ids=["idempotent", "not-idempotent"],
)
def test_a_retried_produce_is_written_once_only_by_the_idempotent_producer(
    proxied_broker: BrokerProcess,
    proxy: DroppingProxy,
    idempotence: bool,
    expected_log: list[bytes],
) -> None:
    topic = create_topic(proxy.address, unique_topic("retry"), 1)
    config = {"enable.idempotence": idempotence, "retries": 10, "retry.backoff.ms": 100}
    acked = produce_all(proxy.address, topic, [(None, b"first")], partition=0, config=config)
    assert proxy.dropped == 1  # the broker appended "first", the producer never heard so
    assert proxy.requests[PRODUCE] >= 2  # and sent it again
    acked += produce_all(proxy.address, topic, [(None, b"second")], partition=0, config=config)
    log = consume_confluent(proxied_broker.bootstrap, topic, {0: 0}, len(expected_log))
    assert [r.value for r in log] == expected_log
    # "first" is acknowledged at the offset of its last copy.
    assert [r.offset for r in acked] == [len(expected_log) - 2, len(expected_log) - 1]


def test_transactions_are_not_offered(bootstrap: str) -> None:
    """No transaction coordinator: FindCoordinator for a transactional id and
    InitProducerId with one are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, an
    error no client retries; the transaction APIs are not served at all; a
    transactional confluent-kafka producer cannot initialise."""
    host, port = bootstrap.rsplit(":", 1)
    with WireClient(host, int(port)) as client:
        served = {k.api_key for k in client.request(kr.api_versions()).api_keys}
        coordinator = client.request(
            kr.request(FIND_COORDINATOR, 3, key="payments-app", key_type=1)
        )
        init = client.request(
            kr.request(
                INIT_PRODUCER_ID,
                4,
                transactional_id="payments-app",
                transaction_timeout=kr.ms(60000),
                producer_id=-1,
                producer_epoch=-1,
            )
        )
    assert served.isdisjoint(TRANSACTION_APIS), served & TRANSACTION_APIS.keys()
    assert coordinator.error_code == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert init.error_code == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert (init.producer_id, init.producer_epoch) == (-1, -1)

    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": "payments-app", "log_level": 2}
    )
    with pytest.raises(confluent_kafka.KafkaException) as raised:
        producer.init_transactions(30)
    error = raised.value.args[0]
    assert error.code() == confluent_kafka.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, error


@pytest.mark.parametrize("isolation", ["read_committed", "read_uncommitted"])
def test_both_isolation_levels_read_up_to_the_high_watermark(
    bootstrap: str, isolation: str
) -> None:
    """With no transactions nothing is ever pending: the last stable offset is the high
    watermark and read_committed reads what read_uncommitted reads."""
    topic = topic_with_records(bootstrap, f"iso-{isolation}")
    got = consume_confluent(
        bootstrap, topic, {0: 0}, RECORDS, config={"isolation.level": isolation}
    )
    assert [(r.offset, r.value) for r in got] == [(i, f"v{i}".encode()) for i in range(RECORDS)]
