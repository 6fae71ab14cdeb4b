"""The spec as the oracle of a cluster the harness manages: every state the cluster may be
in, and the answers each operation may get from one of them.

On a cluster the brokers and the controller act by themselves between and during the
harness's requests (follower fetches, LeaderAndIsr, elections, ISR changes), and the
harness cannot see when.  So the candidates are every model state (``spec.state.
ClusterState``) the internal steps of ``spec.cluster`` can reach from the states that
agree with everything observed so far (their *closure*).  An operation is run in each
candidate through ``spec.cluster.step``; an acks=all produce is answered in any state the
internal steps reach after the append where the spec's ``CompleteProduce`` may answer it
(or times out in any where it may not yet).  The answer observed must be one of these, and
the states that gave it, closed again under the internal steps, are the next candidates.
The properties of ``harness.conform_cluster_history`` (named after the spec's invariants)
are checked on every answer too, and name the divergence when one breaks.
Which records survive a leader kill, when the ISR shrinks and when the high watermark moves
are thus decided by the spec's set of reachable states, never guessed.

What keeps the closure small:

- the harness's knowledge of the environment (:class:`Env`): a paused broker takes no
  step (nor do followers fetch from it) but for the one fetch it may have had in flight
  (answered when the leader has data, applied on resume), and its ZooKeeper session may
  expire; a resumed one may register again; a killed one is down in the model itself.
  A broker cut off from ZooKeeper goes on serving clients and fetching, and followers go
  on fetching from it, but it takes no step that needs ZooKeeper: it learns no partition
  state, writes no ISR, is not elected controller, and as controller writes nothing; its
  session may expire (it is then a zombie: ``ExpireSession``); once healed it may
  register again.  A leader removes a follower from the ISR only if the harness has
  killed, started, paused or cut off that follower since the cluster last settled
  (``suspects``): a running follower lags for ``replica.lag.time.max.ms`` only when
  something stopped it;
- states are normalised before they are compared: znode versions become current/stale
  (only compared for equality), what a follower caches of the ISR and the controller epochs
  (never read) are dropped;
- one example has one single-partition topic and a bounded number of records.

Past ``MAX_STATES`` states the example is *inconclusive* (``inconclusive`` says why): the
oracle decides nothing more (the history's properties still hold it to account), and it is
reported as such, never as a divergence.

Where brokers do more than the spec's steps, the harness widens the allowed set: a killed
broker comes back with any high watermark up to the one it had (``checkpointed``: it
reads them from a periodic checkpoint); a request to a broker whose replica has not yet
learnt the partition (no LeaderAndIsr yet) may be answered UNKNOWN_TOPIC_OR_PARTITION as
well as the spec's NOT_LEADER_OR_FOLLOWER (Kafka's broker answers from its metadata cache
first); a broker whose session expired may apply partition states before it has registered
again (``learnt_before_registering``: it learns them from its own watches); both in
``harness.conform_cluster_widening``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import attrs

from harness.conform_cluster_history import ClusterHistory
from harness.conform_cluster_ops import (
    CLUSTER_OPERATIONS,
    AwaitLeaders,
    ClusterOperation,
    CreateReplicated,
    CutFromZooKeeper,
    FaultDone,
    FetchFrom,
    HealZooKeeperLink,
    KillBroker,
    Leaders,
    ListOffsetsFrom,
    NotSettled,
    PauseBroker,
    ProduceTo,
    ResumeBroker,
    StartBroker,
)
from harness.conform_cluster_widening import checkpointed, learnt_before_registering
from harness.conform_ops import (
    Closed,
    ErrorAnswer,
    FetchAnswer,
    NoAnswer,
    Observation,
    OffsetAnswer,
    Operation,
    PartitionAnswer,
    ProduceAnswer,
)
from harness.conform_oracle import Oracle, OracleError, Verdict, fetch_answer_of
from spec import actions
from spec.cluster import internal_steps, step
from spec.config import SpecConfig
from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.outcome import Ok
from spec.state import ClusterState, Partition, TopicPartition, initial_state

MAX_STATES = 10_000
"""Model states one closure may hold before the example is inconclusive."""
STALE = -1
"""A leader's cached znode version that is not ZooKeeper's (normalised)."""


class TooManyStatesError(OracleError):
    """The closure passed MAX_STATES: the example cannot be followed (inconclusive)."""


@attrs.frozen(slots=True)
class Env:
    """What the harness knows of the environment: the brokers it has paused, the ones it
    has cut off from ZooKeeper, and the ones it has killed, paused or cut off since the
    cluster last settled (a leader may drop those from the ISR)."""

    paused: frozenset[int] = frozenset()
    suspects: frozenset[int] = frozenset()
    cut: frozenset[int] = frozenset()

    @property
    def without_zookeeper(self) -> frozenset[int]:
        """The brokers that cannot act on ZooKeeper now (paused or cut off)."""
        return self.paused | self.cut


def normalise(s: ClusterState) -> ClusterState:
    """``s`` with the numbers that only matter by equality or not at all made canonical:
    znode versions (0, or STALE for a leader's outdated cache), the controller epochs,
    what a follower caches of the ISR, and the next request id when none is pending; and
    without the history variables (``acked``, ``exposed``: the spec's invariants read
    them, its transitions never do; ``harness.conform_cluster_history`` keeps the
    harness's own history of what clients were told)."""
    parts = []
    for tp, part in s.partitions.items():
        zv = part.zk.version
        reps = []
        for b, rep in part.replica.items():
            k = rep.known
            if k is None:
                reps.append((b, rep))
                continue
            if k.leader == b:
                nk = attrs.evolve(k, version=0 if k.version == zv else STALE, controller_epoch=0)
            else:
                nk = attrs.evolve(k, version=0, isr=frozenset(), controller_epoch=0)
            reps.append((b, rep if nk == k else attrs.evolve(rep, known=nk)))
        zk = attrs.evolve(part.zk, version=0, controller_epoch=0)
        parts.append((tp, Partition(part.replicas, zk, FrozenMap(reps))))
    return attrs.evolve(
        s,
        partitions=FrozenMap(parts),
        controller_epoch=0,
        next_request_id=s.next_request_id if s.pending else 0,
        acked=frozenset(),
        exposed=FrozenMap(),
    )


def _allowed(s: ClusterState, action: actions.Action, env: Env) -> bool:
    """Whether the environment lets ``action`` happen now (see the module docstring)."""
    paused = env.paused
    blind = env.without_zookeeper
    if isinstance(action, actions.CompleteProduce):
        return False  # answered explicitly by the produce that waits for it
    if isinstance(action, actions.ElectController | actions.ApplyLeaderAndIsr):
        return action.broker not in blind
    if isinstance(action, actions.ControllerUpdatePartition):
        return s.controller not in blind
    if isinstance(action, actions.FollowerFetch):
        part = s.partitions[action.tp]
        rep = part.replica[action.broker]
        leader = rep.known.leader if rep.known is not None else -1
        if leader in paused:
            return False
        if action.broker not in paused:
            return True
        # A paused follower's fetch sent before the pause may still be answered (the
        # leader parks it until data arrives) and applied when it resumes: one fetch, which
        # reports the log end offset it had, never what it then received.
        lrep = part.replica.get(leader)
        told = lrep.followers.get(action.broker) if lrep is not None else None
        return told is None or told.log_end_offset in (-1, rep.log_end_offset)
    if isinstance(action, actions.ShrinkIsr):
        return action.leader not in blind and action.follower in env.suspects
    if isinstance(action, actions.ExpandIsr):
        return action.leader not in blind
    return True


def successors(s: ClusterState, env: Env) -> Iterator[ClusterState]:
    """The states one internal step (or one environment step the harness allows: a paused
    or cut-off broker's session expiring, a resumed or healed one registering again) leads
    to from ``s``."""
    blind = env.without_zookeeper
    for action, out in internal_steps(s):
        if _allowed(s, action, env):
            yield out.state
    for b in sorted(s.brokers):
        if b in blind and s.is_up(b) and s.is_live(b):
            env_step: actions.Action = actions.ExpireSession(b)
        elif b not in blind and s.is_up(b) and not s.is_live(b):
            env_step = actions.Reregister(b)
            yield from learnt_before_registering(s, b)
        else:
            continue
        done = step(s, env_step)
        if isinstance(done, Ok):
            yield done.state


def closure(
    states: Iterable[ClusterState], env: Env, limit: int = MAX_STATES
) -> tuple[ClusterState, ...]:
    """Every (normalised) state reachable from ``states`` by allowed steps, themselves
    included; TooManyStatesError past ``limit``."""
    seen: dict[ClusterState, None] = dict.fromkeys(normalise(s) for s in states)
    todo = list(seen)
    while todo:
        for raw in successors(todo.pop(), env):
            nxt = normalise(raw)
            if nxt not in seen:
                seen[nxt] = None
                if len(seen) > limit:
                    raise TooManyStatesError(
                        f"more than {limit} model states are reachable: the example is inconclusive"
                    )
                todo.append(nxt)
    return tuple(seen)


def _unknown_too(s: ClusterState, tp: TopicPartition, broker: int, error: ErrorCode) -> bool:
    """Whether a broker may answer UNKNOWN_TOPIC_OR_PARTITION where the spec answers
    NOT_LEADER_OR_FOLLOWER: its replica has not learnt the partition yet."""
    rep = s.replica(tp, broker)
    return error == ErrorCode.NOT_LEADER_OR_FOLLOWER and (rep is None or rep.known is None)


class ClusterOracle(Oracle):
    """The candidate states of one example on a managed cluster, and the spec's verdicts
    (an ``Oracle`` for ``harness.conform_check.ExampleRun``).

    ``brokers`` are the target's broker ids (model ids are their indexes in sorted order),
    ``controller`` the target's controller when the example starts."""

    def __init__(
        self, config: SpecConfig, brokers: Sequence[int], controller: int, limit: int = MAX_STATES
    ) -> None:
        self.target_ids = tuple(sorted(brokers))
        model = {b: i for i, b in enumerate(self.target_ids)}
        s = initial_state(config, len(self.target_ids))
        elected = step(s, actions.ElectController(model.get(controller, 0)))
        assert isinstance(elected, Ok)
        self.env = Env()
        self.limit = limit
        self.candidates: tuple[ClusterState, ...] = (normalise(elected.state),)
        self.inconclusive: str | None = None
        """Why the example could not be followed (then nothing more is checked)."""
        self.largest = 1
        """The most candidates the example had at once."""
        self.history = ClusterHistory()

    # --- what the machine may ask -------------------------------------------------------

    def leaders(self, tp: TopicPartition) -> list[int]:
        """The brokers ZooKeeper names leader of ``tp`` in some candidate, most often first."""
        counts: dict[int, int] = {}
        for s in self.candidates:
            part = s.partitions.get(tp)
            if part is not None and part.zk.leader >= 0:
                counts[part.zk.leader] = counts.get(part.zk.leader, 0) + 1
        return sorted(counts, key=lambda b: (-counts[b], b))

    def log_end_offset(self, tp: TopicPartition) -> int:
        """The largest log end offset of any replica of ``tp`` over the candidates."""
        ends = [0]
        for s in self.candidates:
            part = s.partitions.get(tp)
            if part is not None:
                ends += [r.log_end_offset for r in part.replica.values()]
        return max(ends)

    # --- checking -------------------------------------------------------------------------

    def check(
        self, op: Operation, observed: Observation, producer_ids: Mapping[int, int]
    ) -> Verdict:
        """The spec's verdict on ``observed`` as the answer to ``op``; when allowed, the
        candidates become the closure of the states that agree with it.  After the example
        became inconclusive every answer passes unchecked but for the history's
        properties."""
        del producer_ids  # no idempotent producers on a cluster (yet)
        if not isinstance(op, CLUSTER_OPERATIONS):
            raise OracleError(f"{op.describe()}: not an operation on a managed cluster")
        broken = self.history.check(op, observed)
        named: tuple[Observation, ...] = () if broken is None else (broken,)
        if self.inconclusive is not None:
            return Verdict(broken is None, named)
        try:
            verdict = self._check(op, observed)
        except TooManyStatesError as e:
            self.inconclusive = str(e)
            verdict = Verdict(True, ())
        return Verdict(verdict.ok and broken is None, named + verdict.allowed)

    def _check(self, op: ClusterOperation, observed: Observation) -> Verdict:
        env = self.env
        if isinstance(op, PauseBroker):
            env = attrs.evolve(
                env, paused=env.paused | {op.broker}, suspects=env.suspects | {op.broker}
            )
        elif isinstance(op, ResumeBroker):
            env = attrs.evolve(env, paused=env.paused - {op.broker})
        elif isinstance(op, CutFromZooKeeper):
            env = attrs.evolve(env, cut=env.cut | {op.broker}, suspects=env.suspects | {op.broker})
        elif isinstance(op, HealZooKeeperLink):
            env = attrs.evolve(env, cut=env.cut - {op.broker})
        elif isinstance(op, KillBroker | StartBroker):
            env = attrs.evolve(env, suspects=env.suspects | {op.broker})
        outcomes = self._answers(op, env)
        allowed = tuple(dict.fromkeys(obs for obs, _ in outcomes))
        if isinstance(observed, NotSettled) and isinstance(op, AwaitLeaders):
            return Verdict(True, allowed)  # no bound on when internal steps happen
        kept = [s for obs, s in outcomes if obs == observed]
        if not kept:
            return Verdict(False, allowed)
        if isinstance(op, AwaitLeaders) and op.full_isr:
            down = {b for b in kept[0].brokers if not kept[0].is_up(b)}
            env = attrs.evolve(env, suspects=env.paused | env.cut | down)
        self.env = env
        self.candidates = closure(kept, env, self.limit)
        self.largest = max(self.largest, len(self.candidates))
        return Verdict(True, allowed)

    def _answers(self, op: ClusterOperation, env: Env) -> list[tuple[Observation, ClusterState]]:
        if isinstance(op, ProduceTo):
            return self._produce_answers(op, env)
        out: list[tuple[Observation, ClusterState]] = []
        for s in self.candidates:
            out += self._answers_in(s, op, env)
        return out

    def _answers_in(
        self, s: ClusterState, op: ClusterOperation, env: Env
    ) -> list[tuple[Observation, ClusterState]]:
        if isinstance(op, CreateReplicated):
            done = step(s, actions.CreateTopic(op.topic, (op.replicas,)))
            return [(ErrorAnswer(done.error), done.state)]
        if isinstance(op, FetchFrom):
            return [(obs, s) for obs in self._fetch_answers(s, op)]
        if isinstance(op, ListOffsetsFrom):
            got = step(s, actions.ListOffsets(op.tp, op.broker, op.timestamp))
            if isinstance(got, Ok):
                return [(OffsetAnswer(ErrorCode.NONE, got.reply.offset), s)]
            return [(OffsetAnswer(e), s) for e in self._error_codes(s, op.tp, op.broker, got.error)]
        if isinstance(op, AwaitLeaders):
            return [(obs, s) for obs in self._leader_answers(s, op, env)]
        text = _fault_text(s, op)
        after = self._after_fault(s, op)
        if isinstance(op, KillBroker) and s.is_up(op.broker):
            return [(FaultDone(text), t) for t in checkpointed(after, op.broker)]
        return [(FaultDone(text), after)]

    def _error_codes(
        self, s: ClusterState, tp: TopicPartition, broker: int, error: ErrorCode
    ) -> list[ErrorCode]:
        if _unknown_too(s, tp, broker, error):
            return [error, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
        return [error]

    def _after_fault(self, s: ClusterState, op: ClusterOperation) -> ClusterState:
        """The model after the fault (a kill of a broker that is down, a start of one that
        runs, a pause or resume, a cut or heal: nothing changes in the model itself)."""
        if isinstance(op, KillBroker) and s.is_up(op.broker):
            out = step(s, actions.CrashBroker(op.broker))
        elif isinstance(op, StartBroker) and not s.is_up(op.broker):
            out = step(s, actions.RestartBroker(op.broker))
        else:
            return s
        if not isinstance(out, Ok):
            raise OracleError(f"the model refuses {op.describe()}: {out.error.name}")
        return out.state

    def _fetch_answers(self, s: ClusterState, op: FetchFrom) -> list[Observation]:
        out = step(s, actions.Fetch(op.tp, op.broker, op.offset))
        if not isinstance(out, Ok):
            return [FetchAnswer(e) for e in self._error_codes(s, op.tp, op.broker, out.error)]
        return [fetch_answer_of(out.reply)]

    def _leader_answers(self, s: ClusterState, op: AwaitLeaders, env: Env) -> list[Observation]:
        """What the brokers' Metadata shows once they agree: ZooKeeper's leader and epoch
        of each partition, when that leader is serving (runs, is not paused nor cut off;
        and, with ``full_isr``, the ISR holds every serving replica and no other but
        cut-off ones, which may still follow in sync)."""
        blind = env.without_zookeeper
        found = []
        for topic in op.topics:
            for p in range(len(s.topics.get(topic, ()))):
                part = s.partitions[TopicPartition(topic, p)]
                zk = part.zk
                if not s.is_up(zk.leader) or zk.leader in blind:
                    return []
                live = frozenset(r for r in part.replicas if s.is_up(r) and r not in blind)
                if op.full_isr and not live <= zk.isr <= live | env.cut:
                    return []
                found.append((topic, p, zk.leader, zk.leader_epoch))
        return [Leaders(tuple(found), op.full_isr)]

    def _produce_answers(self, op: ProduceTo, env: Env) -> list[tuple[Observation, ClusterState]]:
        """Every answer the produce may get: at once (acks 0 and 1, or a refusal), or for
        acks=all in any reachable state after the append where it is due (else timed out)."""
        tp = op.tp
        request = actions.Produce(
            tp, op.broker, tuple(actions.ProducedRecord(v, k) for k, v in op.records), op.acks
        )
        out: list[tuple[Observation, ClusterState]] = []
        waiting: list[ClusterState] = []
        for s in self.candidates:
            got = step(s, request)
            if not isinstance(got, Ok):
                for e in self._error_codes(s, tp, op.broker, got.error):
                    obs = Closed() if op.acks == 0 else ProduceAnswer((PartitionAnswer(tp, e),))
                    out.append((obs, s))
            elif op.acks == 0:
                out.append((NoAnswer(), got.state))
            elif got.reply.pending is None:
                answer = PartitionAnswer(
                    tp, ErrorCode.NONE, got.reply.base_offset, got.reply.log_start_offset
                )
                out.append((ProduceAnswer((answer,)), got.state))
            else:
                waiting.append(got.state)
        for r in closure(waiting, env, self.limit) if waiting else ():
            (req,) = r.pending
            done = step(r, actions.CompleteProduce(req.request_id))
            if isinstance(done, Ok):
                reply = done.reply
                start = r.partitions[tp].replica[op.broker].log.start_offset
                answer = (
                    PartitionAnswer(tp, reply.error, reply.base_offset, start)
                    if reply.error == ErrorCode.NONE
                    else PartitionAnswer(tp, reply.error)
                )
                out.append((ProduceAnswer((answer,)), done.state))
            else:
                timed_out = PartitionAnswer(tp, ErrorCode.REQUEST_TIMED_OUT)
                out.append((ProduceAnswer((timed_out,)), attrs.evolve(r, pending=())))
        return out


def _fault_text(s: ClusterState, op: ClusterOperation) -> str:
    """What the executor reports for a fault, given whether the model's broker is up."""
    if isinstance(op, KillBroker):
        return "killed" if s.is_up(op.broker) else "already down"
    if isinstance(op, StartBroker):
        return "already running" if s.is_up(op.broker) else "started"
    if isinstance(op, PauseBroker):
        return "paused"
    if isinstance(op, CutFromZooKeeper):
        return "cut off from ZooKeeper"
    if isinstance(op, HealZooKeeperLink):
        return "reaches ZooKeeper again"
    assert isinstance(op, ResumeBroker)
    return "resumed"
