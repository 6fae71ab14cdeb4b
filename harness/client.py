"""The harness's own Kafka client: small, blocking and exact, on the shared codec (impl.wire).

It exists to observe a broker, not to hide it: every request goes out at an explicit API
version (the highest both sides support, unless the caller pins one), with explicit acks
and timeouts, one request at a time on one connection, never retried, never batched
with another, never redirected to another broker.  Every answer comes back whole, error
codes included (as ``spec.errors.ErrorCode`` when the spec knows the code, else the
number), in small result types named after the protocol's fields.

Transport failures are typed: ``BrokerClosedError`` when the broker closes the connection
(Kafka's answer to a failed acks=0 produce), ``ResponseTimeoutError`` when no answer comes
before the deadline, ``UnsupportedApiError`` when the broker offers no common version,
``UndecodableResponseError`` when the answer does not follow the version's schema.
The client imports nothing of the broker: it talks to any Kafka-protocol system.  This
module has the connection, version negotiation and the data path (Produce, Fetch,
ListOffsets, InitProducerId); ``harness.client_admin`` adds Metadata, CreateTopics and
DeleteTopics, ``harness.client_groups`` the consumer group APIs.
"""

from __future__ import annotations

import datetime
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

import attrs
from kio.static.primitive import i32Timedelta

from impl.wire import codec
from impl.wire.framing import FrameReader
from spec.errors import ErrorCode
from spec.state import TopicPartition

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 8, 9, 10
JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
API_VERSIONS, CREATE_TOPICS, DELETE_TOPICS, INIT_PRODUCER_ID = 18, 19, 20, 22

APIS: Mapping[int, tuple[str, int, int]] = {
    PRODUCE: ("Produce", 3, 9),  # v3: record batches v2; v10+ adds KIP-951 leader hints
    FETCH: ("Fetch", 4, 12),  # v13+ names topics by id only
    LIST_OFFSETS: ("ListOffsets", 1, 7),
    METADATA: ("Metadata", 1, 12),
    OFFSET_COMMIT: ("OffsetCommit", 2, 8),
    OFFSET_FETCH: ("OffsetFetch", 1, 7),  # v8+ batches groups
    FIND_COORDINATOR: ("FindCoordinator", 0, 4),
    JOIN_GROUP: ("JoinGroup", 0, 9),
    HEARTBEAT: ("Heartbeat", 0, 4),
    LEAVE_GROUP: ("LeaveGroup", 0, 5),
    SYNC_GROUP: ("SyncGroup", 0, 5),
    API_VERSIONS: ("ApiVersions", 0, 3),
    CREATE_TOPICS: ("CreateTopics", 2, 7),
    DELETE_TOPICS: ("DeleteTopics", 1, 5),  # v6+ names topics by name or id
    INIT_PRODUCER_ID: ("InitProducerId", 0, 4),  # v5+ is KIP-890's transactions protocol
}
"""Per API key: Kafka's name of the API, and the versions this client builds and reads."""
API_NAMES: Mapping[int, str] = {key: name for key, (name, _, _) in APIS.items()}
CLIENT_VERSIONS: Mapping[int, tuple[int, int]] = {k: (lo, hi) for k, (_, lo, hi) in APIS.items()}
GROUP_APIS = tuple(k for k in APIS if OFFSET_COMMIT <= k <= SYNC_GROUP)
"""The classic consumer group protocol's APIs (keys 8 to 14)."""

DEFAULT_TIMEOUT_S = 10.0
Error = ErrorCode | int
"""An error code as the broker sent it: the spec's enum member, or the number it lacks."""


def error(code: int) -> Error:
    """The error code ``code`` (kio's enum or a plain int) as the spec's enum when it
    knows it."""
    value = int(code)
    try:
        return ErrorCode(value)
    except ValueError:
        return value


def error_name(code: Error) -> str:
    """Kafka's name of an error code (the number when the spec does not know it)."""
    return code.name if isinstance(code, ErrorCode) else f"error {code}"


