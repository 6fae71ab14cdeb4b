"""The wire check: does every API version a target offers answer in its schema?

The semantic checks of ``kafkaref conform`` compare decoded answers with the spec's; an
answer that does not decode is a breach of the protocol itself, at the level below.  The
wire check sends one ordinary request per API and version that both the harness's client
and the target speak, each on a fresh connection, and decodes the answer strictly with
the shared codec (``impl.wire``): every field of the version's schema, nothing missing,
nothing left over.  It also sends ApiVersions one version above the target's highest,
which KIP-511 says must be answered with UNSUPPORTED_VERSION in the v0 layout.

The outcome, per version: decoded, a :class:`~harness.conform_session.ProtocolError`
(an undecodable answer, or the target closing the connection on a valid request it
advertises), or no answer in time (not judged).  :func:`usable_versions` then gives per
API the highest version that decoded, so that the semantic checks can go on at versions
where the target is correct.  ``kafkaref conform --mock`` runs it before the search
(librdkafka's mock cluster breaks several flexible versions); it needs one topic on the
target, made by the caller.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping

import attrs

from harness import client_admin, client_groups
from harness.client import (
    API_NAMES,
    API_VERSIONS,
    APIS,
    CREATE_TOPICS,
    DELETE_TOPICS,
    FETCH,
    FIND_COORDINATOR,
    HEARTBEAT,
    INIT_PRODUCER_ID,
    JOIN_GROUP,
    LEAVE_GROUP,
    LIST_OFFSETS,
    METADATA,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    PRODUCE,
    SYNC_GROUP,
    BrokerClosedError,
    ClientError,
    KafkaClient,
    ResponseTimeoutError,
    UndecodableResponseError,
)
from harness.client_admin import NewTopic
from harness.conform_session import ProtocolError
from impl.wire import codec
from impl.wire import records as wire_records
from spec.state import TopicPartition

PROBE_TIMEOUT_S = 5.0
SAMPLE_BYTES = 160
"""At most this much of a diverging response is kept as its sample."""


@attrs.frozen(slots=True)
class Probe:
    """What a probe may use on the target: an existing topic (partition 0 at least) and
    a prefix for fresh group and topic names."""

    topic: str
    prefix: str

    def group(self, api_key: int, version: int) -> str:
        return f"{self.prefix}wire-{api_key}-{version}"


Call = Callable[[KafkaClient, Probe, int], object]


def _produce(c: KafkaClient, p: Probe, v: int) -> object:
    return c.produce({TopicPartition(p.topic, 0): wire_records.build_batch([(b"k", b"v")])}, acks=1)


def _api_versions(c: KafkaClient, p: Probe, v: int) -> object:
    request = c.build(API_VERSIONS, client_software_name="kafkaref", client_software_version="0")
    return c.request(request)


def _create_topics(c: KafkaClient, p: Probe, v: int) -> object:
    return client_admin.create_topics(c, [NewTopic(f"{p.prefix}wire-{v}", 1, 1)])


PROBES: Mapping[int, Call] = {
    PRODUCE: _produce,
    FETCH: lambda c, p, v: c.fetch({TopicPartition(p.topic, 0): 0}),
    LIST_OFFSETS: lambda c, p, v: c.list_offsets({TopicPartition(p.topic, 0): -1}),
    METADATA: lambda c, p, v: client_admin.metadata(c, [p.topic]),
    OFFSET_COMMIT: lambda c, p, v: client_groups.offset_commit(
        c, p.group(OFFSET_COMMIT, v), {TopicPartition(p.topic, 0): (0, None)}
    ),
    OFFSET_FETCH: lambda c, p, v: client_groups.offset_fetch(
        c, p.group(OFFSET_FETCH, v), [TopicPartition(p.topic, 0)]
    ),
    FIND_COORDINATOR: lambda c, p, v: client_groups.find_coordinator(
        c, p.group(FIND_COORDINATOR, v)
    ),
    JOIN_GROUP: lambda c, p, v: client_groups.join_group(
        c, p.group(JOIN_GROUP, v), "", [("range", b"")], session_timeout_ms=10_000
    ),
    HEARTBEAT: lambda c, p, v: client_groups.heartbeat(c, p.group(HEARTBEAT, v), 1, "m"),
    LEAVE_GROUP: lambda c, p, v: client_groups.leave_group(c, p.group(LEAVE_GROUP, v), "m"),
    SYNC_GROUP: lambda c, p, v: client_groups.sync_group(c, p.group(SYNC_GROUP, v), 1, "m", {}),
    API_VERSIONS: _api_versions,
    CREATE_TOPICS: _create_topics,
    DELETE_TOPICS: lambda c, p, v: client_admin.delete_topics(c, [f"{p.prefix}never-{v}"]),
    INIT_PRODUCER_ID: lambda c, p, v: c.init_producer_id(),
}
"""One ordinary request per API (a fresh group per version, so none waits for another)."""


@attrs.frozen(slots=True)
class VersionOutcome:
    """The wire check of one API version: ``problem`` is None when the answer decoded;
    ``judged`` is False when there was no answer in time (nothing to judge)."""

    api_key: int
    version: int
    problem: str | None = None
    sample: bytes = b""
    judged: bool = True

    @property
    def ok(self) -> bool:
        return self.judged and self.problem is None


@attrs.frozen(slots=True)
class WireCheck:
    """Every version checked, and what came of it."""

    offered: Mapping[int, tuple[int, int]]
    outcomes: tuple[VersionOutcome, ...]

    def errors(self) -> list[ProtocolError]:
        """The protocol errors, one per API and problem, with the versions that show it."""
        found: dict[tuple[int, str], list[VersionOutcome]] = {}
        for o in self.outcomes:
            if o.judged and o.problem is not None:
                found.setdefault((o.api_key, o.problem), []).append(o)
        return [
            ProtocolError(
                API_NAMES[key], tuple(o.version for o in outs), problem, outs[0].sample.hex()
            )
            for (key, problem), outs in found.items()
        ]

    def unanswered(self) -> list[str]:
        """Versions that gave no answer in time (not judged), as ``Name vN``."""
        return [f"{API_NAMES[o.api_key]} v{o.version}" for o in self.outcomes if not o.judged]


def usable_versions(check: WireCheck) -> dict[int, int | None]:
    """Per API the target offers (and the client speaks): the highest version whose
    answer decoded, or None when no version did."""
    best: dict[int, int | None] = {}
    for o in check.outcomes:
        if o.version > check.offered.get(o.api_key, (0, -1))[1]:
            continue  # the probe above the offered range (ApiVersions)
        best.setdefault(o.api_key, None)
        current = best[o.api_key]
        if o.ok and (current is None or o.version > current):
            best[o.api_key] = o.version
    return best


def _flexible(api_key: int, version: int) -> bool:
    if api_key == API_VERSIONS:
        return False  # its response header never has tagged fields
    return bool(codec.response_type(api_key, version).__flexible__)


def diagnose(e: UndecodableResponseError, offered_max: int) -> str:
    """What is wrong with an undecodable answer, in the protocol's terms."""
    name = API_NAMES.get(e.api_key, str(e.api_key))
    reason = str(e).split(": ", 1)[-1]
    if e.api_key == API_VERSIONS and e.version > offered_max:
        return (
            f"a v{e.version} request (above the offered 0-{offered_max}) is answered in "
            "neither the v0 layout KIP-511 prescribes for an unsupported ApiVersions version "
            f"(UNSUPPORTED_VERSION, an int32-counted array) nor the v{e.version} schema"
        )
    trailing = re.search(r"(\d+) bytes after the body", reason)
    if trailing:
        n = int(trailing.group(1))
        extra = e.frame[-n:]
        text = f"{n} byte{'s' if n > 1 else ''} after the body ({extra.hex()})"
        if _flexible(e.api_key, e.version) and not any(extra):
            text += (
                ": an empty tagged-field section more than the schema has (the body's own "
                "is followed by another)"
            )
        return text
    if "BufferUnderflow" in reason or "exhausted" in reason or "truncated" in reason:
        return "the answer ends before the version's schema does: a field it has is missing"
    if "UnexpectedNull" in reason:
        return "null in a field the version's schema does not make nullable"
    return f"{name}: {reason}"


