"""What a broker says the cluster looks like: one Metadata request over the wire.

This module owns the harness's view of a cluster as any Kafka client sees it: the brokers,
the controller id, and each partition's leader, leader epoch, replicas, in-sync replicas
and offline replicas, from a Metadata v12 request (all topics) sent with the shared codec
``impl.wire.codec`` on a plain socket, with a deadline on every step.  It asks nothing
that only kafkaref would answer, so it describes any Kafka-protocol cluster.
"""

from __future__ import annotations

import socket
import struct
import time

import attrs
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.metadata.v12.response import MetadataResponse

from impl.wire import codec

__all__ = ["BrokerView", "ClusterView", "MetadataError", "PartitionView", "fetch_metadata"]

_LENGTH = struct.Struct(">i")
_MAX_FRAME = 64 * 1024 * 1024
CLIENT_ID = "kafkaref-cluster"


class MetadataError(RuntimeError):
    """The broker could not be reached, or did not answer Metadata within the deadline."""


@attrs.frozen
class BrokerView:
    node_id: int
    host: str
    port: int


@attrs.frozen
class PartitionView:
    """One partition as Metadata shows it (leader -1: no leader; Kafka's error code)."""

    topic: str
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline: tuple[int, ...]
    error_code: int


@attrs.frozen
class ClusterView:
    """The answer of one broker to Metadata for all topics."""

    brokers: tuple[BrokerView, ...]
    controller_id: int
    cluster_id: str | None
    partitions: tuple[PartitionView, ...]
    topic_errors: tuple[tuple[str, int], ...] = ()

    @property
    def broker_ids(self) -> frozenset[int]:
        return frozenset(b.node_id for b in self.brokers)

    def topic(self, name: str) -> tuple[PartitionView, ...]:
        """The partitions of ``name``, in partition order (empty when it is unknown)."""
        return tuple(sorted((p for p in self.partitions if p.topic == name), key=_index))

    def partition(self, name: str, index: int) -> PartitionView | None:
        for p in self.partitions:
            if p.topic == name and p.partition == index:
                return p
        return None


def _index(p: PartitionView) -> int:
    return p.partition


def _recv_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MetadataError("no complete Metadata response before the deadline")
        sock.settimeout(remaining)
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise MetadataError("the broker closed the connection")
        data += chunk
    return bytes(data)


def fetch_metadata(host: str, port: int, timeout_s: float = 5.0) -> ClusterView:
    """Ask the broker at ``host:port`` for the metadata of every topic."""
    deadline = time.monotonic() + timeout_s
    request = MetadataRequest(
        topics=None,
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(codec.encode_request(request, 1, CLIENT_ID))
            (size,) = _LENGTH.unpack(_recv_exactly(sock, 4, deadline))
            if not 0 <= size <= _MAX_FRAME:
                raise MetadataError(f"a response frame of {size} bytes")
            frame = _recv_exactly(sock, size, deadline)
    except OSError as exc:
        raise MetadataError(f"Metadata from {host}:{port}: {exc}") from exc
    try:
        correlation_id, response = codec.decode_response(
            request.__api_key__, request.__version__, frame
        )
    except codec.DecodeError as exc:
        raise MetadataError(f"Metadata from {host}:{port} does not decode: {exc}") from exc
    if correlation_id != 1 or not isinstance(response, MetadataResponse):
        raise MetadataError(f"Metadata from {host}:{port}: unexpected response")
    return _view(response)


def _view(response: MetadataResponse) -> ClusterView:
    partitions: list[PartitionView] = []
    errors: list[tuple[str, int]] = []
    for topic in response.topics:
        name = topic.name or ""
        if int(topic.error_code) != 0:
            errors.append((name, int(topic.error_code)))
        for p in topic.partitions:
            partitions.append(
                PartitionView(
                    topic=name,
                    partition=int(p.partition_index),
                    leader=int(p.leader_id),
                    leader_epoch=int(p.leader_epoch),
                    replicas=tuple(int(r) for r in p.replica_nodes),
                    isr=tuple(int(r) for r in p.isr_nodes),
                    offline=tuple(int(r) for r in p.offline_replicas),
                    error_code=int(p.error_code),
                )
            )
    brokers = tuple(
        sorted(
            (BrokerView(int(b.node_id), b.host, int(b.port)) for b in response.brokers),
            key=lambda b: b.node_id,
        )
    )
    return ClusterView(
        brokers=brokers,
        controller_id=int(response.controller_id),
        cluster_id=response.cluster_id,
        partitions=tuple(sorted(partitions, key=lambda p: (p.topic, p.partition))),
        topic_errors=tuple(sorted(errors)),
    )
