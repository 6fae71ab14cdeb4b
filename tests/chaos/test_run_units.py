"""The chaos run's pieces that need no Docker: how a client error becomes ok/fail/info,
the brokers' configuration for a run, and the command line's refusals (exit 2 before
anything starts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from typer.testing import CliRunner

from chaos.cli import chaos_app
from chaos.client import send_outcome
from chaos.run import CountingHistory, RunOptions, broker_config
from harness.history import F, OpType, PartitionRead, Poll, Send, read_history


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_LEADER_FOR_PARTITION,  # NOT_LEADER_OR_FOLLOWER: maybe appended
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.NOT_ENOUGH_REPLICAS,  # after retries an earlier attempt may have landed
        KafkaError._PURGE_INFLIGHT,
        KafkaError._PURGE_QUEUE,  # a retried batch goes back on the queue
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError._FATAL,
    ],
)
def test_errors_after_a_possible_append_are_unknown(code: int) -> None:
    assert send_outcome(KafkaError(code), retries=True) is OpType.INFO


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    ],
)
def test_errors_before_the_append_are_failures(code: int) -> None:
    assert send_outcome(KafkaError(code), retries=True) is OpType.FAIL


def test_not_enough_replicas_fails_only_without_retries() -> None:
    assert send_outcome(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS), retries=False) is OpType.FAIL


def test_broker_config_carries_the_mutant_and_the_election_rule(tmp_path: Path) -> None:
    plain = broker_config(RunOptions(out=tmp_path))
    assert "kafkaref.mutant" not in plain
    assert plain["unclean.leader.election.enable"] == "false"
    config = broker_config(
        RunOptions(
            out=tmp_path,
            mutant="ack-before-replicate",
            unclean_leader_election=True,
            broker_config=(("replica.fetch.wait.max.ms", "100"),),
        )
    )
    assert config["kafkaref.mutant"] == "ack-before-replicate"
    assert config["unclean.leader.election.enable"] == "true"
    assert config["replica.fetch.wait.max.ms"] == "100"


def test_counting_history_counts_and_writes(tmp_path: Path) -> None:
    history = CountingHistory(tmp_path / "h.jsonl")
    history.invoke(0, F.SEND, Send("t", 0, None, "0-0"))
    history.ok(0, F.SEND, Send("t", 0, None, "0-0", 0))
    history.invoke(1, F.POLL, Poll())
    history.ok(1, F.POLL, Poll((PartitionRead("t", 0, ((0, "0-0"),)),)))
    history.close()
    assert history.line().startswith("sends ok 1 info 0 fail 0 | records read 1")
    assert len(read_history(tmp_path / "h.jsonl")) == 4


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--faults", "flood"], "fault kinds"),
        (["--target", "everyone"], "targets"),
        (["--target", "none"], "targets"),  # faults need a target
        (["--partitions", "0"], "--partitions"),
        (["--brokers", "0"], "--brokers"),
        (["--rate", "0"], "--rate"),
        (["--consumer-mode", "random"], "--consumer-mode"),
        (["--zookeepers", "2"], "--zookeepers"),
        (["--broker-config", "no-value"], "NAME=VALUE"),
    ],
)
def test_bad_options_exit_2_before_anything_starts(
    args: list[str], complaint: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(chaos_app, ["run", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert complaint in result.output
    assert not (tmp_path / "o").exists()
