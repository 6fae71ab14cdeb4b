"""The topic administration APIs of the harness's client: Metadata, CreateTopics and
DeleteTopics, with their result types.

Functions on a :class:`harness.client.KafkaClient`, with its rules: the version is explicit
(negotiated or pinned), one request at a time, nothing retried, every error code returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from harness.client import CREATE_TOPICS, DELETE_TOPICS, METADATA, Error, KafkaClient, error, ms


@attrs.frozen(slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int


@attrs.frozen(slots=True)
class PartitionMetadata:
    error: Error
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@attrs.frozen(slots=True)
class TopicMetadata:
    error: Error
    partitions: Mapping[int, PartitionMetadata]


@attrs.frozen(slots=True)
class MetadataResult:
    brokers: tuple[BrokerInfo, ...]
    controller_id: int
    topics: Mapping[str, TopicMetadata]


@attrs.frozen(slots=True)
class NewTopic:
    """A CreateTopics entry: a partition count and replication factor, or an explicit
    replica assignment (one broker list per partition)."""

    name: str
    partitions: int = -1
    replication_factor: int = -1
    assignment: tuple[tuple[int, ...], ...] = ()
    configs: Mapping[str, str] = attrs.field(factory=dict)


def metadata(
    client: KafkaClient, topics: Sequence[str] | None, *, allow_auto_creation: bool = False
) -> MetadataResult:
    """Metadata of ``topics`` (None: all topics)."""
    entries = None
    if topics is not None:
        entries = tuple(
            client.nested(METADATA, "MetadataRequestTopic", name=t, topic_id=None) for t in topics
        )
    response = client.request(
        client.build(
            METADATA,
            topics=entries,
            allow_auto_topic_creation=allow_auto_creation,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False,
        )
    )
    return MetadataResult(
        brokers=tuple(BrokerInfo(int(b.node_id), b.host, int(b.port)) for b in response.brokers),
        controller_id=int(getattr(response, "controller_id", -1)),
        topics={
            str(t.name): TopicMetadata(
                error(t.error_code),
                {
                    int(p.partition_index): PartitionMetadata(
                        error(p.error_code),
                        int(p.leader_id),
                        int(getattr(p, "leader_epoch", -1)),
                        tuple(int(r) for r in p.replica_nodes),
                        tuple(int(r) for r in p.isr_nodes),
                    )
                    for p in t.partitions
                },
            )
            for t in response.topics
        },
    )


def create_topics(
    client: KafkaClient, topics: Sequence[NewTopic], *, timeout_ms: int = 30_000
) -> dict[str, tuple[Error, str | None]]:
    """CreateTopics; {topic: (error, error message)}."""
    entries = tuple(
        client.nested(
            CREATE_TOPICS,
            "CreatableTopic",
            name=t.name,
            num_partitions=t.partitions,
            replication_factor=t.replication_factor,
            assignments=tuple(
                client.nested(
                    CREATE_TOPICS,
                    "CreatableReplicaAssignment",
                    partition_index=i,
                    broker_ids=tuple(brokers),
                )
                for i, brokers in enumerate(t.assignment)
            ),
            configs=tuple(
                client.nested(CREATE_TOPICS, "CreatableTopicConfig", name=k, value=v)
                for k, v in t.configs.items()
            ),
        )
        for t in topics
    )
    response = client.request(
        client.build(CREATE_TOPICS, topics=entries, timeout=ms(timeout_ms), validate_only=False)
    )
    return {
        str(t.name): (error(t.error_code), getattr(t, "error_message", None))
        for t in response.topics
    }


def delete_topics(
    client: KafkaClient, names: Sequence[str], *, timeout_ms: int = 30_000
) -> dict[str, Error]:
    """DeleteTopics (by name); each topic's error."""
    response = client.request(
        client.build(DELETE_TOPICS, topic_names=tuple(names), timeout=ms(timeout_ms))
    )
    return {str(t.name): error(t.error_code) for t in response.responses}
