"""The topic registry of a single broker: topics, their partition replica assignments,
topic-level config overrides and topic ids, plus the cluster id.  Persisted in the data
directory as JSON written atomically (tmp file, fsync, rename), and the cluster id in
Kafka's ``meta.properties``; in single-broker mode this broker is the controller of all
of it.  In cluster mode ZooKeeper holds the topics: the registry is then an in-memory
mirror of /brokers/topics kept by the metadata watches (``put``/``remove``), never saved."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from impl.storage.files import replace_atomically
from spec.admin import valid_topic_name

TOPICS_FILE = "kafkaref-topics.json"
META_FILE = "meta.properties"


@attrs.frozen(slots=True)
class TopicInfo:
    """One topic: its id, per-partition replica lists (the first replica leads) and the
    topic-level config overrides it was created with."""

    name: str
    topic_id: uuid.UUID
    replicas: tuple[tuple[int, ...], ...]
    configs: Mapping[str, str]

    @property
    def partitions(self) -> int:
        return len(self.replicas)

    @property
    def replication_factor(self) -> int:
        return len(self.replicas[0]) if self.replicas else 0


def _urlsafe_uuid(value: uuid.UUID) -> str:
    """Kafka's string form of a cluster id: base64url of the 16 bytes, no padding."""
    return base64.urlsafe_b64encode(value.bytes).decode("ascii").rstrip("=")


class TopicRegistry:
    """The topics of the cluster, kept in memory and persisted on every change."""

    def __init__(
        self,
        data_dir: Path,
        cluster_id: str,
        topics: dict[str, TopicInfo],
        *,
        persist: bool = True,
    ) -> None:
        self._dir = data_dir
        self._persist = persist
        self.cluster_id = cluster_id
        self._topics = topics
        self._by_id = {info.topic_id: info for info in topics.values()}

    @classmethod
    def load(cls, data_dir: str | Path, broker_id: int) -> TopicRegistry:
        """Load the registry from ``data_dir`` (creating the directory, the cluster id and
        an empty registry on first start)."""
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        cluster_id = _load_or_create_cluster_id(path, broker_id)
        topics: dict[str, TopicInfo] = {}
        topics_path = path / TOPICS_FILE
        if topics_path.exists():
            raw: dict[str, Any] = json.loads(topics_path.read_text(encoding="utf-8"))
            for entry in raw.get("topics", []):
                info = TopicInfo(
                    name=str(entry["name"]),
                    topic_id=uuid.UUID(str(entry["topic_id"])),
                    replicas=tuple(tuple(int(b) for b in r) for r in entry["replicas"]),
                    configs={str(k): str(v) for k, v in entry["configs"].items()},
                )
                topics[info.name] = info
        return cls(path, cluster_id, topics)

    def __contains__(self, name: object) -> bool:
        return name in self._topics

    def __iter__(self) -> Iterator[TopicInfo]:
        return iter(list(self._topics.values()))

    def __len__(self) -> int:
        return len(self._topics)

    def get(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return self._by_id.get(topic_id)

    def names(self) -> list[str]:
        return sorted(self._topics)

    def create(
        self, name: str, replicas: tuple[tuple[int, ...], ...], configs: Mapping[str, str]
    ) -> TopicInfo:
        """Register a new topic and persist.  Raises ValueError for an invalid name, an
        existing topic or no partitions."""
        if not valid_topic_name(name):
            raise ValueError(f"invalid topic name {name!r}")
        if name in self._topics:
            raise ValueError(f"topic {name!r} already exists")
        if not replicas:
            raise ValueError("a topic needs at least one partition")
        topic_id = uuid.uuid4()
        while topic_id in self._by_id or topic_id.int == 0:
            topic_id = uuid.uuid4()
        info = TopicInfo(name, topic_id, replicas, dict(configs))
        self._topics[name] = info
        self._by_id[topic_id] = info
        self._save()
        return info

    def put(self, info: TopicInfo) -> None:
        """Add or replace a topic as ZooKeeper has it (cluster mode)."""
        old = self._topics.get(info.name)
        if old is not None:
            self._by_id.pop(old.topic_id, None)
        self._topics[info.name] = info
        self._by_id[info.topic_id] = info
        self._save()

    def remove(self, name: str) -> TopicInfo | None:
        """Forget a topic ZooKeeper no longer has (cluster mode); None if unknown."""
        if name not in self._topics:
            return None
        return self.delete(name)

    def delete(self, name: str) -> TopicInfo:
        """Remove a topic and persist.  Raises KeyError if there is none."""
        info = self._topics.pop(name)
        del self._by_id[info.topic_id]
        self._save()
        return info

    def _save(self) -> None:
        if not self._persist:
            return
        entries = [
            {
                "name": info.name,
                "topic_id": str(info.topic_id),
                "replicas": [list(r) for r in info.replicas],
                "configs": dict(info.configs),
            }
            for info in self._topics.values()
        ]
        text = json.dumps({"version": 1, "topics": entries}, indent=1, sort_keys=True)
        replace_atomically(self._dir / TOPICS_FILE, text.encode("utf-8"))


def check_cluster_id(data_dir: str | Path, broker_id: int, cluster_id: str) -> None:
    """Record ZooKeeper's cluster id in ``meta.properties`` (cluster mode), or raise
    ValueError if the data directory belongs to another cluster (Kafka's
    InconsistentClusterIdException)."""
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    meta = path / META_FILE
    if meta.exists():
        known = _load_or_create_cluster_id(path, broker_id)
        if known != cluster_id:
            raise ValueError(
                f"The Cluster ID {cluster_id} doesn't match stored clusterId {known} in "
                f"{META_FILE}. The broker is trying to join the wrong cluster."
            )
        return
    _write_meta(meta, broker_id, cluster_id)


def _load_or_create_cluster_id(path: Path, broker_id: int) -> str:
    """The cluster id from Kafka's ``meta.properties``, generated once on first start."""
    meta = path / META_FILE
    if meta.exists():
        for line in meta.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "cluster.id":
                return value.strip()
    cluster_id = _urlsafe_uuid(uuid.uuid4())
    _write_meta(meta, broker_id, cluster_id)
    return cluster_id


def _write_meta(meta: Path, broker_id: int, cluster_id: str) -> None:
    """Kafka's meta.properties (version 0) for this broker and cluster."""
    text = f"version=0\nbroker.id={broker_id}\ncluster.id={cluster_id}\n"
    replace_atomically(meta, text.encode("utf-8"))
