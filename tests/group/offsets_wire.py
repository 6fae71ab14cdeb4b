"""FindCoordinator, OffsetCommit and OffsetFetch through the wire for the offsets tests:
request builders of any version, answers flattened to dicts, and waiting (with a
deadline) for a group's coordinator to be ready."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kio.static.primitive import i64Timedelta

from spec.errors import ErrorCode
from tests.impl import kio_requests as kr
from tests.impl.wire_client import WireClient

OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 8, 9, 10
DEADLINE_S = 30.0
RETRIABLE = (
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.NOT_COORDINATOR,
)

TP = tuple[str, int]


def find_coordinator(client: WireClient, key: str, version: int = 3, key_type: int = 0) -> Any:
    """The FindCoordinator answer for one key: the response (v0-v3) or its one
    coordinator entry (v4+)."""
    request = kr.request(
        FIND_COORDINATOR, version, key=key, key_type=key_type, coordinator_keys=(key,)
    )
    response = client.request(request)
    return response.coordinators[0] if version >= 4 else response


def wait_coordinator(client: WireClient, group: str, deadline_s: float = DEADLINE_S) -> Any:
    """FindCoordinator until it names a coordinator whose OffsetFetch answers NONE."""
    end = time.monotonic() + deadline_s
    while True:
        found = find_coordinator(client, group)
        if ErrorCode(found.error_code) is ErrorCode.NONE:
            code, _ = fetch(client, group, [])
            if code is ErrorCode.NONE:
                return found
        elif ErrorCode(found.error_code) not in RETRIABLE:
            raise AssertionError(f"FindCoordinator failed: {found}")
        if time.monotonic() > end:
            raise AssertionError(f"no ready coordinator for {group!r} in {deadline_s}s")
        time.sleep(0.05)  # a client's retry backoff, not a synchronisation


def commit(
    client: WireClient,
    group: str,
    offsets: Mapping[TP, tuple[int, str | None]],
    *,
    version: int = 8,
    generation: int = -1,
    member_id: str = "",
    leader_epoch: int = -1,
    retention_ms: int = -1,
) -> dict[TP, ErrorCode]:
    """OffsetCommit of (offset, metadata) per (topic, partition); each partition's error."""
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), (offset, metadata) in offsets.items():
        by_topic.setdefault(topic, []).append(
            kr.nested(
                OFFSET_COMMIT,
                version,
                "OffsetCommitRequestPartition",
                partition_index=partition,
                committed_offset=offset,
                committed_leader_epoch=leader_epoch,
                committed_metadata=metadata,
            )
        )
    topics = tuple(
        kr.nested(OFFSET_COMMIT, version, "OffsetCommitRequestTopic", name=t, partitions=tuple(ps))
        for t, ps in by_topic.items()
    )
    request = kr.request(
        OFFSET_COMMIT,
        version,
        group_id=group,
        generation_id_or_member_epoch=generation,
        member_id=member_id,
        group_instance_id=None,
        retention_time=i64Timedelta.parse(datetime.timedelta(milliseconds=retention_ms)),
        topics=topics,
    )
    response = client.request(request)
    return {
        (t.name, int(p.partition_index)): ErrorCode(p.error_code)
        for t in response.topics
        for p in t.partitions
    }


Fetched = dict[TP, tuple[int, int, str | None, ErrorCode]]


def _flatten(topics: Iterable[Any]) -> Fetched:
    return {
        (t.name, int(p.partition_index)): (
            int(p.committed_offset),
            int(getattr(p, "committed_leader_epoch", -1)),
            p.metadata,
            ErrorCode(p.error_code),
        )
        for t in topics
        for p in t.partitions
    }


def _topics(version: int, cls: str, partitions: Iterable[TP] | None) -> Any:
    if partitions is None:
        return None
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return tuple(
        kr.nested(OFFSET_FETCH, version, cls, name=t, partition_indexes=tuple(ps))
        for t, ps in by_topic.items()
    )


def fetch(
    client: WireClient, group: str, partitions: Iterable[TP] | None, version: int = 7
) -> tuple[ErrorCode, Fetched]:
    """OffsetFetch (v1-v7) for ``partitions`` (None: all): (top-level error, per
    partition (offset, leader epoch, metadata, error)).  v1 has no top-level error."""
    topics = _topics(version, "OffsetFetchRequestTopic", partitions)
    request = kr.request(OFFSET_FETCH, version, group_id=group, topics=topics, require_stable=False)
    response = client.request(request)
    return ErrorCode(getattr(response, "error_code", 0)), _flatten(response.topics)


def fetch_groups(
    client: WireClient, groups: Mapping[str, Iterable[TP] | None], version: int = 8
) -> dict[str, tuple[ErrorCode, Fetched]]:
    """OffsetFetch v8+ for several groups at once."""
    entries = tuple(
        kr.nested(
            OFFSET_FETCH,
            version,
            "OffsetFetchRequestGroup",
            group_id=g,
            topics=_topics(version, "OffsetFetchRequestTopics", ps),
        )
        for g, ps in groups.items()
    )
    response = client.request(
        kr.request(OFFSET_FETCH, version, groups=entries, require_stable=True)
    )
    return {g.group_id: (ErrorCode(g.error_code), _flatten(g.topics)) for g in response.groups}
