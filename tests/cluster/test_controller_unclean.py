"""Unclean leader election by the controller of real broker processes: an RF2 partition
whose ISR is only its dead leader gets the other replica, once it is live again, as leader
when unclean.leader.election.enable is true (as the broker default or as the topic's
config), and stays offline (leader -1, ISR kept) when it is false; the offline one is
led again, cleanly, when its last ISR member returns."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from kazoo.client import KazooClient

from impl.wire import records
from impl.zk import layout
from impl.zk.layout import NO_LEADER, LeaderAndIsr
from spec.errors import ErrorCode
from tests.cluster.conftest import BrokerFactory, wait_for, wait_value
from tests.cluster.replication_support import start_three
from tests.cluster.test_controller import FAILOVER_DEADLINE_S, controller
from tests.impl import kio_requests as kr
from tests.impl.wire_client import WireClient

pytestmark = pytest.mark.timeout(240)

UNCLEAN = "unclean.leader.election.enable"
# Names in the controller's pass order (sorted): the clean topic is looked at first, so
# once the unclean one has its new leader the clean one was judged with the same brokers.
CLEAN, DIRTY = "a-clean", "b-unclean"


def create_with_assignment(
    broker: Any, name: str, replicas: tuple[int, ...], configs: dict[str, str]
) -> int:
    """CreateTopics v7 with an explicit assignment of one partition; the error code."""
    api = kr.CREATE_TOPICS
    assignment = kr.nested(
        api, 7, "CreatableReplicaAssignment", partition_index=0, broker_ids=replicas
    )
    topic = kr.nested(
        api,
        7,
        "CreatableTopic",
        name=name,
        num_partitions=-1,
        replication_factor=-1,
        assignments=(assignment,),
        configs=tuple(
            kr.nested(api, 7, "CreatableTopicConfig", name=k, value=v) for k, v in configs.items()
        ),
    )
    request = kr.request(api, 7, topics=(topic,), timeout=kr.ms(30000), validate_only=False)
    with WireClient(broker.host, broker.port) as client:
        response = client.request(request)
    return int(response.topics[0].error_code)


def state(zk: KazooClient, topic: str) -> LeaderAndIsr | None:
    path = layout.state_path(topic, 0)
    if zk.exists(path) is None:
        return None
    data, stat = zk.get(path)
    return layout.decode_leader_and_isr(data, stat.version)


def produce(broker: Any, topic: str) -> ErrorCode:
    data = records.build_batch([(None, b"v")], timestamp=1000)
    with WireClient(broker.host, broker.port) as client:
        response = client.request(kr.produce(topic, 0, data, acks=1))
    return ErrorCode(int(response.responses[0].partition_responses[0].error_code))


@pytest.mark.parametrize("source", ["broker default", "topic config"])
def test_unclean_election_only_where_enabled(
    brokers: BrokerFactory, zk: KazooClient, source: str
) -> None:
    if source == "broker default":
        broker_config = {UNCLEAN: "true"}
        topic_configs = {CLEAN: {UNCLEAN: "false"}, DIRTY: {}}
    else:
        broker_config = {}
        topic_configs = {CLEAN: {}, DIRTY: {UNCLEAN: "true"}}
    b = start_three(brokers, zk, broker_config)
    ctl = wait_for(lambda: controller(zk), what="a controller")
    leader, follower = (i for i in (1, 2, 3) if i != ctl[0])
    for name in (CLEAN, DIRTY):
        assert create_with_assignment(b[1], name, (leader, follower), topic_configs[name]) == 0
        first = wait_for(partial(state, zk, name), what=f"{name}'s state")
        assert first.leader == leader and set(first.isr) == {leader, follower}

    # The follower dies: the ISR is the leader alone.  Then the leader dies too.
    b[follower].kill()
    for name in (CLEAN, DIRTY):
        wait_value(
            partial(state, zk, name),
            lambda s: s is not None and s.isr == (leader,) and s.leader == leader,
            FAILOVER_DEADLINE_S,
            f"{name}'s ISR shrunk to the leader",
        )
    b[leader].kill()
    offline: dict[str, LeaderAndIsr] = {}
    for name in (CLEAN, DIRTY):
        s = wait_value(
            partial(state, zk, name),
            lambda s: s is not None and s.leader == NO_LEADER,
            FAILOVER_DEADLINE_S,
            f"{name} offline",
        )
        assert s is not None and s.isr == (leader,)
        offline[name] = s

    # The out-of-sync replica returns: elected only where unclean election is enabled.
    b[follower].restart()
    elected = wait_value(
        lambda: state(zk, DIRTY),
        lambda s: s is not None and s.leader != NO_LEADER,
        FAILOVER_DEADLINE_S,
        f"{DIRTY} led again",
    )
    assert elected is not None
    assert elected.leader == follower and elected.isr == (follower,)
    assert elected.leader_epoch == offline[DIRTY].leader_epoch + 1
    assert state(zk, CLEAN) == offline[CLEAN]  # untouched: still leader -1, ISR kept
    wait_for(lambda: produce(b[follower], DIRTY) == ErrorCode.NONE, what="the unclean leader")
    assert produce(b[follower], CLEAN) != ErrorCode.NONE  # no leader here

    # The last ISR member returns: the clean partition is led by it again.
    b[leader].restart()
    back = wait_value(
        lambda: state(zk, CLEAN),
        lambda s: s is not None and s.leader != NO_LEADER,
        FAILOVER_DEADLINE_S,
        f"{CLEAN} led again",
    )
    assert back is not None
    assert back.leader == leader and back.leader_epoch == offline[CLEAN].leader_epoch + 1
