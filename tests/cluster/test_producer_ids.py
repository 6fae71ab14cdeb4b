"""Producer ids in a three-broker cluster: InitProducerId on any broker hands out an id no
broker has handed out before, because each broker claims its blocks of 1000 ids from
ZooKeeper's /latest_producer_id_block (Kafka's ZkProducerIdManager), not from its own
data directory; a restarted broker claims a new block rather than starting again."""

from __future__ import annotations

import json
from itertools import cycle
from typing import Any

from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from impl.zk import layout
from spec.errors import ErrorCode
from tests.cluster.conftest import BrokerFactory
from tests.cluster.replication_support import start_three
from tests.impl.data_helpers import init_producer_id
from tests.impl.wire_client import WireClient


def _init(broker: BrokerProcess, version: int = 4) -> int:
    with WireClient(broker.host, broker.port) as client:
        answer: Any = init_producer_id(client, version)
    assert (answer.error_code, answer.producer_epoch) == (ErrorCode.NONE, 0), answer
    producer_id = int(answer.producer_id)
    assert producer_id >= 0
    return producer_id


def _latest_block(zk: KazooClient) -> dict[str, Any]:
    data, _ = zk.get(layout.LATEST_PRODUCER_ID_BLOCK)
    block: dict[str, Any] = json.loads(data)
    return block


def test_each_broker_of_a_fresh_cluster_gives_a_different_id(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    b = start_three(brokers, zk)
    ids = {i: _init(b[i]) for i in (1, 2, 3)}
    assert len(set(ids.values())) == 3, ids
    # Each broker took its own block of 1000; the znode holds the last one, as Kafka's.
    assert sorted(i // 1000 for i in ids.values()) == [0, 1, 2], ids
    last = _latest_block(zk)
    assert list(last) == ["version", "broker", "block_start", "block_end"]
    assert last["version"] == 1
    assert last["block_start"] == "2000" and last["block_end"] == "2999"
    assert last["broker"] == max(ids, key=lambda i: ids[i])
    assert ids[last["broker"]] == 2000


def test_many_calls_across_brokers_never_repeat(brokers: BrokerFactory, zk: KazooClient) -> None:
    b = start_three(brokers, zk)
    clients = {i: WireClient(b[i].host, b[i].port) for i in (1, 2, 3)}
    try:
        seen: list[int] = []
        per_broker: dict[int, list[int]] = {1: [], 2: [], 3: []}
        versions = cycle((0, 1, 2, 3, 4))
        for i in [1, 2, 3] * 400:
            answer: Any = init_producer_id(clients[i], next(versions))
            assert answer.error_code == ErrorCode.NONE, answer
            seen.append(int(answer.producer_id))
            per_broker[i].append(int(answer.producer_id))
    finally:
        for client in clients.values():
            client.close()
    assert len(set(seen)) == len(seen) == 1200
    # 400 ids per broker fit in one block each: the three blocks are 0-999, 1000-1999, 2000-2999.
    assert all(ids == list(range(ids[0], ids[0] + 400)) for ids in per_broker.values())
    assert _latest_block(zk)["block_end"] == "2999"


def test_a_restarted_broker_does_not_reuse_ids(brokers: BrokerFactory, zk: KazooClient) -> None:
    b = start_three(brokers, zk)
    before = [_init(b[1]) for _ in range(3)] + [_init(b[2])]
    assert b[1].stop() == 0
    b[1].restart()
    after = _init(b[1])
    assert after not in before
    assert after // 1000 > max(before) // 1000  # a new block: the one after broker 2's
    assert _latest_block(zk) == {
        "version": 1,
        "broker": 1,
        "block_start": str(after),
        "block_end": str(after + 999),
    }
    # A killed broker (no clean shutdown) claims a new block too.
    b[2].kill()
    b[2].restart()
    again = _init(b[2])
    assert again == after + 1000
