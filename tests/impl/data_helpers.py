"""Requests and small steps for the data-path tests (produce, fetch, list offsets,
OffsetForLeaderEpoch, InitProducerId), on top of ``tests.impl.kio_requests``."""

from __future__ import annotations

from typing import Any

from impl.wire import records
from tests.impl import kio_requests as kr
from tests.impl.wire_client import WireClient

INIT_PRODUCER_ID = 22
OFFSET_FOR_LEADER_EPOCH = 23
NONE = 0


def create_topic(
    client: WireClient, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    response = client.request(
        kr.create_topics([(name, partitions, 1)], configs=dict(configs or {}))
    )
    assert response.topics[0].error_code == NONE, response


def batch(values: list[bytes], timestamp: int = 1000, **kwargs: Any) -> bytes:
    """A record batch of keyless records."""
    return records.build_batch([(None, v) for v in values], timestamp=timestamp, **kwargs)


def produce(client: WireClient, topic: str, partition: int, data: bytes, acks: int = -1) -> Any:
    """The one partition answer of a produce request."""
    response = client.request(kr.produce(topic, partition, data, acks=acks))
    return response.responses[0].partition_responses[0]


def fetch_request(
    topic: str,
    partitions: list[tuple[int, int, int]],
    *,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    max_bytes: int = 52428800,
    current_leader_epoch: int = -1,
    version: int = 12,
) -> Any:
    """Fetch of (partition, offset, partition_max_bytes) entries of one topic."""
    parts = tuple(
        kr.nested(
            kr.FETCH,
            version,
            "FetchPartition",
            partition=p,
            fetch_offset=offset,
            partition_max_bytes=limit,
            current_leader_epoch=current_leader_epoch,
        )
        for p, offset, limit in partitions
    )
    return kr.request(
        kr.FETCH,
        version,
        cluster_id=None,
        replica_id=-1,
        max_wait=kr.ms(max_wait_ms),
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=0,
        topics=(kr.nested(kr.FETCH, version, "FetchTopic", topic=topic, partitions=parts),),
        forgotten_topics_data=(),
    )


def fetch_one(client: WireClient, topic: str, partition: int, offset: int, **kwargs: Any) -> Any:
    """The one partition answer of a fetch without waiting."""
    response = client.request(fetch_request(topic, [(partition, offset, 1048576)], **kwargs))
    assert getattr(response, "error_code", NONE) == NONE
    return response.responses[0].partitions[0]


def headers(data: bytes | None) -> list[records.BatchHeader]:
    return [h for _, h in records.iter_batches(data or b"")]


def values(data: bytes | None) -> list[tuple[int, bytes | None]]:
    """(offset, value) of every record in fetched batches."""
    buf = data or b""
    out: list[tuple[int, bytes | None]] = []
    for pos, h in records.iter_batches(buf):
        out += [(r.offset, r.value) for r in records.decode_records(buf[pos : pos + h.size])]
    return out


def list_offsets(
    client: WireClient,
    topic: str,
    partition: int,
    timestamp: int,
    *,
    current_leader_epoch: int = -1,
    version: int = 7,
) -> Any:
    """The one partition answer of a ListOffsets request."""
    part = kr.nested(
        kr.LIST_OFFSETS,
        version,
        "ListOffsetsPartition",
        partition_index=partition,
        current_leader_epoch=current_leader_epoch,
        timestamp=timestamp,
    )
    topic_entry = kr.nested(
        kr.LIST_OFFSETS, version, "ListOffsetsTopic", name=topic, partitions=(part,)
    )
    response = client.request(
        kr.request(
            kr.LIST_OFFSETS, version, replica_id=-1, isolation_level=0, topics=(topic_entry,)
        )
    )
    return response.topics[0].partitions[0]


def offset_for_leader_epoch(
    client: WireClient,
    topic: str,
    partition: int,
    leader_epoch: int,
    *,
    current_leader_epoch: int = -1,
    version: int = 4,
) -> Any:
    """The one partition answer of an OffsetForLeaderEpoch request."""
    part = kr.nested(
        OFFSET_FOR_LEADER_EPOCH,
        version,
        "OffsetForLeaderPartition",
        partition=partition,
        current_leader_epoch=current_leader_epoch,
        leader_epoch=leader_epoch,
    )
    topic_entry = kr.nested(
        OFFSET_FOR_LEADER_EPOCH, version, "OffsetForLeaderTopic", topic=topic, partitions=(part,)
    )
    response = client.request(
        kr.request(OFFSET_FOR_LEADER_EPOCH, version, replica_id=-1, topics=(topic_entry,))
    )
    return response.topics[0].partitions[0]


def init_producer_id(client: WireClient, version: int = 4) -> Any:
    return client.request(
        kr.request(
            INIT_PRODUCER_ID,
            version,
            transactional_id=None,
            transaction_timeout=kr.ms(60000),
            producer_id=-1,
            producer_epoch=-1,
        )
    )
