"""``python -m impl.broker --id N --listen HOST:PORT --data-dir DIR [--config FILE]``:
load the topic registry and the partition logs, lead every partition, serve the Kafka
protocol, run the retention pass every log.retention.check.interval.ms, and shut down
cleanly (logs flushed and closed) on SIGTERM or SIGINT.

With zookeeper.connect set the broker runs in cluster mode (impl.broker.cluster_mode):
topics, leaders and ISRs come from ZooKeeper, and "listening" is printed once it has
registered there.

A seeded defect (impl.mutants) is switched on by the property kafkaref.mutant or by
``--mutant NAME``; ``--list-mutants`` prints the registry as JSON and exits."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import signal
import sys
import time
from pathlib import Path

import attrs

from impl import mutants
from impl.broker.admin import open_partitions
from impl.broker.cluster_metadata import ClusterMetadata
from impl.broker.cluster_mode import ClusterMode, open_cluster_context, zookeeper_connect
from impl.broker.config import BrokerConfig, ConfigError, parse_listener, parse_properties
from impl.broker.context import BrokerContext
from impl.broker.producer_ids import ProducerIdAllocator
from impl.broker.server import BrokerServer
from impl.broker.topics import TopicRegistry
from impl.group.offsets_log import GroupLog
from impl.storage.config import LogConfig
from impl.storage.log_manager import LogManager
from impl.zk.layout import BrokerInfo
from impl.zk.session import ZkError
from spec.state import TopicPartition

_log = logging.getLogger("impl.broker")


def now_ms() -> int:
    return int(time.time() * 1000)


class _ListMutants(argparse.Action):
    """``--list-mutants``: print the registry of seeded defects as JSON and exit 0."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(json.dumps(mutants.registry_json(), indent=2))
        parser.exit()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m impl.broker", description=__doc__)
    parser.add_argument("--id", type=int, required=True, help="broker.id")
    parser.add_argument("--listen", required=True, help="HOST:PORT (listeners)")
    parser.add_argument("--data-dir", required=True, help="the data directory (log.dirs)")
    parser.add_argument("--config", help="a Kafka server.properties file")
    parser.add_argument(
        "--mutant",
        metavar="NAME",
        help=f"switch on a seeded defect (sets the property {mutants.PROPERTY})",
    )
    parser.add_argument(
        "--list-mutants",
        nargs=0,
        action=_ListMutants,
        help="print the seeded defects (JSON) and exit",
    )
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace) -> BrokerConfig:
    """The configuration from the command line and the optional properties file."""
    listener = parse_listener(args.listen)
    if listener is None:
        raise ConfigError(f"--listen {args.listen!r} is not HOST:PORT")
    properties: dict[str, str] = {}
    if args.config:
        properties = parse_properties(Path(args.config).read_text(encoding="utf-8"))
    host, port = listener
    if args.mutant is not None:
        properties[mutants.PROPERTY] = args.mutant
    return BrokerConfig.build(args.id, host, port, str(Path(args.data_dir)), properties)


def open_context(config: BrokerConfig) -> BrokerContext:
    """Load everything from the data directory and lead every partition."""
    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    topics = TopicRegistry.load(data_dir, config.broker_id)

    def config_for(tp: TopicPartition) -> LogConfig:
        info = topics.get(tp.topic)
        return config.log_config(info.configs if info is not None else None)

    logs = LogManager(str(data_dir), config.log_config(), now_ms(), config_for)
    ctx = BrokerContext(
        broker_id=config.broker_id,
        host=config.host,
        port=config.port,
        config=config,
        logs=logs,
        partitions={},
        topics=topics,
        producer_ids=ProducerIdAllocator.open(data_dir),
        data_arrived=asyncio.Condition(),
        cluster=ClusterMetadata.single_broker(
            topics, BrokerInfo(config.broker_id, *config.advertised_endpoint)
        ),
    )
    ctx.group_log = GroupLog(ctx)
    for info in topics:
        open_partitions(ctx, info)
    return ctx


async def retention_loop(ctx: BrokerContext) -> None:
    """Apply retention to every log every log.retention.check.interval.ms (not to those
    of a topic whose cleanup.policy lacks "delete", such as __consumer_offsets: there is
    no log cleaner here, so a compacted topic keeps every record)."""
    interval = ctx.config.retention_check_interval_ms / 1000

    def high_watermark(tp: TopicPartition) -> int | None:
        # Nothing at or above the high watermark is ever deleted: in cluster mode that
        # covers the logs followed here as well as those led here.
        if not retention_applies(ctx, tp.topic):
            log = ctx.logs.get(tp)
            return None if log is None else log.start_offset
        if ctx.replicas is not None:
            return ctx.replicas.high_watermark(tp)
        state = ctx.partitions.get(tp)
        return None if state is None else state.high_watermark

    while True:
        await asyncio.sleep(interval)
        try:
            ctx.logs.apply_retention(now_ms(), high_watermark)
        except Exception:
            _log.exception("retention pass failed")


def retention_applies(ctx: BrokerContext, topic: str) -> bool:
    """Whether the topic's cleanup.policy includes "delete" (retention applies)."""
    info = ctx.topics.get(topic)
    policy = ctx.config.topic_config(info.configs if info is not None else {})["cleanup.policy"]
    return "delete" in {p.strip() for p in policy.split(",")}


async def serve(config: BrokerConfig) -> None:
    connect = zookeeper_connect(config)
    cluster: ClusterMode | None = None
    if connect is None:
        ctx = open_context(config)
    else:
        cluster = await open_cluster_context(config, connect)
        ctx = cluster.ctx
    server = BrokerServer(ctx)
    await server.start(config.host, config.port)
    if config.port == 0:  # asked for any free port: report and advertise the real one
        ctx.port = server.bound_port
        ctx.config = attrs.evolve(config, port=ctx.port)
        if cluster is None:
            ctx.cluster.brokers[ctx.broker_id] = BrokerInfo(
                ctx.broker_id, *ctx.config.advertised_endpoint
            )
    if cluster is not None:
        try:
            await cluster.join()
        except BaseException:
            await cluster.close()
            await server.close()
            ctx.logs.close()
            raise
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    retention = loop.create_task(retention_loop(ctx))
    if ctx.group_log is not None:
        ctx.group_log.start()
    print(f"kafkaref broker {ctx.broker_id} listening on {ctx.host}:{ctx.port}", flush=True)
    try:
        await stop.wait()
    finally:
        _log.info("shutting down")
        retention.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention
        ctx.groups.close()
        if ctx.group_log is not None:
            await ctx.group_log.close()
        if cluster is not None:
            await cluster.close()
        await server.close()
        ctx.logs.close()
        _log.info("shut down cleanly")


def main(argv: list[str] | None = None) -> int:
    # `kill -USR1 <pid>` prints every thread's stack to stderr: what a stuck broker does.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(args)
        mutant = config.explicit.get(mutants.PROPERTY, "").strip()
        mutants.activate(mutant)
    except (ConfigError, OSError, mutants.UnknownMutantError) as e:
        print(f"kafkaref broker: {e}", file=sys.stderr)
        return 2
    if mutant:
        _log.warning("seeded defect %r is ON: this broker is wrong on purpose", mutant)
    try:
        asyncio.run(serve(config))
    except (OSError, ZkError, ValueError) as e:  # no bind, bad data dir, no ZooKeeper, ...
        print(f"kafkaref broker: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
