"""The controller's partition-state rules, as pure functions (spec.replication's
partition_update on a ZooKeeper LeaderAndIsr):

- a new partition: leader = first live replica in assignment order, ISR = the live
  replicas, leader epoch 0;
- afterwards: unregistered brokers leave the ISR (the last member stays, so it can be
  elected cleanly when it returns); a leader that is gone is replaced by the first live
  ISR member in assignment order; with none the partition goes offline (leader -1, ISR
  kept) unless unclean.leader.election.enable lets the first live replica lead alone;
  every change bumps the leader epoch."""

from __future__ import annotations

from collections.abc import Collection

from impl.zk.layout import INITIAL_LEADER_EPOCH, NO_LEADER, LeaderAndIsr


def initial_state(
    assignment: tuple[int, ...], live: Collection[int], controller_epoch: int
) -> LeaderAndIsr | None:
    """A new partition's first state, or None while none of its replicas is live."""
    isr = tuple(r for r in assignment if r in live)
    if not isr:
        return None
    return LeaderAndIsr(isr[0], INITIAL_LEADER_EPOCH, isr, controller_epoch, zk_version=0)


def partition_update(
    state: LeaderAndIsr,
    assignment: tuple[int, ...],
    live: Collection[int],
    unclean: bool,
    controller_epoch: int,
) -> LeaderAndIsr | None:
    """The state the controller writes now, or None when nothing needs to change."""
    live_isr = tuple(r for r in state.isr if r in live)
    isr = live_isr if live_isr else state.isr
    if state.leader != NO_LEADER and state.leader in live:
        leader = state.leader
    else:
        leader = next((r for r in assignment if r in live_isr), NO_LEADER)
        if leader == NO_LEADER and unclean:
            leader = next((r for r in assignment if r in live), NO_LEADER)
            if leader != NO_LEADER:
                isr = (leader,)
    if leader == state.leader and set(isr) == set(state.isr):
        return None
    return LeaderAndIsr(
        leader=leader,
        leader_epoch=state.leader_epoch + 1,
        isr=isr,
        controller_epoch=controller_epoch,
        zk_version=state.zk_version + 1,
    )
