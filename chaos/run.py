"""A chaos run, Jepsen's *test*: the composition of db, client, nemesis, generator,
checker and report (``kafkaref chaos run``).

1. Start ZooKeeper and the brokers in containers (:mod:`chaos.db`), with the seeded
   defect if one is named (broker property ``kafkaref.mutant``), and create the topic.
2. Run the workload (:mod:`chaos.client`) and the nemesis (:mod:`chaos.nemesis`) on the
   generator's schedule (:mod:`chaos.generator`) for the run's time, printing progress.
3. Heal every fault, stop the workload, wait until the cluster has settled (every
   broker registered, every partition's leader agreed on and its ISR full again), then
   read every partition in full from its beginning (the final read).
4. Check the history (:func:`harness.checker.check`) and write ``history.jsonl``,
   ``results.json``, ``report.html`` (:mod:`chaos.report`) and the nodes' logs.

:func:`run` answers the exit status: 0 valid, 1 anomalies found, 2 the run could not be
made (no Docker, no image, the cluster did not start, the workload made no progress).
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from chaos import docker_util as du
from chaos.client import ConsumerWorker, ProcessNumbers, ProducerWorker, WorkloadOptions
from chaos.db import ContainerCluster
from chaos.final_read import FinalRead, final_read
from chaos.generator import FAULT_KINDS, TARGETS, ScheduleOptions, fault_schedule, plan_prefix
from chaos.nemesis import ClusterRoles, Nemesis
from chaos.report import write_report
from harness.checker import DUPLICATE, CheckResult, check
from harness.cluster import ClusterError, wait_until
from harness.cluster_metadata import MetadataError, fetch_metadata
from harness.history import F, HistoryWriter, Op, OpType, read_history

EXIT_VALID: Final = 0
EXIT_ANOMALIES: Final = 1
EXIT_CANNOT_RUN: Final = 2

SESSION_TIMEOUT_MS: Final = 6000
SETTLE_TIMEOUT_S: Final = 120.0
PROGRESS_EVERY_S: Final = 5.0

Say = Callable[[str], None]


class CannotRunError(RuntimeError):
    """The experiment could not be made (exit 2)."""


@attrs.frozen(slots=True)
class RunOptions:
    """Everything ``kafkaref chaos run`` is told."""

    out: Path
    time_s: float = 60.0
    faults: Sequence[str] = FAULT_KINDS
    targets: Sequence[str] = TARGETS
    brokers: int = 3
    zookeepers: int = 1
    mutant: str | None = None
    seed: int = 0
    fault_duration_s: float = 10.0
    fault_interval_s: float = 8.0
    unclean_leader_election: bool = False
    replica_lag_time_max_ms: int = 10000
    broker_config: tuple[tuple[str, str], ...] = ()
    workload: WorkloadOptions = attrs.Factory(WorkloadOptions)
    image: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = attrs.asdict(self, recurse=True)
        out["out"] = str(self.out)
        out["broker_config"] = dict(self.broker_config)
        return out


@attrs.define
class RunOutcome:
    exit_code: int
    result: CheckResult | None = None
    message: str = ""


class CountingHistory(HistoryWriter):
    """The history file, counting operations by function and type for the progress line."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.counts: Counter[tuple[str, str]] = Counter()
        self.records = 0

    def _emit(self, op: Op) -> None:
        super()._emit(op)
        self.counts[op.f.value, op.type.value] += 1
        if op.f is F.POLL and op.type is OpType.OK and op.value is not None:
            self.records += sum(len(r.records) for r in getattr(op.value, "reads", ()))

    def line(self) -> str:
        c = self.counts
        return (
            f"sends ok {c['send', 'ok']} info {c['send', 'info']} fail {c['send', 'fail']}"
            f" | records read {self.records} | faults {c['fault', 'ok'] + c['fault', 'info']}"
        )


