"""Jepsen's *client*: the workload's producers and consumers (confluent-kafka on this
host), each operation recorded in the history as it is invoked and as it completes.

* :class:`ProducerWorker` - one thread, one producer (``acks=all``, idempotent unless
  told otherwise): records ``send`` invoke, then ``ok`` with the partition and offset of
  the acknowledgement, ``fail`` only when the record certainly was not written, ``info``
  otherwise (:func:`send_outcome`).  A producer that hits a fatal error is replaced by a
  new one under a new process number, as Jepsen does with a crashed client.
* :class:`ConsumerWorker` - one thread, one consumer, ``assign`` mode (every partition,
  from the beginning) or ``group`` mode (subscribed; the rebalance callbacks record each
  new assignment).  Records polls with the ``(offset, value)`` pairs read, ``assign`` /
  ``crash`` whenever its position moves for a reason of its own (an assignment, a
  restart) so the checker does not take that for a nonmonotonic poll or a skip.  An
  offset reset is not such a reason: librdkafka makes it silently (auto.offset.reset
  earliest), and a correct cluster never puts a consumer's position out of range here,
  so it shows as the anomaly it is.  Messages are taken one by one (``poll``), so a
  rebalance callback falls between two recorded polls, never inside one.

The final read is :mod:`chaos.final_read`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Final

import attrs
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from chaos.generator import Pacer, SendGenerator, SendPlan, consumer_restarts
from harness.history import F, OpType, PartitionRead, Partitions, Poll, Recorder, Send
from spec.state import TopicPartition

# Errors after which a record certainly was not appended: librdkafka refused it before
# sending (local), or the broker refused the batch itself, which a retry of the same
# batch cannot change.  Anything else (a timeout, a lost connection, NOT_LEADER, a
# retriable error after retries, NOT_ENOUGH_REPLICAS_AFTER_APPEND, purged in flight or
# from a queue a retry may have put it back on) leaves the outcome unknown.
DEFINITELY_NOT_WRITTEN: Final = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG,  # CORRUPT_MESSAGE
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_REQUIRED_ACKS,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
    }
)
NOT_WRITTEN_WITHOUT_RETRIES: Final = frozenset({KafkaError.NOT_ENOUGH_REPLICAS})
"""Refused before the append, but only certain when no earlier attempt could have
appended the record (the producer does not retry)."""

POLL_BATCH: Final = 200
POLL_BATCH_S: Final = 0.5
FLUSH_TIMEOUT_S: Final = 20.0


def send_outcome(error: KafkaError, *, retries: bool) -> OpType:
    """``fail`` if a send that ended with ``error`` certainly wrote nothing, else ``info``."""
    code = error.code()
    if code in DEFINITELY_NOT_WRITTEN:
        return OpType.FAIL
    if not retries and code in NOT_WRITTEN_WITHOUT_RETRIES:
        return OpType.FAIL
    return OpType.INFO


@attrs.frozen(slots=True)
class WorkloadOptions:
    """The workload's settings (``kafkaref chaos run`` flags)."""

    topic: str = "chaos"
    partitions: int = 3
    replication_factor: int = 3
    min_insync_replicas: int = 2
    producers: int = 2
    consumers: int = 2
    consumer_mode: str = "assign"
    """``assign``, ``group``, or ``both`` (half of the consumers each way)."""
    rate: float = 100.0
    """Sends per second, all producers together."""
    idempotence: bool = True
    max_in_flight: int = 5
    """Requests in flight per connection; without idempotence 1 keeps the order."""
    retries: bool = True
    max_outstanding: int = 100
    """Sends a producer may have awaiting their acknowledgement on one partition; a
    send drawn for a partition that has this many is skipped (not invoked)."""
    consumer_restart_s: float = 20.0
    """Mean seconds between restarts of a consumer (0: never)."""
    message_timeout_ms: int = 30000
    request_timeout_ms: int = 10000


class ProcessNumbers:
    """Hands out process numbers; a crashed producer's successor gets a fresh one."""

    def __init__(self, first: int) -> None:
        self._next = first
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            n, self._next = self._next, self._next + 1
            return n


def producer_config(
    bootstrap: str, options: WorkloadOptions, logger: logging.Logger
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": options.idempotence,
        "linger.ms": 5,
        "message.timeout.ms": options.message_timeout_ms,
        "request.timeout.ms": options.request_timeout_ms,
        "max.in.flight.requests.per.connection": options.max_in_flight,
        "retry.backoff.ms": 200,
        "logger": logger,
    }
    if not options.retries and not options.idempotence:
        config["retries"] = 0
    return config


