"""Kafka's ZooKeeper layout (as Kafka 2.x/3.x in ZooKeeper mode writes it): the znode
paths and the JSON of each znode, with encode/decode functions.  No I/O here.

    /brokers/ids/<id>                          ephemeral broker registration (version 5)
    /controller                                ephemeral {"version":1,"brokerid":N,...}
    /controller_epoch                          "N" (its znode version fences controllers)
    /brokers/topics/<t>                        replica assignment (version 3, topic id)
    /brokers/topics/<t>/partitions/<p>/state   LeaderAndIsr (version 1)
    /admin/delete_topics/<t>                   pending topic deletion
    /cluster/id                                {"version":"1","id":"<id>"}
    /config/topics/<t>                         {"version":1,"config":{...}}
    /latest_producer_id_block                  {"version":1,"broker":N,"block_start":"S",
                                                "block_end":"E"} (ids as strings, E inclusive)
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

BROKER_IDS = "/brokers/ids"
BROKER_TOPICS = "/brokers/topics"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
DELETE_TOPICS = "/admin/delete_topics"
CLUSTER_ID = "/cluster/id"
CONFIG_TOPICS = "/config/topics"
LATEST_PRODUCER_ID_BLOCK = "/latest_producer_id_block"  # ProducerIdBlockZNode.path

# The persistent parents Kafka creates at start (KafkaZkClient.createTopLevelPaths).
PERSISTENT_PATHS = (
    "/brokers/ids",
    "/brokers/topics",
    "/brokers/seqid",
    "/admin/delete_topics",
    "/config/topics",
    "/config/brokers",
    "/config/changes",
    "/isr_change_notification",
    "/cluster",
    LATEST_PRODUCER_ID_BLOCK,
)

NO_LEADER = -1  # LeaderAndIsr.NoLeader
INITIAL_CONTROLLER_EPOCH = 0  # KafkaController.InitialControllerEpoch
INITIAL_LEADER_EPOCH = 0


def now_ms() -> int:
    return int(time.time() * 1000)


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions"


def partition_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}"


def state_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}/state"


def delete_topic_path(topic: str) -> str:
    return f"{DELETE_TOPICS}/{topic}"


def topic_config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _loads(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


# --- /brokers/ids/<id> -------------------------------------------------------------------


@attrs.frozen(slots=True)
class BrokerInfo:
    """A broker registration: its id and PLAINTEXT endpoint."""

    broker_id: int
    host: str
    port: int
    rack: str | None = None


def encode_broker(info: BrokerInfo, timestamp_ms: int | None = None) -> bytes:
    ts = now_ms() if timestamp_ms is None else timestamp_ms
    return _dumps(
        {
            "features": {},
            "listener_security_protocol_map": {"PLAINTEXT": "PLAINTEXT"},
            "endpoints": [f"PLAINTEXT://{info.host}:{info.port}"],
            "jmx_port": -1,
            "port": info.port,
            "host": info.host,
            "version": 5,
            "timestamp": str(ts),
            "rack": info.rack,
        }
    )


def decode_broker(broker_id: int, data: bytes) -> BrokerInfo:
    """Parse a registration (the PLAINTEXT endpoint, else host/port, else the first)."""
    raw: dict[str, Any] = _loads(data)
    host, port = raw.get("host"), raw.get("port")
    endpoints: list[str] = list(raw.get("endpoints") or [])
    chosen = next((e for e in endpoints if e.startswith("PLAINTEXT://")), None)
    if chosen is None and endpoints:
        chosen = endpoints[0]
    if chosen is not None:
        address = chosen.split("://", 1)[1]
        h, _, p = address.rpartition(":")
        host, port = h.strip("[]"), int(p)
    if host is None or port is None:
        raise ValueError(f"broker {broker_id} registration has no endpoint")
    rack = raw.get("rack")
    return BrokerInfo(broker_id, str(host), int(port), None if rack is None else str(rack))


# --- /controller, /controller_epoch ------------------------------------------------------


def encode_controller(broker_id: int, timestamp_ms: int | None = None) -> bytes:
    ts = now_ms() if timestamp_ms is None else timestamp_ms
    return _dumps({"version": 1, "brokerid": broker_id, "timestamp": str(ts)})


def decode_controller(data: bytes) -> int:
    """The controller's broker id (Kafka also accepts a bare integer, the old form)."""
    raw = _loads(data)
    if isinstance(raw, int):
        return raw
    return int(raw["brokerid"])


def encode_controller_epoch(epoch: int) -> bytes:
    return str(epoch).encode("ascii")


def decode_controller_epoch(data: bytes) -> int:
    return int(data.decode("ascii").strip())


# --- /brokers/topics/<t> -----------------------------------------------------------------


def topic_id_to_str(topic_id: uuid.UUID) -> str:
    """Kafka's Uuid.toString: base64url without padding."""
    return base64.urlsafe_b64encode(topic_id.bytes).decode("ascii").rstrip("=")


