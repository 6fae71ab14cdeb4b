"""A follower's fetcher against a scripted leader: a partition the leader turned away as
not ready yet (NOT_LEADER_OR_FOLLOWER, as while it has not applied a new partition's
state) is asked for again after its short retry delay, not after a fetch the leader
parks on the other partitions for replica.fetch.wait.max.ms.  The scripted leader
honours each fetch's max_wait as Kafka's does, so a fetcher that parks its fetch for the
full 120 s never asks again within the test's deadline."""

from __future__ import annotations

import asyncio
import datetime
import struct
from pathlib import Path
from typing import Any, cast

import attrs
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.schema.fetch.v12 import response as fetch_v12
from kio.schema.types import TopicName
from kio.static.primitive import i32, i32Timedelta, i64

from impl.replication.config import ReplicationConfig
from impl.replication.fetcher import FollowerReplica, ReplicaFetcher
from impl.storage.config import LogConfig
from impl.storage.partition_log import PartitionLog
from impl.wire import codec
from impl.wire.framing import parse_request_header
from spec.state import TopicPartition

IDLE = TopicPartition("idle", 0)
FRESH = TopicPartition("fresh", 0)
CONFIG = ReplicationConfig(
    replica_fetch_wait_max_ms=120_000,
    replica_lag_time_max_ms=120_000,
    replica_socket_timeout_ms=150_000,
)
DEADLINE_S = 10.0


@attrs.define
class ScriptedLeader:
    """Answers Fetch v12: turns FRESH away once, then serves it; parks a fetch of IDLE
    alone for its max_wait.  Records the partitions and max_wait of every fetch."""

    fetches: list[tuple[frozenset[TopicPartition], int]] = attrs.field(factory=list)
    turned_away: int = 0
    fresh_served: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                frame = await reader.readexactly(size)
                header, offset = parse_request_header(frame)
                request: Any = codec.decode_request(header, frame, offset)
                assert header.api_key == 1, "the fetcher sent something other than Fetch"
                writer.write(codec.encode_response(header, await self._answer(request)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def _answer(self, request: Any) -> fetch_v12.FetchResponse:
        asked = frozenset(
            TopicPartition(str(t.topic), int(p.partition))
            for t in request.topics
            for p in t.partitions
        )
        max_wait_ms = int(request.max_wait.total_seconds() * 1000)
        self.fetches.append((asked, max_wait_ms))
        errors = {}
        if FRESH in asked and self.turned_away == 0:
            self.turned_away += 1
            errors[FRESH] = KioErrorCode.not_leader_or_follower
        elif FRESH in asked:
            self.fresh_served.set()
        else:
            await asyncio.sleep(max_wait_ms / 1000)  # parked: no data arrives
        return fetch_v12.FetchResponse(
            throttle_time=i32Timedelta.parse(datetime.timedelta(0)),
            error_code=KioErrorCode.none,
            responses=tuple(
                fetch_v12.FetchableTopicResponse(
                    topic=TopicName(tp.topic),
                    partitions=(
                        fetch_v12.PartitionData(
                            partition_index=i32(tp.partition),
                            error_code=errors.get(tp, KioErrorCode.none),
                            high_watermark=i64(0),
                            log_start_offset=i64(0),
                            aborted_transactions=None,
                            records=None,
                        ),
                    ),
                )
                for tp in sorted(asked)
            ),
        )


@attrs.define
class Manager:
    """What a fetcher asks of its replica manager: settings, ids and the leader's address."""

    port: int
    config: ReplicationConfig = CONFIG
    broker_id: int = 1

    async def broker_address(self, broker_id: int) -> tuple[str, int] | None:
        return ("127.0.0.1", self.port)

    def fetcher_stopped(self, fetcher: ReplicaFetcher) -> None:
        pass


def _replica(tmp_path: Path, tp: TopicPartition) -> FollowerReplica:
    log = PartitionLog.open(str(tmp_path / f"{tp.topic}-{tp.partition}"), LogConfig(), 0)
    return FollowerReplica(tp, log, leader_id=2, leader_epoch=0, high_watermark=0)


async def _scenario(tmp_path: Path) -> ScriptedLeader:
    leader = ScriptedLeader()
    server = await asyncio.start_server(leader.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fetcher = ReplicaFetcher(cast(Any, Manager(port)), leader_id=2)
    try:
        fetcher.add(_replica(tmp_path, IDLE))
        async with asyncio.timeout(DEADLINE_S):
            while not leader.fetches:  # the fetch of IDLE alone, now parked
                await asyncio.sleep(0.01)
        fetcher.add(_replica(tmp_path, FRESH))
        async with asyncio.timeout(DEADLINE_S):
            await leader.fresh_served.wait()
    finally:
        await fetcher.close()
        server.close()
    return leader


def test_a_turned_away_partition_is_retried_without_waiting_for_a_parked_fetch(
    tmp_path: Path,
) -> None:
    leader = asyncio.run(_scenario(tmp_path))
    assert leader.turned_away == 1
    # While FRESH waited out its retry delay, the fetch of IDLE alone was parked no
    # longer than that delay.
    parked = [wait for asked, wait in leader.fetches if asked == {IDLE}]
    assert parked[0] == CONFIG.replica_fetch_wait_max_ms
    assert all(wait <= 1000 for wait in parked[1:]), leader.fetches
