"""The consumer-group APIs spoken over the raw wire, to see every error code a real
client would hide or retry: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups; and the consumer protocol's
subscription and assignment bytes.

Versions are negotiated: each API is asked at the highest version both the broker
(ApiVersions) and these helpers know, capped where a newer version changes the layout.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from spec.errors import ErrorCode
from tests.impl import kio_requests as kr
from tests.impl.wire_client import WireClient

T = TypeVar("T")

SESSION_TIMEOUT_MS = 6000
"""session.timeout.ms of every consumer here (Kafka's group.min.session.timeout.ms)."""
DEADLINE_S = 60.0

OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, JOIN_GROUP = 8, 9, 10, 11
HEARTBEAT, LEAVE_GROUP, SYNC_GROUP, DESCRIBE_GROUPS, LIST_GROUPS = 12, 13, 14, 15, 16

_RANGES: Mapping[int, tuple[int, int]] = {
    # api key: (lowest, highest) version these helpers can build; the highest is where
    # kio's layout (or the meaning of a field) changes in a way not handled here.
    OFFSET_COMMIT: (2, 8),
    OFFSET_FETCH: (1, 7),
    FIND_COORDINATOR: (0, 3),
    JOIN_GROUP: (0, 9),
    HEARTBEAT: (0, 4),
    LEAVE_GROUP: (0, 5),
    SYNC_GROUP: (0, 5),
    DESCRIBE_GROUPS: (0, 5),
    LIST_GROUPS: (0, 3),
}


def wait_for(probe: Callable[[], T | None], what: Callable[[], str] | str, timeout: float) -> T:
    """Call ``probe`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g}s waiting for {text}")
        time.sleep(0.05)


# ---------------------------------------------------------------- consumer protocol


def encode_subscription(topics: Sequence[str]) -> bytes:
    """ConsumerProtocolSubscription v0: version, topics, user data (null)."""
    out = bytearray(struct.pack(">hi", 0, len(topics)))
    for t in topics:
        out += _string(t)
    out += struct.pack(">i", -1)
    return bytes(out)


def encode_assignment(assignment: Mapping[str, Sequence[int]]) -> bytes:
    """ConsumerProtocolAssignment v0: version, (topic, partitions) pairs, user data (null)."""
    out = bytearray(struct.pack(">hi", 0, len(assignment)))
    for topic, partitions in assignment.items():
        out += _string(topic) + struct.pack(">i", len(partitions))
        out += b"".join(struct.pack(">i", p) for p in partitions)
    out += struct.pack(">i", -1)
    return bytes(out)


def decode_assignment(data: bytes) -> dict[str, frozenset[int]]:
    """The (topic -> partitions) of a ConsumerProtocolAssignment of any version (the
    fields after the partitions are not read)."""
    if not data:
        return {}
    pos = 2  # version
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    out: dict[str, frozenset[int]] = {}
    for _ in range(count):
        (size,) = struct.unpack_from(">h", data, pos)
        topic = data[pos + 2 : pos + 2 + size].decode()
        pos += 2 + size
        (n,) = struct.unpack_from(">i", data, pos)
        out[topic] = frozenset(struct.unpack_from(f">{n}i", data, pos + 4))
        pos += 4 + 4 * n
    return out


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


# ---------------------------------------------------------------- the wire


class GroupWire:
    """One connection to a broker, speaking the group APIs at negotiated versions."""

    def __init__(self, host: str, port: int, timeout_s: float = 30.0) -> None:
        self.client = WireClient(host, port, timeout_s)
        answer = self.client.request(kr.api_versions())
        assert answer.error_code == 0, answer
        served = {k.api_key: (k.min_version, k.max_version) for k in answer.api_keys}
        self.versions: dict[int, int] = {}
        for key, (low, high) in _RANGES.items():
            if key in served and served[key][0] <= high and served[key][1] >= low:
                self.versions[key] = min(high, served[key][1])

    @classmethod
    def to(cls, address: str, timeout_s: float = 30.0) -> GroupWire:
        host, port = address.rsplit(":", 1)
        return cls(host, int(port), timeout_s)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> GroupWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, api_key: int, /, **fields: Any) -> Any:
        version = self.versions.get(api_key)
        assert version is not None, f"the broker serves no version of api key {api_key} we know"
        return kr.request(api_key, version, **fields)

    def _nested(self, api_key: int, class_name: str, /, **fields: Any) -> Any:
        return kr.nested(api_key, self.versions[api_key], class_name, **fields)

    def find_coordinator(self, group: str) -> Any:
        """FindCoordinator for a group (key type 0): error_code, node_id, host, port."""
        return self.client.request(self._request(FIND_COORDINATOR, key=group, key_type=0))

    def join_request(
        self,
        group: str,
        member_id: str,
        topics: Sequence[str],
        *,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: int = 30_000,
        protocol: str = "range",
    ) -> Any:
        meta = self._nested(
            JOIN_GROUP,
            "JoinGroupRequestProtocol",
            name=protocol,
            metadata=encode_subscription(topics),
        )
        return self._request(
            JOIN_GROUP,
            group_id=group,
            session_timeout=kr.ms(session_timeout_ms),
            rebalance_timeout=kr.ms(rebalance_timeout_ms),
            member_id=member_id,
            group_instance_id=None,
            protocol_type="consumer",
            protocols=(meta,),
            reason=None,
        )

    def send_join(self, group: str, member_id: str, topics: Sequence[str], **kw: Any) -> None:
        """Send a JoinGroup without waiting: the answer comes when the rebalance completes."""
        self.client.send(self.join_request(group, member_id, topics, **kw))

    def receive_join(self) -> Any:
        _, answer = self.client.receive(JOIN_GROUP, self.versions[JOIN_GROUP])
        return answer

    def join(self, group: str, member_id: str, topics: Sequence[str], **kw: Any) -> Any:
        """JoinGroup; with the member id the broker asks for (KIP-394,
        MEMBER_ID_REQUIRED) the join is sent once more, as clients do."""
        answer = self.client.request(self.join_request(group, member_id, topics, **kw))
        if answer.error_code == ErrorCode.MEMBER_ID_REQUIRED:
            answer = self.client.request(self.join_request(group, answer.member_id, topics, **kw))
        return answer

    def sync(
        self,
        group: str,
        generation: int,
        member_id: str,
        assignments: Mapping[str, bytes] | None = None,
        protocol: str = "range",
    ) -> Any:
        entries = tuple(
            self._nested(SYNC_GROUP, "SyncGroupRequestAssignment", member_id=m, assignment=a)
            for m, a in (assignments or {}).items()
        )
        return self.client.request(
            self._request(
                SYNC_GROUP,
                group_id=group,
                generation_id=generation,
                member_id=member_id,
                group_instance_id=None,
                protocol_type="consumer",
                protocol_name=protocol,
                assignments=entries,
            )
        )

    def heartbeat(self, group: str, generation: int, member_id: str) -> ErrorCode:
        answer = self.client.request(
            self._request(
                HEARTBEAT,
                group_id=group,
                generation_id=generation,
                member_id=member_id,
                group_instance_id=None,
            )
        )
        return ErrorCode(answer.error_code)

    def leave(self, group: str, member_id: str) -> ErrorCode:
        identity = None
        if self.versions[LEAVE_GROUP] >= 3:
            identity = (
                self._nested(
                    LEAVE_GROUP, "MemberIdentity", member_id=member_id, group_instance_id=None
                ),
            )
        answer = self.client.request(
            self._request(LEAVE_GROUP, group_id=group, member_id=member_id, members=identity)
        )
        return ErrorCode(answer.error_code)

    def commit(
        self,
        group: str,
        generation: int,
        member_id: str,
        topic: str,
        offsets: Mapping[int, int],
    ) -> dict[int, ErrorCode]:
        """OffsetCommit of ``{partition: offset}``; the error code of each partition."""
        partitions = tuple(
            self._nested(
                OFFSET_COMMIT,
                "OffsetCommitRequestPartition",
                partition_index=p,
                committed_offset=o,
                committed_leader_epoch=-1,
                committed_timestamp=-1,
                committed_metadata="",
            )
            for p, o in offsets.items()
        )
        entry = self._nested(
            OFFSET_COMMIT, "OffsetCommitRequestTopic", name=topic, partitions=partitions
        )
        answer = self.client.request(
            self._request(
                OFFSET_COMMIT,
                group_id=group,
                generation_id_or_member_epoch=generation,
                member_id=member_id,
                group_instance_id=None,
                retention_time=-1,
                topics=(entry,),
            )
        )
        (t,) = answer.topics
        return {p.partition_index: ErrorCode(p.error_code) for p in t.partitions}

    def fetch_offsets(self, group: str, topic: str, partitions: Sequence[int]) -> Any:
        """The OffsetFetch response for ``partitions`` of ``topic``."""
        entry = self._nested(
            OFFSET_FETCH,
            "OffsetFetchRequestTopic",
            name=topic,
            partition_indexes=tuple(partitions),
        )
        return self.client.request(
            self._request(OFFSET_FETCH, group_id=group, topics=(entry,), require_stable=False)
        )

    def committed(self, group: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """``{partition: committed offset}`` (-1 for none); fails on any error."""
        answer = self.fetch_offsets(group, topic, partitions)
        assert getattr(answer, "error_code", 0) == 0, answer
        (t,) = answer.topics
        assert all(p.error_code == 0 for p in t.partitions), answer
        return {p.partition_index: p.committed_offset for p in t.partitions}

    def describe(self, group: str) -> Any:
        """The DescribedGroup of ``group``."""
        answer = self.client.request(
            self._request(DESCRIBE_GROUPS, groups=(group,), include_authorized_operations=False)
        )
        (described,) = answer.groups
        return described


def addresses(bootstrap: str) -> list[str]:
    return [a.strip() for a in bootstrap.split(",") if a.strip()]


def find_coordinator(bootstrap: str, group: str, timeout: float = DEADLINE_S) -> tuple[int, str]:
    """(node id, ``HOST:PORT``) of the group's coordinator, asked of each bootstrap broker
    in turn until one answers NONE (the first FindCoordinator creates
    ``__consumer_offsets``; COORDINATOR_NOT_AVAILABLE until its partitions have leaders)."""
    answers: list[str] = []

    def ask() -> tuple[int, str] | None:
        for address in addresses(bootstrap):
            try:
                with GroupWire.to(address, 10.0) as wire:
                    answer = wire.find_coordinator(group)
            except OSError as e:
                answers.append(f"{address}: {e}")
                continue
            answers.append(f"{address}: {ErrorCode(answer.error_code).name}")
            if answer.error_code == ErrorCode.NONE:
                return answer.node_id, f"{answer.host}:{answer.port}"
        return None

    return wait_for(ask, lambda: f"the coordinator of {group} ({answers[-3:]})", timeout)


@contextlib.contextmanager
def coordinator_wire(
    bootstrap: str, group: str, timeout: float = DEADLINE_S
) -> Iterator[GroupWire]:
    """A connection to the group's coordinator."""
    _, address = find_coordinator(bootstrap, group, timeout)
    with GroupWire.to(address) as wire:
        yield wire


def described_assignments(
    bootstrap: str, group: str, topic: str
) -> tuple[str, dict[str, frozenset[int]]]:
    """(group state, {client id: partitions of ``topic``}) as the coordinator describes it."""
    with coordinator_wire(bootstrap, group) as wire:
        described = wire.describe(group)
    assert described.error_code == 0, described
    members = {
        m.client_id: decode_assignment(m.member_assignment).get(topic, frozenset())
        for m in described.members
    }
    return described.group_state, members


def stable_members(bootstrap: str, group: str, topic: str) -> dict[str, frozenset[int]] | None:
    """{client id: partitions of ``topic``} once the coordinator describes the group as
    Stable, else None."""
    state, members = described_assignments(bootstrap, group, topic)
    return members if state == "Stable" else None