def topic_id_from_str(text: str) -> uuid.UUID:
    padded = text + "=" * (-len(text) % 4)
    return uuid.UUID(bytes=base64.urlsafe_b64decode(padded))


@attrs.frozen(slots=True)
class TopicAssignment:
    """/brokers/topics/<t>: the topic id and each partition's replicas in order."""

    topic_id: uuid.UUID | None
    partitions: Mapping[int, tuple[int, ...]]

    def replicas(self) -> tuple[tuple[int, ...], ...]:
        """Replica lists by partition index 0..n-1."""
        return tuple(self.partitions[p] for p in sorted(self.partitions))


def encode_topic(assignment: TopicAssignment) -> bytes:
    raw: dict[str, Any] = {
        "version": 3,
        "partitions": {str(p): list(r) for p, r in sorted(assignment.partitions.items())},
        "adding_replicas": {},
        "removing_replicas": {},
    }
    if assignment.topic_id is not None:
        raw["topic_id"] = topic_id_to_str(assignment.topic_id)
    return _dumps(raw)


def decode_topic(data: bytes) -> TopicAssignment:
    raw: dict[str, Any] = _loads(data)
    partitions = {int(p): tuple(int(b) for b in r) for p, r in raw["partitions"].items()}
    tid = raw.get("topic_id")
    return TopicAssignment(None if tid is None else topic_id_from_str(str(tid)), partitions)


# --- /brokers/topics/<t>/partitions/<p>/state ----------------------------------------------


@attrs.frozen(slots=True)
class LeaderAndIsr:
    """A partition's state znode and the znode version it was read at (or written as)."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    zk_version: int


def encode_leader_and_isr(state: LeaderAndIsr) -> bytes:
    return _dumps(
        {
            "controller_epoch": state.controller_epoch,
            "leader": state.leader,
            "version": 1,
            "leader_epoch": state.leader_epoch,
            "isr": list(state.isr),
        }
    )


def decode_leader_and_isr(data: bytes, zk_version: int) -> LeaderAndIsr:
    raw: dict[str, Any] = _loads(data)
    return LeaderAndIsr(
        leader=int(raw["leader"]),
        leader_epoch=int(raw["leader_epoch"]),
        isr=tuple(int(b) for b in raw["isr"]),
        controller_epoch=int(raw["controller_epoch"]),
        zk_version=zk_version,
    )


# --- /cluster/id, /config/topics/<t> -------------------------------------------------------


def encode_cluster_id(cluster_id: str) -> bytes:
    return _dumps({"version": "1", "id": cluster_id})


def decode_cluster_id(data: bytes) -> str:
    return str(_loads(data)["id"])


def encode_topic_config(configs: Mapping[str, str]) -> bytes:
    return _dumps({"version": 1, "config": dict(sorted(configs.items()))})


def decode_topic_config(data: bytes) -> dict[str, str]:
    raw: dict[str, Any] = _loads(data)
    return {str(k): str(v) for k, v in (raw.get("config") or {}).items()}


# --- /latest_producer_id_block ---------------------------------------------------------------

PRODUCER_ID_BLOCK_SIZE = 1000  # ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE
PRODUCER_ID_BLOCK_VERSION = 1  # ProducerIdBlockZNode.CurrentVersion
MAX_PRODUCER_ID = 2**63 - 1  # producer ids are Java longs


@attrs.frozen(slots=True)
class ProducerIdBlock:
    """The block of producer ids ``first`` .. ``last`` (both inclusive) that broker
    ``broker`` claimed last (Kafka's ProducerIdsBlock)."""

    broker: int
    first: int
    last: int

    def following(self, broker: int) -> ProducerIdBlock | None:
        """The next block, claimed by ``broker``; None once the ids are exhausted."""
        if self.last > MAX_PRODUCER_ID - PRODUCER_ID_BLOCK_SIZE:
            return None
        return producer_id_block(broker, self.last + 1)


def producer_id_block(broker: int, first: int = 0) -> ProducerIdBlock:
    """A block of PRODUCER_ID_BLOCK_SIZE ids from ``first``, claimed by ``broker``."""
    return ProducerIdBlock(broker, first, first + PRODUCER_ID_BLOCK_SIZE - 1)


def encode_producer_id_block(block: ProducerIdBlock) -> bytes:
    return _dumps(
        {
            "version": PRODUCER_ID_BLOCK_VERSION,
            "broker": block.broker,
            "block_start": str(block.first),
            "block_end": str(block.last),
        }
    )


def decode_producer_id_block(data: bytes) -> ProducerIdBlock | None:
    """The block a znode holds; None for an empty znode (created by the top-level paths,
    no block claimed yet)."""
    if not data.strip():
        return None
    raw: dict[str, Any] = _loads(data)
    return ProducerIdBlock(int(raw["broker"]), int(raw["block_start"]), int(raw["block_end"]))
