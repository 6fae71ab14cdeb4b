"""Pieces of the container cluster that need no Docker: owner labels, grudges, rules."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chaos import docker_util as du
from chaos import docker_util_net as net


def test_owner_token_names_this_live_process() -> None:
    token = du.owner_token()
    _host, pid, ticks = token.split("/")
    assert int(pid) == os.getpid() and ticks.isdigit()
    assert du.owner_alive(token)
    assert du.labelled("r1", "broker") == {
        du.LABEL_RUN: "r1",
        du.LABEL_OWNER: token,
        du.LABEL_ROLE: "broker",
    }


def test_owner_of_an_exited_process_is_gone() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    token = du.owner_token(child.pid)
    assert du.owner_alive(token)
    assert child.stdin is not None
    child.stdin.close()
    child.wait()
    assert not du.owner_alive(token)


def test_recycled_pid_or_other_host_or_garbage() -> None:
    host, pid, ticks = du.owner_token().split("/")
    assert not du.owner_alive(f"{host}/{pid}/{int(ticks) + 1}")  # same pid, other process
    assert du.owner_alive(f"another-host-{host}/1/1")  # cannot tell: left alone
    assert du.owner_alive("")


def test_complete_grudge_of_components_and_the_rest() -> None:
    nodes = ["zookeeper-1", "broker-1", "broker-2", "broker-3"]
    grudge = net.complete_grudge([["broker-3"]], nodes)
    assert grudge["broker-3"] == {"zookeeper-1", "broker-1", "broker-2"}
    assert grudge["broker-1"] == {"broker-3"} and grudge["zookeeper-1"] == {"broker-3"}
    halves = net.complete_grudge([["broker-1", "zookeeper-1"], ["broker-2", "broker-3"]], nodes)
    assert halves["broker-1"] == {"broker-2", "broker-3"}
    assert halves["broker-2"] == {"broker-1", "zookeeper-1"}
    assert net.complete_grudge([], nodes) == dict.fromkeys(nodes, frozenset())
    with pytest.raises(ValueError, match="broker-9"):
        net.complete_grudge([["broker-9"]], nodes)


def test_iptables_script_replaces_the_input_rules() -> None:
    script = net.iptables_script(["10.0.0.2", "10.0.0.3"])
    assert script.splitlines() == [
        "set -e",
        "iptables -w -F INPUT",
        "iptables -w -A INPUT -s 10.0.0.2 -j DROP",
        "iptables -w -A INPUT -s 10.0.0.3 -j DROP",
    ]
    with pytest.raises(ValueError):
        net.iptables_script(["10.0.0.2; rm -rf /"])
    assert net.address("10.231.7.0/24", 101) == "10.231.7.101"