def consumer_config(
    bootstrap: str, group: str, logger: logging.Logger, *, commit: bool = True
) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": commit,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "fetch.wait.max.ms": 200,
        "logger": logger,
    }


class Worker:
    """A client thread: :meth:`start`, :meth:`stop`; counts what it recorded."""

    name = "worker"

    def __init__(self, recorder: Recorder, stop: threading.Event) -> None:
        self.recorder = recorder
        self.stop_event = stop
        self.errors: list[str] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._guarded, name=self.name, daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self.errors.append(f"{self.name} did not stop within {timeout_s:g} s")

    def _guarded(self) -> None:
        try:
            self.run()
        except Exception as exc:  # a workload bug must not go unnoticed: the run reports it
            self.errors.append(f"{self.name}: {type(exc).__name__}: {exc}")

    def run(self) -> None:
        raise NotImplementedError


class ProducerWorker(Worker):
    """Sends unique values at its share of the rate until stopped, then flushes."""

    def __init__(
        self,
        recorder: Recorder,
        stop: threading.Event,
        *,
        bootstrap: str,
        options: WorkloadOptions,
        numbers: ProcessNumbers,
        rng: random.Random,
        logger: logging.Logger,
    ) -> None:
        super().__init__(recorder, stop)
        self.bootstrap = bootstrap
        self.options = options
        self.numbers = numbers
        self.rng = rng
        self.logger = logger
        self.process = numbers.take()
        self.name = f"producer-{self.process}"
        self.outstanding: Counter[int] = Counter()
        """Sends awaiting their delivery report, by partition."""
        self.fatal = False

    def _producer(self) -> Any:
        config = producer_config(self.bootstrap, self.options, self.logger)
        config["error_cb"] = self._on_error
        return Producer(config)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal = True

    def _pump(self, producer: Any, timeout_s: float) -> None:
        """Serve delivery reports; a fatal error raised here kills the producer."""
        try:
            producer.poll(timeout_s)
        except KafkaException as exc:
            self.fatal = True
            self.logger.warning("%s: %s", self.name, exc)

    def run(self) -> None:
        pacer = Pacer(self.options.rate / max(1, self.options.producers), self.stop_event)
        producer = self._producer()
        sends = SendGenerator(self.process, self.options.partitions, self.rng)
        while pacer.wait():
            self._pump(producer, 0)
            if self.fatal:  # the producer is dead: a new client, a new process
                self._close(producer)
                self.process = self.numbers.take()
                self.name = f"producer-{self.process}"
                producer, self.fatal = self._producer(), False
                sends = SendGenerator(self.process, self.options.partitions, self.rng)
            if self.fatal:
                continue
            plan = sends.next()
            if self.outstanding[plan.partition] >= self.options.max_outstanding:
                continue  # that partition is stuck (its leader is unreachable): skip it
            self._send(producer, plan)
        self._close(producer)

    def _send(self, producer: Any, plan: SendPlan) -> None:
        topic, process = self.options.topic, self.process
        send = Send(topic, plan.partition, plan.key, plan.value)
        self.recorder.invoke(process, F.SEND, send)

        def delivered(err: KafkaError | None, msg: Any) -> None:
            self.outstanding[plan.partition] -= 1
            if err is None:
                acked = Send(topic, msg.partition(), plan.key, plan.value, msg.offset())
                self.recorder.ok(process, F.SEND, acked)
                return
            if err.fatal():
                self.fatal = True
            outcome = send_outcome(err, retries=self.options.retries or self.options.idempotence)
            self.recorder.record(process, outcome, F.SEND, send, err.name())

        try:
            producer.produce(
                topic, plan.value.encode(), plan.key.encode(), plan.partition, on_delivery=delivered
            )
        except BufferError:
            self.recorder.fail(process, F.SEND, send, "_QUEUE_FULL")
            return
        except KafkaException as exc:
            err = exc.args[0]  # produce() refused to queue it: it was never sent
            self.fatal = self.fatal or err.fatal()
            self.recorder.fail(process, F.SEND, send, err.name())
            return
        self.outstanding[plan.partition] += 1

    def _close(self, producer: Any) -> None:
        """Flush what is in flight (with a deadline; at once for a producer that hit a
        fatal error); what remains is purged: its delivery reports (purged: unknown
        outcome) are recorded, then it is gone."""
        try:
            if not self.fatal:  # a dead producer delivers nothing more: no waiting for it
                producer.flush(FLUSH_TIMEOUT_S)
            if self.outstanding.total():
                producer.purge(in_queue=True, in_flight=True, blocking=False)
                producer.flush(5.0)
        except KafkaException as exc:  # a dead producer: what it had stays unknown
            self.logger.warning("%s closing: %s", self.name, exc)
        self.outstanding.clear()


