"""Fixtures of the interop tests: a kafkaref broker subprocess per test module.

Tests that share the module's broker use their own topics (``support.unique_topic``);
tests that kill, restart or configure a broker start their own with ``start_broker``.
Every interop test is bounded by pytest-timeout.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from harness.launcher import BrokerProcess, start_broker

INTEROP_TIMEOUT_S = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Bound every interop test that names no timeout of its own."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(INTEROP_TIMEOUT_S))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure, show the stderr of every broker the test used."""
    report = yield
    if report.failed and isinstance(item, pytest.Function):
        for name, value in item.funcargs.items():
            if isinstance(value, BrokerProcess):
                report.sections.append(
                    (
                        f"broker {value.broker_id} stderr ({name})",
                        value.stderr_tail(60, all_runs=True),
                    )
                )
    return report


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker with Kafka's default settings, shared by the tests of one module."""
    with start_broker(1, work_dir=tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture
def bootstrap(broker: BrokerProcess) -> str:
    """The shared broker's ``HOST:PORT``; fails the test at once if the broker died."""
    assert broker.alive(), f"the broker died; its stderr ends with:\n{broker.stderr_tail()}"
    return broker.bootstrap