def _check_one(
    address: tuple[str, int],
    offered: Mapping[int, tuple[int, int]],
    api_key: int,
    version: int,
    probe: Probe,
) -> VersionOutcome:
    host, port = address
    client = KafkaClient(host, port, client_id="kafkaref-wire", timeout_s=PROBE_TIMEOUT_S)
    client.broker_versions = dict(offered)
    client.pinned = {api_key: version}
    offered_max = offered.get(api_key, (0, 0))[1]
    try:
        client.connect()
        PROBES[api_key](client, probe, version)
    except UndecodableResponseError as e:
        return VersionOutcome(api_key, version, diagnose(e, offered_max), e.frame[:SAMPLE_BYTES])
    except BrokerClosedError:
        return VersionOutcome(
            api_key,
            version,
            "the target closed the connection instead of answering: it could not read a "
            "valid request of a version it offers",
        )
    except ResponseTimeoutError:
        return VersionOutcome(api_key, version, "no answer in time", judged=False)
    except (ClientError, OSError) as e:
        return VersionOutcome(api_key, version, f"{type(e).__name__}: {e}")
    finally:
        client.close()
    return VersionOutcome(api_key, version)


def versions_to_check(offered: Mapping[int, tuple[int, int]]) -> Iterable[tuple[int, int]]:
    """(API key, version) for every version both sides speak, and ApiVersions one above
    the target's highest (KIP-511) when the client speaks it."""
    for key, (_, low, high) in sorted(APIS.items()):
        if key not in offered or key not in PROBES:
            continue
        theirs_low, theirs_high = offered[key]
        for version in range(max(low, theirs_low), min(high, theirs_high) + 1):
            yield key, version
        if key == API_VERSIONS and theirs_high < high:
            yield key, theirs_high + 1


def wire_check(
    host: str, port: int, offered: Mapping[int, tuple[int, int]], topic: str
) -> WireCheck:
    """Check every version of ``offered`` (the target's ApiVersions) the client speaks;
    ``topic`` exists on the target."""
    probe = Probe(topic, f"kafkaref-{uuid.uuid4().hex[:8]}-")
    outcomes = tuple(
        _check_one((host, port), offered, key, version, probe)
        for key, version in versions_to_check(offered)
    )
    return WireCheck(dict(offered), outcomes)