class ConsumerWorker(Worker):
    """Polls until stopped; restarts itself now and then (a recorded ``crash``)."""

    def __init__(
        self,
        recorder: Recorder,
        stop: threading.Event,
        *,
        process: int,
        group: bool,
        bootstrap: str,
        options: WorkloadOptions,
        rng: random.Random,
        logger: logging.Logger,
    ) -> None:
        super().__init__(recorder, stop)
        self.process = process
        self.group = group
        self.bootstrap = bootstrap
        self.options = options
        self.logger = logger
        self.name = f"consumer-{process}"
        self._restarts: Iterator[float] = consumer_restarts(rng, options.consumer_restart_s)
        self._reads: dict[TopicPartition, list[tuple[int, str]]] = {}
        self._polling = False
        self.records = 0

    # The poll being recorded: begun before the first message is asked for, completed
    # when the batch is full, after a while, or before a position change is recorded.

    def _begin(self) -> None:
        if not self._polling:
            self.recorder.invoke(self.process, F.POLL, Poll())
            self._polling, self._reads = True, {}

    def _complete(self, outcome: OpType = OpType.OK, error: str | None = None) -> None:
        if not self._polling:
            return
        reads = tuple(
            PartitionRead(tp.topic, tp.partition, tuple(records))
            for tp, records in self._reads.items()
        )
        if outcome is OpType.OK:
            self.recorder.ok(self.process, F.POLL, Poll(reads))
        else:
            self.recorder.info(self.process, F.POLL, Poll(), error)
        self._polling, self._reads = False, {}

    def _moved(self, f: F, partitions: Sequence[TopicPartition]) -> None:
        """Record a legitimate position change (completing the poll in progress first)."""
        self._complete()
        value = Partitions(tuple(partitions))
        self.recorder.invoke(self.process, f, value)
        self.recorder.ok(self.process, f, value)

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self._moved(F.ASSIGN, [TopicPartition(p.topic, p.partition) for p in partitions])

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        self._moved(F.ASSIGN, [TopicPartition(p.topic, p.partition) for p in partitions])

    def _open(self) -> Any:
        group = f"chaos-{self.options.topic}" if self.group else f"chaos-assign-{self.process}"
        consumer = Consumer(consumer_config(self.bootstrap, group, self.logger))
        if self.group:
            consumer.subscribe(
                [self.options.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
            )
        else:
            tps = [TopicPartition(self.options.topic, p) for p in range(self.options.partitions)]
            self._moved(F.ASSIGN, tps)
            consumer.assign(
                [KafkaTopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in tps]
            )
        return consumer

    def run(self) -> None:
        consumer = self._open()
        restart_at = time.monotonic() + next(self._restarts)
        while not self.stop_event.is_set():
            if time.monotonic() >= restart_at:
                self._crash(consumer, "restart")
                consumer = self._open()
                restart_at = time.monotonic() + next(self._restarts)
            try:
                self._poll_batch(consumer)
            except KafkaException as exc:
                self._complete(OpType.INFO, str(exc.args[0]))
                self._crash(consumer, str(exc.args[0]))
                consumer = self._open()
        self._complete()
        consumer.close()

    def _crash(self, consumer: Any, why: str) -> None:
        self._complete()
        consumer.close()
        self.recorder.info(self.process, F.CRASH, None, why)

    def _poll_batch(self, consumer: Any) -> None:
        """One recorded poll: up to :data:`POLL_BATCH` messages or :data:`POLL_BATCH_S`."""
        self._begin()
        deadline = time.monotonic() + POLL_BATCH_S
        taken = 0
        while taken < POLL_BATCH and not self.stop_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            msg = consumer.poll(min(left, 0.2))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                # Under auto.offset.reset=earliest librdkafka resets an out-of-range
                # position silently (no _AUTO_OFFSET_RESET event): the jump shows in the
                # history as a nonmonotonic poll or a skip, which is what it is.
                continue
            self._begin()  # a rebalance callback may have completed the poll
            tp = TopicPartition(msg.topic(), msg.partition())
            self._reads.setdefault(tp, []).append((msg.offset(), text_of(msg.value())))
            taken += 1
            self.records += 1
        self._complete()


def text_of(raw: bytes | None) -> str:
    """A record value as the history holds it (undecodable bytes replaced)."""
    return "" if raw is None else raw.decode("utf-8", "replace")
