"""InfluxStore against a real VictoriaMetrics (InfluxDB v2 write API) and, for the HTTP
answers VictoriaMetrics never gives, against a stub that answers like InfluxDB 2 does."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from servers import VictoriaMetrics

from collector.batch import Batch, epoch_millis
from collector.stores import StoreError, StoreRejected
from collector.stores.influx import InfluxStore
from greengauge.contract import KINDS, Kind, MeterReading, Quantity, ReadingBatch

TOKEN = "s3cret-token-value"  # noqa: S105 (a made-up token the tests look for in output)
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

Series = dict[tuple[str, str, str, str], list[tuple[int, float]]]


def store_for(url: str, timeout: float = 5.0) -> InfluxStore:
    return InfluxStore(url=url, org="greengauge", bucket="energy", token=TOKEN, timeout=timeout)


@pytest.fixture
def store(victoria_metrics: VictoriaMetrics) -> Iterator[InfluxStore]:
    influx = store_for(victoria_metrics.url)
    yield influx
    influx.close()


def sample_batches() -> list[Batch]:
    # Values of few significant digits: VictoriaMetrics keeps about 12 (it reads
    # 230.66666666666666 back as 230.6666666666), InfluxDB keeps the float64 exactly.
    instantaneous = [q for q in Quantity if KINDS[q] is Kind.INSTANTANEOUS][:3]
    counters = [q for q in Quantity if KINDS[q] is Kind.COUNTER][:3]
    models = [
        ReadingBatch(
            site="plant-1",
            agent="edge-1",
            seq=7,
            readings=[
                MeterReading(
                    meter=f"meter-{n}",
                    ts=T0 + timedelta(seconds=n, milliseconds=n * 111),
                    values={
                        **{q: 230.0 + n + i * 0.25 for i, q in enumerate(instantaneous)},
                        **{q: 1e6 + n * 0.001 + i for i, q in enumerate(counters)},
                    },
                )
                for n in range(3)
            ],
        ),
        ReadingBatch(
            site="Zürich,Nord=2",
            agent="edge=2,b",
            seq=0,
            readings=[
                MeterReading(meter="m=1,a", ts=T0, values={Quantity.POWER_FACTOR: -0.97}),
                MeterReading(
                    meter="m=1,a",
                    ts=T0 + timedelta(seconds=1),
                    values={Quantity.ENERGY_ACTIVE_EXPORT: 0.1},
                ),
            ],
        ),
    ]
    return [Batch.of(model) for model in models]


def expected_series(batches: Sequence[Batch | ReadingBatch]) -> Series:
    series: Series = {}
    for batch in batches:
        for reading in batch.readings:
            for quantity, value in reading.values.items():
                key = (quantity.value, batch.agent, reading.meter, batch.site)
                series.setdefault(key, []).append((epoch_millis(reading.ts), value))
    return series


def stored_series(server: VictoriaMetrics) -> Series:
    series: Series = {}
    for item in server.export('{__name__=~"reading_.*"}'):
        labels = dict(item["metric"])
        quantity = labels.pop("__name__").removeprefix("reading_")
        # Exactly these tags and nothing more (no db/bucket label).
        assert set(labels) == {"agent", "meter", "site"}
        key = (quantity, labels["agent"], labels["meter"], labels["site"])
        series[key] = list(zip(item["timestamps"], item["values"], strict=True))
    return series


def test_values_timestamps_and_tags_read_back(
    store: InfluxStore, victoria_metrics: VictoriaMetrics
) -> None:
    batches = sample_batches()

    written = store.write(batches)

    assert written == 3 * 6 + 2
    assert stored_series(victoria_metrics) == expected_series(batches)


def test_same_batch_twice_is_stored_once(
    store: InfluxStore, victoria_metrics: VictoriaMetrics
) -> None:
    batches = sample_batches()

    store.write(batches)
    victoria_metrics.force_flush()
    store.write(batches)

    assert stored_series(victoria_metrics) == expected_series(batches)


def test_no_batches_write_nothing(store: InfluxStore, victoria_metrics: VictoriaMetrics) -> None:
    assert store.write([]) == 0
    assert victoria_metrics.export('{__name__=~"reading_.*"}') == []


def test_refused_data_raises_store_rejected_with_the_server_reason(tmp_path: Path) -> None:
    # VictoriaMetrics skips unparsable lines with a 204; a line over its length limit is
    # the one thing valid readings can trigger that it answers 400 to.
    server = VictoriaMetrics(tmp_path / "vm", extra_args=["-influx.maxLineSize=200"])
    server.start()
    try:
        influx = store_for(server.url)
        long_reading = MeterReading(meter="m", ts=T0, values={q: 1.5 for q in Quantity})
        batch = Batch.of(ReadingBatch(site="s", agent="a", seq=0, readings=[long_reading]))

        with pytest.raises(StoreRejected) as caught:
            influx.write([batch])

        assert "HTTP 400" in caught.value.reason
        assert "too long line" in caught.value.reason
        influx.close()
    finally:
        server.stop()


def test_unreachable_server_raises_store_error_at_once(
    store: InfluxStore, victoria_metrics: VictoriaMetrics
) -> None:
    victoria_metrics.stop()

    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach"):
        store.write(sample_batches())

    # Tried once: the collector owns retries and backoff.
    assert time.monotonic() - started < 2


def test_server_that_never_answers_times_out_as_store_error() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        influx = store_for(f"http://127.0.0.1:{port}", timeout=0.5)

        started = time.monotonic()
        with pytest.raises(StoreError):
            influx.write(sample_batches())

        assert time.monotonic() - started < 3
        influx.close()


def test_store_recovers_when_the_server_returns(
    store: InfluxStore, victoria_metrics: VictoriaMetrics
) -> None:
    victoria_metrics.stop()
    with pytest.raises(StoreError):
        store.write(sample_batches())

    victoria_metrics.start()
    store.write(sample_batches())

    assert stored_series(victoria_metrics) == expected_series(sample_batches())


# --- HTTP answers of InfluxDB 2 that VictoriaMetrics does not give -------------------


class StubInflux(BaseHTTPRequestHandler):
    """Answers every write with the configured status and an InfluxDB 2 JSON error body."""

    status: ClassVar[int] = 204
    message: ClassVar[str] = ""
    requests: ClassVar[list[dict[str, Any]]] = []
    buckets: ClassVar[dict[str, Any]] = {"buckets": []}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        payload = json.dumps({"code": "invalid", "message": self.message}).encode()
        self.send_response(self.status)
        if self.status != 204:
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.status != 204:
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self.requests.append({"path": self.path, "headers": dict(self.headers), "body": b""})
        payload = json.dumps(self.buckets).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Stub:
    url: str
    handler: type[StubInflux]

    def answer(self, status: int, message: str) -> None:
        self.handler.status, self.handler.message = status, message

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.handler.requests


@pytest.fixture
def stub() -> Iterator[Stub]:
    # A subclass per test keeps the class-level answer and request log test-local.
    handler = type("Handler", (StubInflux,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield Stub(url=f"http://127.0.0.1:{server.server_address[1]}", handler=handler)
    server.shutdown()
    server.server_close()


def test_request_is_a_v2_write_in_milliseconds(stub: Stub) -> None:
    influx = store_for(stub.url)

    influx.write(sample_batches())

    (request,) = stub.requests
    assert request["path"].startswith("/api/v2/write?")
    assert "org=greengauge" in request["path"]
    assert "bucket=energy" in request["path"]
    assert "precision=ms" in request["path"]
    assert request["headers"]["Authorization"] == f"Token {TOKEN}"
    assert request["body"].startswith(b"reading,agent=edge-1,meter=meter-0,site=plant-1 ")


@pytest.mark.parametrize(
    ("status", "message", "error", "expected"),
    [
        (400, "unable to parse 'x': missing fields", StoreRejected, "missing fields"),
        (422, "failure writing points: field type conflict", StoreRejected, "type conflict"),
        (413, "request too large", StoreRejected, "too large"),
        (401, "unauthorized access", StoreError, "check the token"),
        (403, "insufficient permissions for write", StoreError, "check the token"),
        (404, 'bucket "energy" not found', StoreError, "not found"),
        (429, "too many requests", StoreError, "HTTP 429"),
        (500, "internal error", StoreError, "HTTP 500"),
        (503, "service unavailable", StoreError, "HTTP 503"),
    ],
)
def test_http_errors_map_to_store_errors(
    stub: Stub,
    status: int,
    message: str,
    error: type[Exception],
    expected: str,
) -> None:
    stub.answer(status, message)
    influx = store_for(stub.url)

    with pytest.raises(error) as caught:
        influx.write(sample_batches())

    assert type(caught.value) is error
    assert expected in str(caught.value)
    assert message in str(caught.value)
    assert TOKEN not in str(caught.value)
    # One request, no retry inside the client, whatever the status.
    assert len(stub.requests) == 1


def test_token_never_shows(stub: Stub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    influx = InfluxStore(
        url="http://user:pw@127.0.0.1:1", org="o", bucket="b", token=TOKEN, timeout=1
    )

    assert TOKEN not in repr(influx)
    assert TOKEN not in str(influx)
    assert "pw" not in repr(influx)
    assert TOKEN not in caplog.text
    assert not any(TOKEN in str(value) for value in vars(influx).values())

    influx = store_for(stub.url)
    influx.write(sample_batches())
    assert TOKEN not in caplog.text


def bucket(every_seconds: int) -> dict[str, Any]:
    rules = [{"type": "expire", "everySeconds": every_seconds}]
    return {"buckets": [{"name": "energy", "retentionRules": rules}]}


@pytest.mark.parametrize(
    ("answer", "retention"),
    [
        (bucket(30 * 86400), timedelta(days=30)),
        (bucket(0), None),  # kept forever
        ({"buckets": []}, None),  # no such bucket (the write will say so)
    ],
)
def test_the_buckets_retention_is_read_from_the_server(
    stub: Stub, answer: dict[str, Any], retention: timedelta | None
) -> None:
    stub.handler.buckets = answer
    assert store_for(stub.url).retention() == retention
    [request] = stub.requests
    assert request["path"].startswith("/api/v2/buckets?") and "name=energy" in request["path"]


def test_victoria_metrics_states_no_retention(store: InfluxStore) -> None:
    assert store.retention() is None
