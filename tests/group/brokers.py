"""Single-broker processes of the group tests: ``start(properties)`` starts a broker on
the test's data directory (again after a stop or a kill: the same data); at the end every
one is killed, and none may have logged a failure (a Traceback on its standard error)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from tests.impl.conftest import BrokerProcess

Start = Callable[..., BrokerProcess]


@contextlib.contextmanager
def broker_starter(tmp_path: Path, defaults: Mapping[str, str]) -> Iterator[Start]:
    """``start(properties=defaults)``, for a module's ``start`` fixture."""
    started: list[BrokerProcess] = []

    def start(properties: Mapping[str, str] = defaults) -> BrokerProcess:
        broker = BrokerProcess(tmp_path, 1, properties)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.kill()
    for broker in started:
        assert "Traceback" not in broker.stderr(), broker.stderr()