class ClientError(Exception):
    """The conversation with the broker failed (not a Kafka error code: those are results)."""


class BrokerClosedError(ClientError):
    """The broker closed the connection (or it was never opened)."""


class ResponseTimeoutError(ClientError):
    """No whole response arrived before the deadline."""


class UnsupportedApiError(ClientError):
    """The broker offers no version of an API that this client can speak."""


class UnexpectedResponseError(ClientError):
    """A response whose correlation id is not the awaited request's: an answer to another
    request (one that gets none, such as an acks=0 Produce), or to none."""

    def __init__(self, got: int, expected: int, frame: bytes) -> None:
        super().__init__(f"correlation id {got} answers no awaited request (expected {expected})")
        self.got, self.expected, self.frame = got, expected, frame


class UndecodableResponseError(ClientError):
    """The response is not an encoding of the API version's schema: the broker broke the
    protocol.  ``frame`` is the response as received (after its size)."""

    def __init__(self, message: str, api_key: int, version: int, frame: bytes) -> None:
        super().__init__(message)
        self.api_key, self.version, self.frame = api_key, version, frame


# --- results -------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class ProducePartitionResult:
    error: Error
    base_offset: int
    log_start_offset: int
    error_message: str | None = None


@attrs.frozen(slots=True)
class FetchPartitionResult:
    error: Error
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: bytes


@attrs.frozen(slots=True)
class FetchResult:
    error: Error
    partitions: Mapping[TopicPartition, FetchPartitionResult]


@attrs.frozen(slots=True)
class OffsetResult:
    error: Error
    offset: int
    timestamp: int = -1
    leader_epoch: int = -1


@attrs.frozen(slots=True)
class ProducerIdResult:
    error: Error
    producer_id: int
    producer_epoch: int


# --- entity building -----------------------------------------------------------------------


def ms(value: int) -> i32Timedelta:
    """A millisecond duration as the protocol's int32 field."""
    return i32Timedelta.parse(datetime.timedelta(milliseconds=value))


def _build(cls: type[Any], values: Mapping[str, Any]) -> Any:
    """``cls`` from the fields it has among ``values`` (versions differ in their fields);
    a field the version requires but ``values`` lacks is a TypeError, not a silent default."""
    names = cls.__dataclass_fields__
    return cls(**{k: v for k, v in values.items() if k in names})


