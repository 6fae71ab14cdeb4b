"""A conformance session: the connection to a target, what the harness learnt of it, and
the checked replay of a list of operations.

:func:`open_session` connects to the bootstrap broker, negotiates API versions, reads the
cluster's brokers and controller from Metadata, and fixes the spec's configuration from
the target's declaration; :class:`TargetUnavailableError` when any of that fails (the
command's exit status 2).  Each example gets a fresh namespace on the target and a fresh
model (:meth:`Session.new_example`).  :func:`replay` performs a list of operations once,
each checked: how a stored divergence is reproduced and how one is shrunk.

A target without CreateTopics whose topics the harness can make itself (``--mock``)
gives ``open_session`` a :data:`CreateTopicHook`; answers that break the protocol at the
wire level, found before the run (``harness.conform_mock_wire``), are kept as
:class:`ProtocolError`s and count against the target like divergences.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import attrs

from harness import client_admin
from harness.client import CREATE_TOPICS, ClientError, Error, KafkaClient
from harness.client_admin import MetadataResult
from harness.conform_check import DivergenceError, ExampleRun, Step, Tally
from harness.conform_exec import Executor
from harness.conform_faults import BrokerControl
from harness.conform_ops import Observation, Operation
from harness.conform_oracle import Oracle
from harness.conform_target import TargetDeclaration, offsets_cleanup_may_run
from spec.config import SpecConfig


class TargetUnavailableError(RuntimeError):
    """The harness could not start talking to the target (exit status 2)."""


CreateTopicHook = Callable[[str, int], Error]
"""Creates a topic (its name on the target, its partition count) out of band, for a target
without CreateTopics; the error code, as CreateTopics would answer it."""


@attrs.frozen(slots=True)
class ProtocolError:
    """Answers of one API that break the protocol at the wire level, at ``versions``: a
    response that is not an encoding of the version's schema, or a valid request the
    target could not read.  ``sample`` is one such response (hex), when there was one."""

    api: str
    versions: tuple[int, ...]
    problem: str
    sample: str = ""

    def describe(self) -> str:
        versions = ", ".join(f"v{v}" for v in self.versions)
        return f"{self.api} {versions}: {self.problem}"


@attrs.frozen(slots=True)
class Divergence:
    """A divergence: the trace up to the answer the spec does not allow, the rule that
    made the diverging operation, the seed and number of examples of the Hypothesis run
    that found it, how long the trace was when found, and whether replaying it diverged
    again."""

    steps: tuple[Step, ...]
    allowed: tuple[Observation, ...]
    namespace: str
    rule: str = ""
    seed: int = -1
    examples: int = 0
    found_length: int = 0
    reproduced: bool = True

    @classmethod
    def of(cls, e: DivergenceError, seed: int = -1, examples: int = 0) -> Divergence:
        rule = e.steps[-1].rule
        return cls(e.steps, e.allowed, e.namespace, rule, seed, examples, len(e.steps))

    @property
    def operations(self) -> tuple[Operation, ...]:
        return tuple(s.op for s in self.steps)


class Session:
    """A connection to a target and what the harness learnt of it at the start."""

    def __init__(
        self, client: KafkaClient, declaration: TargetDeclaration, metadata: MetadataResult
    ) -> None:
        self.client = client
        self.declaration = declaration
        self.config: SpecConfig = declaration.spec_config()
        self.brokers = tuple(b.node_id for b in metadata.brokers)
        self.controller = metadata.controller_id
        self.contact = _contact(client, metadata)
        self.run_id = uuid.uuid4().hex[:8]
        self.issued_ids: set[int] = set()
        self.tally = Tally()
        self.namespaces = 0
        self.notes: list[str] = []
        """Protocol oddities met outside the spec's scope, for the report."""
        self.on_step: Callable[[], None] | None = None
        self.control: BrokerControl | None = None
        """Set when the harness holds the target's broker processes (``--local``)."""
        self.create_topic: CreateTopicHook | None = None
        """Set when topics are created out of band by the harness (``--mock``)."""
        self.protocol_errors: list[ProtocolError] = []
        """Wire-level breaches of the protocol found before the run, for the report."""

    @property
    def can_restart(self) -> bool:
        """Whether the harness may and can restart the target's brokers."""
        return self.control is not None and self.declaration.may_kill_brokers

    def _restart(self, broker: int) -> None:
        """Restart the broker with the model's id ``broker``."""
        assert self.control is not None
        self.control.restart(sorted(self.brokers)[broker])

    def new_example(self, tally: Tally | None = None) -> ExampleRun:
        """A fresh namespace on the target and a fresh model; its operations are counted
        in ``tally`` (default: the session's)."""
        tally = self.tally if tally is None else tally
        tally.examples += 1
        self.namespaces += 1
        namespace = f"conform-{self.run_id}-{self.namespaces}-"
        restart = self._restart if self.can_restart else None
        executor = Executor(
            self.client, namespace, self.issued_ids, restart=restart, create_topic=self.create_topic
        )
        oracle = Oracle(
            self.config,
            self.brokers,
            self.controller,
            self.contact,
            offsets_cleanup=offsets_cleanup_may_run(self.declaration),
        )
        return ExampleRun(executor, oracle, tally, self.on_step)

    def close(self) -> None:
        self.client.close()