def known_mutants() -> list[str] | None:
    """The names of the seeded defects (``python -m impl.broker --list-mutants``), or None
    if this checkout's broker cannot list them."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "impl.broker", "--list-mutants"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return [str(m["name"]) for m in json.loads(done.stdout)]
    except (subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None


def broker_config(options: RunOptions) -> dict[str, object]:
    config: dict[str, object] = {
        "zookeeper.session.timeout.ms": SESSION_TIMEOUT_MS,
        "replica.lag.time.max.ms": options.replica_lag_time_max_ms,
        "unclean.leader.election.enable": str(options.unclean_leader_election).lower(),
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        "offsets.topic.num.partitions": 3,
    }
    if options.mutant:
        config["kafkaref.mutant"] = options.mutant
    config.update(dict(options.broker_config))
    return config


def create_topic(db: ContainerCluster, w: WorkloadOptions, timeout_s: float = 60.0) -> None:
    """Create the workload's topic and wait until every partition has a leader with its
    full ISR."""
    admin = AdminClient({"bootstrap.servers": db.bootstrap})
    topic = NewTopic(
        w.topic,
        w.partitions,
        w.replication_factor,
        config={"min.insync.replicas": str(w.min_insync_replicas)},
    )
    try:
        admin.create_topics([topic], operation_timeout=30)[w.topic].result(timeout=timeout_s)
    except Exception as exc:
        raise CannotRunError(f"creating topic {w.topic}: {exc}") from exc
    wait_settled(db, w, timeout_s)


def settle_problems(db: ContainerCluster, w: WorkloadOptions) -> list[str]:
    """What keeps the topic from being settled: each running broker's Metadata names the
    same leader and epoch for every partition and an ISR of every replica."""
    problems: list[str] = []
    seen: dict[int, tuple[int, int]] = {}
    for node in db.broker_nodes():
        try:
            view = fetch_metadata(node.ip, 9092, 5.0)
        except MetadataError as exc:
            problems.append(str(exc))
            continue
        for p in range(w.partitions):
            part = view.partition(w.topic, p)
            if part is None or part.leader < 0:
                problems.append(f"{node.name}: partition {p} has no leader")
                continue
            if len(part.isr) < len(part.replicas):
                problems.append(f"{node.name}: partition {p} ISR {part.isr} of {part.replicas}")
            if seen.setdefault(p, (part.leader, part.leader_epoch)) != (
                part.leader,
                part.leader_epoch,
            ):
                problems.append(f"partition {p}: brokers disagree on the leader")
    return problems


def wait_settled(db: ContainerCluster, w: WorkloadOptions, timeout_s: float) -> None:
    last: list[str] = []

    def settled() -> bool:
        last[:] = db.health_problems() or settle_problems(db, w)
        return not last

    wait_until(settled, timeout_s, lambda: "not settled: " + "; ".join(last))


def schedule_options(options: RunOptions) -> ScheduleOptions:
    """The fault schedule's settings: the same for the plan shown and the one run."""
    return ScheduleOptions(
        kinds=tuple(options.faults) or FAULT_KINDS,
        targets=tuple(options.targets),
        partitions=options.workload.partitions,
        zookeepers=options.zookeepers,
        duration_s=options.fault_duration_s,
        interval_s=options.fault_interval_s,
    )