class KafkaClient:
    """One connection to one broker.  ``pinned`` fixes API versions ({api key: version});
    otherwise each request uses the highest version both sides support (after
    :meth:`negotiate`, which asks ApiVersions)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str = "kafkaref-harness",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        pinned: Mapping[int, int] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.timeout_s = timeout_s
        self.pinned = dict(pinned or {})
        self.broker_versions: dict[int, tuple[int, int]] = {}
        self._sock: socket.socket | None = None
        self._reader = FrameReader()
        self._frames: list[bytes] = []
        self._next_correlation_id = 1

    # --- connection -------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection (ConnectionRefusedError and other OSErrors pass through)."""
        self.close()
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._reader, self._frames = sock, FrameReader(), []

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def __enter__(self) -> KafkaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, request: Any) -> int:
        """Send one request entity; its correlation id."""
        if self._sock is None:
            raise BrokerClosedError("not connected")
        correlation_id = self._next_correlation_id
        self._next_correlation_id += 1
        try:
            self._sock.sendall(codec.encode_request(request, correlation_id, self.client_id))
        except OSError as e:
            self.close()
            raise BrokerClosedError(f"sending failed: {e}") from e
        return correlation_id

    def _next_frame(self) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        while not self._frames:
            if self._sock is None:
                raise BrokerClosedError("not connected")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()  # a late answer must never be read as the next one's
                raise ResponseTimeoutError(f"no response within {self.timeout_s} s")
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError as e:
                self.close()
                raise BrokerClosedError(f"connection failed: {e}") from e
            if not data:
                self.close()
                raise BrokerClosedError("the broker closed the connection")
            self._frames += self._reader.feed(data)
        return self._frames.pop(0)

    def request(self, request: Any) -> Any:
        """Send ``request`` and return its response entity (kio's)."""
        correlation_id = self.send(request)
        frame = self._next_frame()
        key, version = request.__api_key__, request.__version__
        if len(frame) >= 4:  # whose answer it is comes first: it may not be this request's
            got = int.from_bytes(frame[:4], "big", signed=True)
            if got != correlation_id:
                self.close()
                raise UnexpectedResponseError(got, correlation_id, bytes(frame))
        try:
            got, response = codec.decode_response(key, version, frame)
        except codec.DecodeError as e:
            self.close()
            name = API_NAMES.get(key, f"API {key}")
            raise UndecodableResponseError(
                f"undecodable {name} v{version} response: {e}", key, version, bytes(frame)
            ) from e
        return response

    # --- versions ---------------------------------------------------------------------

    def negotiate(self, version: int = 3) -> dict[int, tuple[int, int]]:
        """ApiVersions: remember and return the broker's {api key: (min, max)}."""
        values = {"client_software_name": "kafkaref-harness", "client_software_version": "0.1"}
        response = self.request(_build(codec.request_type(API_VERSIONS, version), values))
        offered = {
            int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys
        }
        if error(response.error_code) == ErrorCode.UNSUPPORTED_VERSION and version > 0:
            # Too new for the broker: it answered in v0 with the versions it has.
            theirs = offered.get(API_VERSIONS, (0, 0))[1]
            if theirs < version:
                return self.negotiate(theirs)
        self.broker_versions = offered
        return offered

    def version(self, api_key: int) -> int:
        """The version requests of ``api_key`` go out at."""
        if api_key in self.pinned:
            return self.pinned[api_key]
        low, high = CLIENT_VERSIONS[api_key]
        if not self.broker_versions:
            return high if api_key == API_VERSIONS else low
        theirs = self.broker_versions.get(api_key)
        if theirs is None or theirs[0] > high or theirs[1] < low:
            raise UnsupportedApiError(
                f"the broker offers {API_NAMES[api_key]} {theirs}, this client {low}..{high}"
            )
        return min(high, theirs[1])

    def offers(self, api_key: int) -> bool:
        """Whether a common version of ``api_key`` exists."""
        try:
            self.version(api_key)
        except UnsupportedApiError:
            return False
        return True

    def build(self, api_key: int, /, **values: Any) -> Any:
        """The request entity of ``api_key`` at the version it goes out at."""
        return _build(codec.request_type(api_key, self.version(api_key)), values)

    def nested(self, api_key: int, class_name: str, /, **values: Any) -> Any:
        """An entity of the nested class ``class_name`` of ``api_key``'s request."""
        module = sys.modules[codec.request_type(api_key, self.version(api_key)).__module__]
        return _build(getattr(module, class_name), values)

    # --- topics and data ------------------------------------------------------------------

    def produce(
        self, batches: Mapping[TopicPartition, bytes], *, acks: int, timeout_ms: int = 30_000
    ) -> dict[TopicPartition, ProducePartitionResult] | None:
        """One Produce request with one record batch per partition.  acks=0: None (the
        broker sends no answer; a failed acks=0 produce closes the connection)."""
        by_topic: dict[str, list[Any]] = {}
        for tp, batch in batches.items():
            by_topic.setdefault(tp.topic, []).append(
                self.nested(PRODUCE, "PartitionProduceData", index=tp.partition, records=batch)
            )
        request = self.build(
            PRODUCE,
            transactional_id=None,
            acks=acks,
            timeout=ms(timeout_ms),
            topic_data=tuple(
                self.nested(PRODUCE, "TopicProduceData", name=name, partition_data=tuple(parts))
                for name, parts in by_topic.items()
            ),
        )
        if acks == 0:
            self.send(request)
            return None
        response = self.request(request)
        return {
            TopicPartition(str(t.name), int(p.index)): ProducePartitionResult(
                error(p.error_code),
                int(p.base_offset),
                int(getattr(p, "log_start_offset", -1)),
                getattr(p, "error_message", None),
            )
            for t in response.responses
            for p in t.partition_responses
        }

    def fetch(
        self,
        offsets: Mapping[TopicPartition, int],
        *,
        max_wait_ms: int = 0,
        min_bytes: int = 1,
        max_bytes: int = 52_428_800,
        partition_max_bytes: int = 1_048_576,
        current_leader_epoch: int = -1,
        isolation_level: int = 0,
    ) -> FetchResult:
        """A consumer's Fetch (replica id -1, no fetch session) of each partition at its
        offset."""
        by_topic: dict[str, list[Any]] = {}
        for tp, offset in offsets.items():
            by_topic.setdefault(tp.topic, []).append(
                self.nested(
                    FETCH,
                    "FetchPartition",
                    partition=tp.partition,
                    fetch_offset=offset,
                    partition_max_bytes=partition_max_bytes,
                    current_leader_epoch=current_leader_epoch,
                    log_start_offset=-1,
                    last_fetched_epoch=-1,
                )
            )
        response = self.request(
            self.build(
                FETCH,
                cluster_id=None,
                replica_id=-1,
                max_wait=ms(max_wait_ms),
                min_bytes=min_bytes,
                max_bytes=max_bytes,
                isolation_level=isolation_level,
                session_id=0,
                session_epoch=-1,
                topics=tuple(
                    self.nested(FETCH, "FetchTopic", topic=name, partitions=tuple(parts))
                    for name, parts in by_topic.items()
                ),
                forgotten_topics_data=(),
                rack_id="",
            )
        )
        return FetchResult(
            error(getattr(response, "error_code", 0)),
            {
                TopicPartition(str(t.topic), int(p.partition_index)): FetchPartitionResult(
                    error(p.error_code),
                    int(p.high_watermark),
                    int(getattr(p, "last_stable_offset", -1)),
                    int(getattr(p, "log_start_offset", -1)),
                    bytes(p.records or b""),
                )
                for t in response.responses
                for p in t.partitions
            },
        )

    def list_offsets(
        self, timestamps: Mapping[TopicPartition, int], *, current_leader_epoch: int = -1
    ) -> dict[TopicPartition, OffsetResult]:
        """ListOffsets: per partition the offset for a timestamp (-2 earliest, -1 latest)."""
        by_topic: dict[str, list[Any]] = {}
        for tp, ts in timestamps.items():
            by_topic.setdefault(tp.topic, []).append(
                self.nested(
                    LIST_OFFSETS,
                    "ListOffsetsPartition",
                    partition_index=tp.partition,
                    current_leader_epoch=current_leader_epoch,
                    timestamp=ts,
                    max_num_offsets=1,
                )
            )
        response = self.request(
            self.build(
                LIST_OFFSETS,
                replica_id=-1,
                isolation_level=0,
                topics=tuple(
                    self.nested(LIST_OFFSETS, "ListOffsetsTopic", name=n, partitions=tuple(ps))
                    for n, ps in by_topic.items()
                ),
            )
        )
        return {
            TopicPartition(str(t.name), int(p.partition_index)): OffsetResult(
                error(p.error_code),
                int(p.offset),
                int(p.timestamp),
                int(getattr(p, "leader_epoch", -1)),
            )
            for t in response.topics
            for p in t.partitions
        }

    def init_producer_id(self, *, transaction_timeout_ms: int = 60_000) -> ProducerIdResult:
        """InitProducerId for an idempotent (non-transactional) producer."""
        response = self.request(
            self.build(
                INIT_PRODUCER_ID,
                transactional_id=None,
                transaction_timeout=ms(transaction_timeout_ms),
                producer_id=-1,
                producer_epoch=-1,
            )
        )
        return ProducerIdResult(
            error(response.error_code), int(response.producer_id), int(response.producer_epoch)
        )
