"""Fixtures shared by the whole suite: real servers on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from servers import Mosquitto, VictoriaMetrics

# The programs speak the locale's language (LANG, LC_ALL); the suite asserts their
# English text, on any machine. Tests of the language choice set it themselves.
os.environ["GREENGAUGE_LANG"] = "en"

_SERVER_FIXTURES = frozenset({"mosquitto", "victoria_metrics"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses a real server crosses a process boundary: mark it e2e so that
    # `pytest -m "not e2e"` gives a quick unit-only run without anyone remembering to.
    for item in items:
        if _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A running broker of its own for this test; `restart()` keeps its persistence."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """A running, empty VictoriaMetrics of its own for this test (InfluxDB v2 write API)."""
    server = VictoriaMetrics(tmp_path_factory.mktemp("victoria-metrics"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