def _contact(client: KafkaClient, metadata: MetadataResult) -> int:
    """The id of the broker the client is connected to."""
    if len(metadata.brokers) == 1:
        return metadata.brokers[0].node_id
    for b in metadata.brokers:
        if (b.host, b.port) == (client.host, client.port):
            return b.node_id
    same_port = [b for b in metadata.brokers if b.port == client.port]
    if len(same_port) == 1:
        return same_port[0].node_id
    raise TargetUnavailableError(
        f"cannot tell which of the brokers {[b.node_id for b in metadata.brokers]} "
        f"listens on {client.host}:{client.port}"
    )


def open_session(
    host: str,
    port: int,
    declaration: TargetDeclaration,
    *,
    timeout_s: float = 10.0,
    create_topic: CreateTopicHook | None = None,
) -> Session:
    """Connect and learn the target; TargetUnavailableError when it cannot be done.
    ``create_topic`` is the harness's hook when topics are created out of band."""
    try:
        pinned = declaration.pinned_versions()
        declaration.spec_config()
    except ValueError as e:
        raise TargetUnavailableError(f"bad target declaration: {e}") from None
    client = KafkaClient(host, port, client_id="kafkaref-conform", timeout_s=timeout_s)
    client.pinned = pinned
    notes = []
    try:
        client.connect()
        try:
            client.negotiate()
        except ClientError as e:
            # Kafka's own clients fall back to v0 when a newer ApiVersions fails.
            notes.append(f"ApiVersions v3 failed ({e}); the versions were read from v0")
            client.connect()
            client.negotiate(0)
        metadata = client_admin.metadata(client, [])
    except Exception as e:
        client.close()
        raise TargetUnavailableError(f"cannot talk to {host}:{port}: {e}") from e
    if declaration.topics_out_of_band and create_topic is None:
        client.close()
        raise TargetUnavailableError(
            "the declaration says topics are created out of band, but the harness has no way "
            "to create them on this target (only --mock has)"
        )
    if not declaration.topics_out_of_band and not client.offers(CREATE_TOPICS):
        client.close()
        raise TargetUnavailableError(
            f"{host}:{port} offers no CreateTopics the harness can use "
            f"({client.broker_versions.get(CREATE_TOPICS)}); every example creates its topics"
        )
    if not metadata.brokers:
        client.close()
        raise TargetUnavailableError(f"{host}:{port} lists no brokers in Metadata")
    session = Session(client, declaration, metadata)
    session.notes += notes
    session.create_topic = create_topic if declaration.topics_out_of_band else None
    return session


def replay(
    session: Session, operations: Sequence[Operation], tally: Tally | None = None
) -> tuple[list[Step], Divergence | None]:
    """Perform ``operations`` in order in a fresh namespace, each checked; the steps, and
    the divergence if one happens (the remaining operations are not sent)."""
    example = session.new_example(tally)
    try:
        for op in operations:
            example.perform("replay", op)
    except DivergenceError as e:
        return list(e.steps), Divergence.of(e)
    finally:
        example.cleanup()
    return example.steps, None