def _client_logger(out: Path) -> logging.Logger:
    """librdkafka's log lines go to ``client.log`` in the output directory."""
    logger = logging.getLogger(f"chaos.librdkafka.{out.resolve()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(out / "client.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.handlers[:] = [handler]
    return logger


def run(options: RunOptions, say: Say) -> RunOutcome:
    """Make the experiment; see the module.  Never raises for a run that cannot be made:
    answers exit 2 with the reason."""
    options.out.mkdir(parents=True, exist_ok=True)
    try:
        return _run(options, say)
    except (CannotRunError, ClusterError, du.DockerUnavailableError) as exc:
        say(f"cannot run: {exc}")
        (options.out / "results.json").write_text(
            json.dumps({"valid": None, "error": str(exc), "run": options.to_json()}, indent=2)
        )
        return RunOutcome(EXIT_CANNOT_RUN, message=str(exc))


def _run(options: RunOptions, say: Say) -> RunOutcome:
    from chaos.image import ensure_images  # noqa: PLC0415 - only when a run really starts
    from chaos.image_base import BuildError, PrerequisiteMissingError  # noqa: PLC0415

    if options.mutant:
        names = known_mutants()
        if names is not None and options.mutant not in names:
            raise CannotRunError(f"unknown mutant {options.mutant!r}; known: {', '.join(names)}")
    if options.faults:
        plans = plan_prefix(schedule_options(options), options.seed, options.time_s)
        for n, plan in enumerate(plans, 1):
            say(f"plan {n}: after {plan.quiet_s:.1f}s quiet, {plan.describe()}")
    client = du.connect()
    if options.image is not None:
        image = options.image
    else:
        try:
            image = ensure_images(client, say)
        except (PrerequisiteMissingError, BuildError) as exc:
            raise CannotRunError(f"the image: {exc}") from exc
    db = ContainerCluster(
        image,
        brokers=options.brokers,
        zookeepers=options.zookeepers,
        broker_config=broker_config(options),
        client=client,
    )
    started = time.monotonic()
    db.start(progress=say)
    timings: dict[str, float] = {"cluster-start": time.monotonic() - started}
    try:
        create_topic(db, options.workload)
        say(f"topic {options.workload.topic} ready; workload for {options.time_s:g} s")
        final, notes = _experiment(db, options, say, timings)
    finally:
        _save_logs(db, options.out)
        db.close()
    history = read_history(options.out / "history.jsonl")
    allowed = () if options.workload.idempotence else (DUPLICATE,)
    result = check(history.ops, allowed=allowed)
    say(result.summary())
    results: dict[str, Any] = {
        **result.to_json(),
        "run": options.to_json(),
        "image": image,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "final-read": {
            "high-watermarks": dict(final.high_watermarks),
            "records": dict(final.records),
            "incomplete": dict(final.incomplete),
        },
        "notes": notes,
    }
    (options.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(options.out / "report.html", history.ops, result, results)
    say(f"wrote {options.out / 'results.json'}, history.jsonl, report.html")
    if not result.valid:
        return RunOutcome(EXIT_ANOMALIES, result)
    if result.stats.sends_acknowledged == 0:
        return RunOutcome(EXIT_CANNOT_RUN, result, "no send was acknowledged: nothing checked")
    return RunOutcome(EXIT_VALID, result)


def _experiment(
    db: ContainerCluster, options: RunOptions, say: Say, timings: dict[str, float]
) -> tuple[FinalRead, list[str]]:
    w = options.workload
    logger = _client_logger(options.out)
    history = CountingHistory(options.out / "history.jsonl")
    stop = threading.Event()
    seeds = random.Random(options.seed)
    numbers = ProcessNumbers(0)
    producers = [
        ProducerWorker(
            history,
            stop,
            bootstrap=db.bootstrap,
            options=w,
            numbers=numbers,
            rng=random.Random(seeds.random()),
            logger=logger,
        )
        for _ in range(w.producers)
    ]
    consumers = [
        ConsumerWorker(
            history,
            stop,
            process=1000 + i,
            group=w.consumer_mode == "group" or (w.consumer_mode == "both" and i % 2 == 1),
            bootstrap=db.bootstrap,
            options=w,
            rng=random.Random(seeds.random()),
            logger=logger,
        )
        for i in range(w.consumers)
    ]
    nemesis_rng = random.Random(seeds.random())
    schedule = fault_schedule(schedule_options(options), random.Random(options.seed))
    nemesis = Nemesis(
        db,
        ClusterRoles(db, w.topic),
        history,
        schedule=schedule if options.faults else iter(()),
        rng=nemesis_rng,
        progress=say,
    )
    notes: list[str] = []
    try:
        began = time.monotonic()
        for worker in [*consumers, *producers]:
            worker.start()
        nemesis.start()
        end = began + options.time_s
        while not stop.wait(min(PROGRESS_EVERY_S, max(0.0, end - time.monotonic()))):
            if time.monotonic() >= end:
                break
            say(f"{time.monotonic() - began:5.0f}s of {options.time_s:g}: {history.line()}")
        timings["workload"] = time.monotonic() - began
        say("time is up: healing every fault")
        nemesis.stop()
        nemesis.heal_everything()
        stop.set()
        for worker in [*producers, *consumers]:
            worker.join(60.0)
        say(f"workload stopped: {history.line()}")
        notes += nemesis.errors + [e for w_ in [*producers, *consumers] for e in w_.errors]
        settling = time.monotonic()
        try:
            wait_settled(db, w, SETTLE_TIMEOUT_S)
        except ClusterError as exc:
            notes.append(f"the cluster did not settle before the final read: {exc}")
            say(notes[-1])
        timings["settle"] = time.monotonic() - settling
        reading = time.monotonic()
        final = final_read(history, db.bootstrap, w, logger, progress=say)
        timings["final-read"] = time.monotonic() - reading
        notes += [f"final read of partition {p}: {why}" for p, why in final.incomplete.items()]
    finally:
        stop.set()
        history.close()
        for handler in logger.handlers:
            handler.close()  # client.log
    for note in notes:
        say(f"note: {note}")
    return final, notes


def _save_logs(db: ContainerCluster, out: Path) -> None:
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    for name in sorted(db.nodes):
        try:
            text = db.logs(name, lines=5000)
        except Exception as exc:  # a log is a courtesy: never fail the run for it
            text = f"(no log: {exc})"
        (logs / f"{name}.log").write_text(text, encoding="utf-8")
