"""The asyncio side of the group coordinator (impl.group.coordinator) where it answers
without the rules: ListGroups while a partition of ``__consumer_offsets`` is loading."""

from __future__ import annotations

from types import SimpleNamespace

from impl.group.coordinator import GroupCoordinator
from impl.group.membership import Group, GroupPhase
from impl.group.rebalance import GroupConfig
from impl.group.records import GroupRecord
from spec.errors import ErrorCode


class StandInLog:
    """The coordinator's view of the offsets log: every group served here."""

    def __init__(self) -> None:
        self.is_loading = False

    def status(self, group_id: str) -> ErrorCode:
        return ErrorCode.NONE

    async def store_group(self, group_id: str, record: GroupRecord | None) -> ErrorCode:
        return ErrorCode.NONE

    def partition_for(self, group_id: str) -> int:
        return 0

    def has_offsets(self, group_id: str) -> bool:
        return False

    def loading(self) -> bool:
        return self.is_loading


def test_list_groups_says_when_a_partition_is_still_loading() -> None:
    """Kafka's handleListGroups: the groups held, with COORDINATOR_LOAD_IN_PROGRESS while
    any partition loads (the list may miss that partition's groups)."""
    log = StandInLog()
    coordinator = GroupCoordinator(GroupConfig(), SimpleNamespace(group_log=log))
    coordinator.state.groups["g"] = Group("g", phase=GroupPhase.STABLE, protocol_type="consumer")
    listed = [("g", "consumer", "Stable")]
    assert coordinator.list_groups(frozenset()) == (ErrorCode.NONE, listed)
    log.is_loading = True
    assert coordinator.list_groups(frozenset()) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, listed)
    assert coordinator.list_groups(frozenset({"empty"})) == (
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        [],
    )
