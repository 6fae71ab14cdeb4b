"""A consumer-group member as a process of its own, for tests that must crash one for
real (SIGKILL: no LeaveGroup, no last commit).  Run as
``python -m tests.interop.group_member --client confluent|kafka-python --bootstrap B
--group G --topic T --name N [--commit after|before] [--batch K] [--hold-at N]``.

It subscribes to the topic with a real, unmodified client and reports, one JSON object
a line on standard output: ``assignment`` (its full assignment, whenever that changes),
``batch`` (the records it is about to handle), ``record`` (a record processed),
``committed`` / ``commit_failed``, ``holding``, ``closed``.

Records are handled in batches of up to ``--batch`` (a smaller one when no more
records come; exactly ``--batch`` with ``--full-batches``): with ``--commit after`` the batch is
processed, then its offsets committed (at-least-once); with ``--commit before`` the
offsets are committed first (at-most-once).  ``--hold-at N`` stops processing once N
records have been processed and blocks on standard input (which the test never
writes), as a member stuck in processing would: the test then kills it.  SIGTERM closes
the consumer cleanly (LeaveGroup) and exits.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

Emit = Callable[..., None]
Polled = list[tuple[int, int, bytes]]


class Client(Protocol):
    def poll(self, timeout_s: float) -> Polled: ...
    def commit(self, offsets: dict[int, int]) -> None: ...
    def assigned(self) -> set[int]: ...
    def close(self) -> None: ...


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Confluent:
    """librdkafka through confluent-kafka, with rebalance callbacks (eager by default:
    everything is revoked, then the whole new assignment given)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import confluent_kafka  # noqa: PLC0415 (only the client asked for is loaded)

        self.kafka = confluent_kafka
        self.topic = args.topic
        self.current: set[int] = set()
        self.consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "group.id": args.group,
                "client.id": args.name,
                "session.timeout.ms": args.session_timeout_ms,
                "heartbeat.interval.ms": args.heartbeat_interval_ms,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "topic.metadata.refresh.interval.ms": 1000,
                "log_level": 3,
            }
        )
        self.consumer.subscribe(
            [args.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self.current |= {tp.partition for tp in partitions}
        emit("assignment", partitions=sorted(self.current))

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        self.current -= {tp.partition for tp in partitions}
        emit("assignment", partitions=sorted(self.current))

    def poll(self, timeout_s: float) -> Polled:
        msg = self.consumer.poll(timeout_s)
        if msg is None:
            return []
        err = msg.error()
        if err is not None:
            emit("client_error", error=str(err))
            return []
        return [(msg.partition() or 0, msg.offset() or 0, msg.value() or b"")]

    def commit(self, offsets: dict[int, int]) -> None:
        tps = [self.kafka.TopicPartition(self.topic, p, o) for p, o in offsets.items()]
        answer = self.consumer.commit(offsets=tps, asynchronous=False)
        failed = [tp for tp in answer or [] if tp.error is not None]
        if failed:
            raise RuntimeError(f"commit failed: {[(tp.partition, str(tp.error)) for tp in failed]}")

    def assigned(self) -> set[int]:
        return set(self.current)

    def close(self) -> None:
        self.consumer.close()


class KafkaPython:
    """kafka-python's KafkaConsumer with a ConsumerRebalanceListener."""

    def __init__(self, args: argparse.Namespace) -> None:
        import kafka  # noqa: PLC0415

        self.kafka = kafka
        self.topic = args.topic
        self.current: set[int] = set()
        owner = self

        class Listener(kafka.ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                owner.current -= {tp.partition for tp in revoked}
                emit("assignment", partitions=sorted(owner.current))

            def on_partitions_assigned(self, assigned: Any) -> None:
                owner.current |= {tp.partition for tp in assigned}
                emit("assignment", partitions=sorted(owner.current))

        self.consumer = kafka.KafkaConsumer(
            bootstrap_servers=args.bootstrap.split(","),
            group_id=args.group,
            client_id=args.name,
            session_timeout_ms=args.session_timeout_ms,
            heartbeat_interval_ms=args.heartbeat_interval_ms,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        self.consumer.subscribe([args.topic], listener=Listener())

    def poll(self, timeout_s: float) -> Polled:
        got = self.consumer.poll(timeout_ms=int(timeout_s * 1000))
        return [(tp.partition, m.offset, m.value or b"") for tp, ms in got.items() for m in ms]

    def commit(self, offsets: dict[int, int]) -> None:
        meta = self.kafka.OffsetAndMetadata
        self.consumer.commit(
            {self.kafka.TopicPartition(self.topic, p): meta(o, "", -1) for p, o in offsets.items()}
        )

    def assigned(self) -> set[int]:
        return set(self.current)

    def close(self) -> None:
        self.consumer.close()


def hold() -> None:
    """Stuck in processing until killed (standard input is never written)."""
    emit("holding")
    sys.stdin.readline()
    time.sleep(3600)


def next_offsets(batch: Polled) -> dict[int, int]:
    out: dict[int, int] = {}
    for p, o, _ in batch:
        out[p] = max(out.get(p, 0), o + 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--client", choices=("confluent", "kafka-python"), required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--commit", choices=("after", "before"), default="after")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--full-batches", action="store_true")
    parser.add_argument("--hold-at", type=int, default=None)
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--heartbeat-interval-ms", type=int, default=500)
    args = parser.parse_args()

    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    client: Client = Confluent(args) if args.client == "confluent" else KafkaPython(args)
    emit("started")
    processed = 0
    pending: dict[int, int] = {}  # processed, not yet committed (commit after)
    batch: Polled = []
    last_try = 0.0

    def try_commit(offsets: dict[int, int]) -> bool:
        """Commit the offsets of the partitions still assigned; the others are dropped."""
        nonlocal last_try
        last_try = time.monotonic()
        mine = {p: o for p, o in offsets.items() if p in client.assigned()}
        if not mine:
            return True
        try:
            client.commit(mine)
        except Exception as e:  # each client has its own exception types
            emit("commit_failed", error=f"{type(e).__name__}: {e}", offsets=mine)
            return False
        emit("committed", offsets=mine)
        return True

    def process(p: int, o: int, value: bytes) -> None:
        nonlocal processed
        emit("record", partition=p, offset=o, value=value.decode(errors="replace"))
        processed += 1
        if args.hold_at is not None and processed >= args.hold_at:
            hold()

    while not stopping:
        polled = client.poll(0.2)
        batch.extend(polled)
        idle = not polled and not args.full_batches
        if batch and (len(batch) >= args.batch or idle):
            now, batch = batch[: args.batch], batch[args.batch :]
            emit("batch", offsets=[[p, o] for p, o, _ in now])
            offsets = next_offsets(now)
            if args.commit == "before":
                while not try_commit(offsets) and not stopping:
                    time.sleep(0.2)  # a retry's back-off, not a synchronisation
                for p, o, v in now:
                    process(p, o, v)
            else:
                for p, o, v in now:
                    process(p, o, v)
                pending.update(offsets)
                if try_commit(pending):
                    pending = {}
        elif pending and time.monotonic() - last_try > 0.5 and try_commit(pending):
            pending = {}
    client.close()
    emit("closed")


if __name__ == "__main__":
    main()
