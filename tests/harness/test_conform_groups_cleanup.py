"""The group oracle and Kafka's periodic offsets cleanup, which ends an Empty group that
has no offsets (cleanupGroupMetadata, every offsets.retention.check.interval.ms) at a
moment the harness cannot see.  A target that may run it during a run (Kafka's default
10 minutes: a broker that has been up a while is anywhere in its period) gets an oracle
that allows it between any two steps; the local reference broker, started for the run
with no cleanup within a day, gets one that does not (so defects stay visible)."""

from __future__ import annotations

import attrs
import pytest

from harness.conform_group_ids import NEW
from harness.conform_group_ops import ADMIN, JoinGroup, LeaveGroup, OffsetCommit
from harness.conform_group_oracle import GroupOracle
from harness.conform_run import run_conformance
from harness.conform_session import open_session
from harness.conform_target import (
    LOCAL,
    LOCAL_BROKER_CONFIG,
    OFFSETS_CLEANUP_INTERVAL,
    TargetDeclaration,
    offsets_cleanup_may_run,
)
from harness.launcher import start_broker
from spec.config import SpecConfig
from spec.state import TopicPartition
from tests.harness.test_conform_groups import drive, exists

pytestmark = pytest.mark.timeout(180)

T0 = TopicPartition("t0", 0)


def _generations(o: GroupOracle) -> set[int | None]:
    return {g.generation_id if (g := c.coord.groups.get("g")) else None for c in o.candidates}


@pytest.mark.parametrize("cleanup", [True, False])
def test_an_empty_group_without_offsets_may_die_only_where_the_cleanup_may_run(
    cleanup: bool,
) -> None:
    o = GroupOracle(SpecConfig(), cleanup=cleanup)
    drive(o, JoinGroup(0, NEW, True))
    o.send(LeaveGroup(0, 0, True), exists)  # Empty at generation 2, no offsets
    states = {d.state for d in o.settled_descriptions()}
    assert _generations(o) == ({None, 1, 2} if cleanup else {1, 2})
    assert states == ({"Dead", "Empty"} if cleanup else {"Empty"})
    # An Empty group with an offset committed is never cleaned up.
    o = GroupOracle(SpecConfig(), cleanup=cleanup)
    drive(o, JoinGroup(0, NEW, True))
    drive(o, LeaveGroup(0, 0, True))
    drive(o, OffsetCommit(ADMIN, NEW, -1, ((T0, 5, ""),)))
    assert {d.state for d in o.settled_descriptions()} == {"Empty"}


def test_which_targets_may_run_the_cleanup_during_a_run() -> None:
    assert offsets_cleanup_may_run(TargetDeclaration())  # Kafka's 10 minutes
    assert not offsets_cleanup_may_run(LOCAL)
    assert LOCAL_BROKER_CONFIG[OFFSETS_CLEANUP_INTERVAL] == LOCAL.config[OFFSETS_CLEANUP_INTERVAL]


@pytest.mark.parametrize("seed", [1, 5])
def test_a_broker_cleaning_up_every_50_ms_conforms_when_it_says_so(seed: int) -> None:
    every_50_ms = {**LOCAL_BROKER_CONFIG, OFFSETS_CLEANUP_INTERVAL: "50"}
    declaration = attrs.evolve(LOCAL, config={**LOCAL.config, OFFSETS_CLEANUP_INTERVAL: "50"})
    with start_broker(config=every_50_ms) as broker:
        s = open_session(broker.host, broker.port, declaration)
        try:
            result = run_conformance(s, examples=12, seed=seed)
        finally:
            s.close()
    assert result.conformant, result.divergences
    assert result.features["groups"] == "checked"
