"""Request entities for the broker tests, of any version: fields a version does not have
are dropped, nested classes are found by name beside the request class."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Mapping
from typing import Any

from kio.static.primitive import i32Timedelta

from impl.wire import codec

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
API_VERSIONS, CREATE_TOPICS, DELETE_TOPICS = 18, 19, 20
DESCRIBE_CONFIGS, DESCRIBE_CLUSTER = 32, 60


def ms(value: int) -> i32Timedelta:
    return i32Timedelta.parse(datetime.timedelta(milliseconds=value))


def _build(cls: type[Any], values: dict[str, Any]) -> Any:
    names = cls.__dataclass_fields__
    return cls(**{k: v for k, v in values.items() if k in names})


def request(api_key: int, version: int, /, **values: Any) -> Any:
    """The request entity of ``api_key`` v``version`` from the fields it has."""
    return _build(codec.request_type(api_key, version), values)


def nested(api_key: int, version: int, class_name: str, /, **values: Any) -> Any:
    """An instance of the nested request class ``class_name`` of ``api_key`` v``version``."""
    module = sys.modules[codec.request_type(api_key, version).__module__]
    return _build(getattr(module, class_name), values)


def api_versions(version: int = 3) -> Any:
    return request(
        API_VERSIONS, version, client_software_name="kafkaref-test", client_software_version="1"
    )


def metadata(topics: list[str] | None, version: int = 12, allow_auto: bool = True) -> Any:
    entries = None
    if topics is not None:
        entries = tuple(
            nested(METADATA, version, "MetadataRequestTopic", name=t, topic_id=None) for t in topics
        )
    return request(
        METADATA,
        version,
        topics=entries,
        allow_auto_topic_creation=allow_auto,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False,
    )


def create_topics(
    topics: list[tuple[str, int, int]],
    configs: Mapping[str, str | None] | None = None,
    version: int = 7,
    validate_only: bool = False,
) -> Any:
    """CreateTopics for (name, partitions, replication factor) each with ``configs``."""
    entries = tuple(
        nested(
            CREATE_TOPICS,
            version,
            "CreatableTopic",
            name=name,
            num_partitions=partitions,
            replication_factor=rf,
            assignments=(),
            configs=tuple(
                nested(CREATE_TOPICS, version, "CreatableTopicConfig", name=k, value=v)
                for k, v in (configs or {}).items()
            ),
        )
        for name, partitions, rf in topics
    )
    return request(
        CREATE_TOPICS, version, topics=entries, timeout=ms(30000), validate_only=validate_only
    )


def delete_topics(names: list[str], version: int = 5) -> Any:
    if version >= 6:
        topics = tuple(
            nested(DELETE_TOPICS, version, "DeleteTopicState", name=n, topic_id=None) for n in names
        )
        return request(DELETE_TOPICS, version, topics=topics, timeout=ms(30000))
    return request(DELETE_TOPICS, version, topic_names=tuple(names), timeout=ms(30000))


def produce(topic: str, partition: int, batch: bytes, acks: int = -1, version: int = 9) -> Any:
    data = nested(PRODUCE, version, "PartitionProduceData", index=partition, records=batch)
    topic_data = nested(PRODUCE, version, "TopicProduceData", name=topic, partition_data=(data,))
    return request(
        PRODUCE,
        version,
        transactional_id=None,
        acks=acks,
        timeout=ms(30000),
        topic_data=(topic_data,),
    )


def fetch(
    topic: str,
    partition: int,
    offset: int,
    *,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    version: int = 12,
) -> Any:
    part = nested(
        FETCH,
        version,
        "FetchPartition",
        partition=partition,
        fetch_offset=offset,
        partition_max_bytes=1048576,
    )
    return request(
        FETCH,
        version,
        cluster_id=None,
        max_wait=ms(max_wait_ms),
        min_bytes=min_bytes,
        max_bytes=52428800,
        topics=(nested(FETCH, version, "FetchTopic", topic=topic, partitions=(part,)),),
        forgotten_topics_data=(),
    )


def describe_configs(
    resources: list[tuple[int, str, list[str] | None]],
    version: int = 4,
    include_synonyms: bool = False,
) -> Any:
    entries = tuple(
        nested(
            DESCRIBE_CONFIGS,
            version,
            "DescribeConfigsResource",
            resource_type=kind,
            resource_name=name,
            configuration_keys=None if keys is None else tuple(keys),
        )
        for kind, name, keys in resources
    )
    return request(
        DESCRIBE_CONFIGS,
        version,
        resources=entries,
        include_synonyms=include_synonyms,
        include_documentation=False,
    )


def describe_cluster(version: int = 1, endpoint_type: int = 1) -> Any:
    return request(
        DESCRIBE_CLUSTER,
        version,
        include_cluster_authorized_operations=False,
        endpoint_type=endpoint_type,
        include_fenced_brokers=False,
    )
