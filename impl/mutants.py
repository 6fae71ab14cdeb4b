"""Seeded defects ("mutants"): a registry of named, deliberate deviations from Kafka's
rules, each off unless a broker is started with it (broker property ``kafkaref.mutant``,
or ``kafkaref broker --mutant NAME``).  They exist to prove that the conformance harness
and the chaos checker catch what they claim to catch; nothing but the hook points named
in each entry reads this module, and a broker without a mutant behaves as if it did not
exist.

A hook point asks ``active(NAME)``; the names are module constants so a typo fails the
type check rather than silently never firing."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

PROPERTY = "kafkaref.mutant"


@attrs.frozen(slots=True)
class Mutant:
    """One defect: what it breaks (in Kafka's terms), where it is hooked, and which
    check is expected to catch it."""

    name: str
    summary: str
    hooked_in: str
    caught_by: str
    needs: str = "single broker"  # or "restart", "groups", "cluster", "retention"


LOCAL_NEEDS = frozenset({"single broker", "restart", "groups", "retention"})
"""What ``kafkaref conform --local`` provides: a defect with one of these needs must make
it exit 1; the others (``cluster``) are shown by targeted tests."""

_DEFECTS: list[Mutant] = []


def _defect(name: str, summary: str, hooked_in: str, caught_by: str, needs: str) -> str:
    _DEFECTS.append(Mutant(name, summary, hooked_in, caught_by, needs))
    return name


# --- the data path on one broker ----------------------------------------------------------

FETCH_OFF_BY_ONE = _defect(
    "fetch-off-by-one",
    "a consumer Fetch reads from the fetch offset + 1, so the record at the fetch offset is "
    "missing when it is the last of its batch",
    "impl/broker/fetch.py _read_one",
    "conform rule fetch (records differ)",
    "single broker",
)
FETCH_AT_LOG_END_OUT_OF_RANGE = _defect(
    "fetch-at-log-end-out-of-range",
    "a Fetch at exactly the log end offset is OFFSET_OUT_OF_RANGE (Kafka: an empty answer; "
    "the valid range is [log start, log end], both ends included)",
    "impl/broker/partition.py PartitionState.check_fetch_offset",
    "conform rule fetch (OFFSET_OUT_OF_RANGE instead of no records)",
    "single broker",
)
LIST_OFFSETS_LATEST_OFF_BY_ONE = _defect(
    "list-offsets-latest-off-by-one",
    "ListOffsets LATEST answers the offset of the last record (high watermark - 1) instead "
    "of the high watermark",
    "impl/broker/list_offsets.py _answer",
    "conform rule list_offsets",
    "single broker",
)
WRONG_LOG_START_OFFSET = _defect(
    "wrong-log-start-offset",
    "ListOffsets EARLIEST of an empty partition answers -1 (as a timestamp lookup that "
    "found nothing) instead of the log start offset",
    "impl/broker/list_offsets.py _answer",
    "conform rule list_offsets",
    "single broker",
)
MESSAGE_TOO_LARGE_ACCEPTED = _defect(
    "message-too-large-accepted",
    "a batch larger than max.message.bytes (message.max.bytes) is appended instead of "
    "refused with MESSAGE_TOO_LARGE",
    "impl/storage/partition_log.py PartitionLog.append",
    "conform rule produce_too_large",
    "single broker",
)
CRC_NOT_CHECKED = _defect(
    "crc-not-checked",
    "a produced batch whose CRC does not match is appended instead of refused with CORRUPT_MESSAGE",
    "impl/storage/partition_log.py PartitionLog.append",
    "conform rule produce_corrupt",
    "single broker",
)

# --- the idempotent producer --------------------------------------------------------------

DUPLICATE_ON_IDEMPOTENT_RETRY = _defect(
    "duplicate-on-idempotent-retry",
    "a retried idempotent batch (same producer id, epoch and sequence range as one of the "
    "last five) is appended again instead of answered with its original offsets",
    "impl/storage/producer_state.py ProducerStateManager.check",
    "conform rule retry_batch",
    "single broker",
)
OUT_OF_ORDER_SEQUENCE_ACCEPTED = _defect(
    "out-of-order-sequence-accepted",
    "an idempotent batch whose first sequence does not follow the last one (a gap, or a "
    "retry older than the last five batches) is appended instead of refused with "
    "OUT_OF_ORDER_SEQUENCE_NUMBER",
    "impl/storage/producer_state.py ProducerStateManager.check",
    "conform rule produce_out_of_sequence",
    "single broker",
)
FENCED_PRODUCER_EPOCH_ACCEPTED = _defect(
    "fenced-producer-epoch-accepted",
    "a batch from an older producer epoch than the partition has seen is appended instead "
    "of refused with INVALID_PRODUCER_EPOCH",
    "impl/storage/producer_state.py ProducerStateManager.check",
    "conform rule produce_stale_epoch (after bump_epoch), or retry_batch of an old batch",
    "single broker",
)

# --- recovery and retention ----------------------------------------------------------------

LOSE_TAIL_ON_RESTART = _defect(
    "lose-tail-on-restart",
    "log recovery at start-up drops the last batch of every non-empty log even when it is "
    "intact (acknowledged records lost by a restart)",
    "impl/storage/partition_log.py PartitionLog.open",
    "conform rule restart_broker, then fetch / list_offsets / produce",
    "restart",
)
REUSE_OFFSETS_AFTER_RETENTION = _defect(
    "reuse-offsets-after-retention",
    "when retention finds every segment expired it deletes the active one too and starts "
    "the log again at offset 0, so new records reuse offsets consumers have seen (Kafka "
    "rolls a new segment at the log end offset first)",
    "impl/storage/log_manager.py LogManager.apply_retention",
    "conform rules create_topic_with_retention, produce_retained, await_retention (its Fetch "
    "at the log end offset is OFFSET_OUT_OF_RANGE: the log started again at 0); "
    "tests/harness/test_mutants_targeted.py; chaos checker (inconsistent-offsets, issue 7)",
    "retention",
)

# --- replication (a cluster) -----------------------------------------------------------------

SERVE_ABOVE_HIGH_WATERMARK = _defect(
    "serve-above-high-watermark",
    "a consumer Fetch returns records up to the log end offset, not only below the high "
    "watermark (uncommitted records become visible and may later vanish)",
    "impl/broker/fetch.py _read_one",
    "conform --local (cluster: fetch, BelowHighWatermark); "
    "tests/cluster/test_mutants_cluster.py; chaos checker (sometimes: inconsistent-offsets)",
    "cluster",
)
ACK_BEFORE_REPLICATE = _defect(
    "ack-before-replicate",
    "an acks=all produce is answered as soon as the leader appended it, before the ISR has it",
    "impl/broker/produce.py handle_produce",
    "conform --local (cluster: list_offsets); tests/cluster/test_mutants_cluster.py; "
    "chaos checker (lost-write after the leader is isolated)",
    "cluster",
)
HW_PAST_ISR = _defect(
    "hw-past-isr",
    "the leader advances the high watermark to its log end offset without waiting for the "
    "ISR's followers (acks=all answered early, consumers see uncommitted records)",
    "impl/broker/partition.py PartitionState.maybe_advance_high_watermark",
    "conform --local (cluster: produce); tests/cluster/test_mutants_cluster.py; "
    "chaos checker (lost-write)",
    "cluster",
)
SKIP_TRUNCATION = _defect(
    "skip-truncation",
    "a follower never truncates its log (KIP-101/279 by leader epoch, or on "
    "OFFSET_OUT_OF_RANGE): divergent uncommitted records stay and replicas disagree",
    "impl/replication/fetcher.py ReplicaFetcher._truncate_to",
    "conform --local (cluster: lose_leader_with_tail, NoCommittedRecordLostGlobally); "
    "tests/cluster/test_mutants_cluster.py; chaos checker (inconsistent-offsets)",
    "cluster",
)
STALE_LEADER_ACCEPTS_PRODUCE = _defect(
    "stale-leader-accepts-produce",
    "a leader applies an ISR shrink that ZooKeeper did not accept (the conditional write was "
    "refused on the znode version: it has been fenced; or it could not reach ZooKeeper "
    "within a second: it is cut off, its session expiring) and acknowledges acks=all "
    "produces with the shrunken ISR: a zombie leader acknowledges writes the new leader "
    "never had, lost when it steps down",
    "impl/replication/manager.py ReplicaManager._write_isr",
    "conform --local (cluster: zombie_leader, a produce acknowledged where the spec allows "
    "only REQUEST_TIMED_OUT); tests/cluster/test_mutants_cluster.py; chaos not measured "
    "(its nemesis can cut a broker off from ZooKeeper)",
    "cluster",
)

# --- consumer groups (the group coordinator, impl/group/) --------------------------------------

COMMIT_IGNORES_GENERATION = _defect(
    "commit-ignores-generation",
    "an OffsetCommit from a member at an older generation (ILLEGAL_GENERATION in Kafka) is "
    "accepted and written, so a consumer that lost its partitions in a rebalance overwrites "
    "the new owner's committed offsets",
    "impl/group/requests.py validate_commit",
    "conform rule commit_offsets (a member's commit at generation - 1)",
    "groups",
)
TWO_MEMBERS_ONE_PARTITION = _defect(
    "two-members-one-partition",
    "SyncGroup hands every member the first assignment in the leader's SyncGroup instead of "
    "its own, so two members consume the same partitions (and others none)",
    "impl/group/requests.py sync_group",
    "conform rules sync_group / consumer_poll (a follower's SyncGroup answer, DescribeGroups)",
    "groups",
)
ASSIGNMENT_TO_WRONG_MEMBER = _defect(
    "assignment-to-wrong-member",
    "SyncGroup hands each member the assignment the leader made for the next member (in "
    "member id order), so every member consumes partitions meant for another",
    "impl/group/requests.py sync_group",
    "conform rules sync_group / consumer_poll (the SyncGroup answer, DescribeGroups)",
    "groups",
)
HEARTBEAT_IGNORES_REBALANCE = _defect(
    "heartbeat-ignores-rebalance",
    "a Heartbeat during PreparingRebalance is answered NONE instead of "
    "REBALANCE_IN_PROGRESS, so members never learn that they must rejoin (the rebalance "
    "waits for them until its timeout)",
    "impl/group/requests.py heartbeat",
    "conform rules heartbeat / consumer_poll (after another member's JoinGroup)",
    "groups",
)
GENERATION_NOT_BUMPED = _defect(
    "generation-not-bumped",
    "a rebalance of a group that had a generation keeps the generation instead of "
    "incrementing it, so commits and SyncGroups from the previous generation are not fenced",
    "impl/group/rebalance.py CoordinatorState.complete_join",
    "conform rules join_group / consumer_poll (the JoinGroup answer's generation)",
    "groups",
)
COMMITTED_OFFSET_LOST_ON_COORDINATOR_MOVE = _defect(
    "committed-offset-lost-on-coordinator-move",
    "a coordinator that loads a __consumer_offsets partition (after a restart, or when it "
    "becomes the partition's leader) skips the committed offsets of one group: the one "
    "whose last commit is the latest in the partition",
    "impl/group/offsets_load.py read_partition",
    "conform rule restart_broker, then inspect_group (OffsetFetch)",
    "restart",
)

# (More defects: add them with _defect above this line; the registry is built from all.)

REGISTRY: Mapping[str, Mutant] = {m.name: m for m in _DEFECTS}

_active: str | None = None


class UnknownMutantError(ValueError):
    """A mutant name that is not in the registry."""


def activate(name: str | None) -> None:
    """Switch ``name`` on for this process (None or empty: none)."""
    global _active  # noqa: PLW0603 - one process-wide switch, set once at start-up
    if name and name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise UnknownMutantError(f"unknown mutant {name!r} (known: {known})")
    _active = name or None


def active(name: str) -> bool:
    """Whether the defect ``name`` is switched on in this process."""
    return _active == name


def registry_json() -> list[dict[str, object]]:
    """The registry as JSON (what ``python -m impl.broker --list-mutants`` prints): per
    defect its fields and ``local``, whether ``kafkaref conform --local`` must catch it."""
    return [
        {**attrs.asdict(m), "local": m.needs in LOCAL_NEEDS}
        for m in sorted(REGISTRY.values(), key=lambda m: m.name)
    ]
