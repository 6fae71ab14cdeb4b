"""The APIs this broker serves: api key -> (min version, max version, handler).

Max versions are those librdkafka 2.x, kafka-python 3.x and aiokafka 0.14 negotiate and
kio has, capped where a newer version needs something this broker does not do:
Produce v10+ (KIP-951 leader hints; v13 topic ids), Fetch v13+ (topics by id only),
ListOffsets v8+ (tiered storage timestamps), InitProducerId v5+ (KIP-890 transactions),
Metadata v13 (top-level error code only; v12 is what current clients ask for),
OffsetCommit v10 and OffsetFetch v10 (topic ids), FindCoordinator v6 (share groups);
OffsetCommit v0-v1 and OffsetFetch v0 are ZooKeeper-era offsets kio does not have.
The group membership APIs are served at every version kio has (DescribeGroups to v5:
v6 is Kafka 4's, with KIP-1043 errors for unknown groups).
Minimum versions: Produce v3 and Fetch v4 are the first with record batches v2, the only
format this broker stores (Kafka 4 dropped the older ones too)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeAlias

import attrs
from kio.static.protocol import Entity

from impl.broker.admin import handle_create_topics, handle_delete_topics
from impl.broker.api_versions import handle_api_versions
from impl.broker.cluster import handle_describe_cluster
from impl.broker.configs import handle_describe_configs
from impl.broker.context import BrokerContext
from impl.broker.fetch import handle_fetch
from impl.broker.leader_epoch import handle_offset_for_leader_epoch
from impl.broker.list_offsets import handle_list_offsets
from impl.broker.metadata import handle_metadata
from impl.broker.produce import handle_produce
from impl.broker.producer_ids import handle_init_producer_id
from impl.group.group_apis import (
    handle_describe_groups,
    handle_heartbeat,
    handle_join_group,
    handle_leave_group,
    handle_list_groups,
    handle_sync_group,
)
from impl.group.offset_apis import (
    handle_find_coordinator,
    handle_offset_commit,
    handle_offset_fetch,
)
from impl.wire.framing import RequestHeader

# A handler answers with a response entity, a whole response frame already encoded
# (Produce: the hottest answer, see impl.wire.produce_response), or None (no response).
Handler: TypeAlias = Callable[
    [BrokerContext, RequestHeader, Entity], Awaitable[Entity | bytes | None]
]

PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
OFFSET_COMMIT = 8
OFFSET_FETCH = 9
FIND_COORDINATOR = 10
JOIN_GROUP = 11
HEARTBEAT = 12
LEAVE_GROUP = 13
SYNC_GROUP = 14
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
API_VERSIONS = 18
CREATE_TOPICS = 19
DELETE_TOPICS = 20
INIT_PRODUCER_ID = 22
OFFSET_FOR_LEADER_EPOCH = 23
DESCRIBE_CONFIGS = 32
DESCRIBE_CLUSTER = 60


@attrs.frozen(slots=True)
class Api:
    """One API: the version range served and the handler."""

    min_version: int
    max_version: int
    handler: Handler

    def supports(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version


APIS: Mapping[int, Api] = {
    PRODUCE: Api(3, 9, handle_produce),
    FETCH: Api(4, 12, handle_fetch),
    LIST_OFFSETS: Api(1, 7, handle_list_offsets),
    METADATA: Api(0, 12, handle_metadata),
    OFFSET_COMMIT: Api(2, 9, handle_offset_commit),
    OFFSET_FETCH: Api(1, 9, handle_offset_fetch),
    FIND_COORDINATOR: Api(0, 5, handle_find_coordinator),
    JOIN_GROUP: Api(0, 9, handle_join_group),
    HEARTBEAT: Api(0, 4, handle_heartbeat),
    LEAVE_GROUP: Api(0, 5, handle_leave_group),
    SYNC_GROUP: Api(0, 5, handle_sync_group),
    DESCRIBE_GROUPS: Api(0, 5, handle_describe_groups),
    LIST_GROUPS: Api(0, 5, handle_list_groups),
    API_VERSIONS: Api(0, 4, handle_api_versions),
    CREATE_TOPICS: Api(2, 7, handle_create_topics),
    DELETE_TOPICS: Api(1, 6, handle_delete_topics),
    INIT_PRODUCER_ID: Api(0, 4, handle_init_producer_id),
    OFFSET_FOR_LEADER_EPOCH: Api(2, 4, handle_offset_for_leader_epoch),
    DESCRIBE_CONFIGS: Api(1, 4, handle_describe_configs),
    DESCRIBE_CLUSTER: Api(0, 1, handle_describe_cluster),
}


def supported_versions() -> dict[int, tuple[int, int]]:
    """api key -> (min, max) as ApiVersions reports them."""
    return {key: (api.min_version, api.max_version) for key, api in sorted(APIS.items())}
