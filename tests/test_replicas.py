"""Replicas: the shared sequence view (pure, with a fake clock), their settings and client
ids, the subscriptions a replica builds, and the refusal of a shared subscription over
MQTT 3.1.1 (the real mosquitto behind a proxy that refuses MQTT 5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from processes import BIN, write_yaml
from pydantic import ValidationError
from servers import Mosquitto
from test_accounting_engine import T0 as ACCOUNTING_T0
from test_accounting_engine import config as accounting_config
from test_accounting_engine import readings as accounting_readings
from test_mqtt_fallback_e2e import Refusing

from collector.accounting.queries import meter_totals
from collector.app import CollectorApp
from collector.batch import Batch
from collector.config import CollectorConfig, DeadLetterSettings, WriteSettings
from collector.deadletters import DeadLetters
from collector.ingest import Ingest, Message, SharedSubscriptionNeedsMqtt5
from collector.replicas import (
    REPLICA_ENV,
    STORED_TOPIC,
    NoticeUnavailable,
    SharedSequences,
    StoredNotices,
    replica_id,
)
from collector.sequences import SequenceTracker
from collector.spool import Spool
from collector.stores.lineprotocol import Point
from collector.writer import BatchWriter
from greengauge.common.broker import BrokerSettings

GRACE = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Acked:
    def __init__(self) -> None:
        self.order: list[int] = []


def notice(number: int, seqs: list[tuple[str, int]], acked: Acked) -> Message:
    payload = json.dumps({"replica": "r", "seqs": [["s", a, q] for a, q in seqs]}).encode()
    return Message(STORED_TOPIC, payload, lambda: acked.order.append(number))


def shared(tmp_path: Path, known: bool = True) -> tuple[SharedSequences, Clock]:
    """A view with a clock; `known`: agent a's seq 0 tracked already."""
    clock = Clock()
    tracker = SequenceTracker()
    if known:
        tracker.see("s", "a", 0)
    return SharedSequences(tracker, tmp_path / "seqs.json", GRACE, clock), clock


def feed(view: SharedSequences) -> None:
    asyncio.run(view.feed())


def test_interleaved_replicas_open_no_gap(tmp_path: Path) -> None:
    view, clock = shared(tmp_path)
    acked = Acked()
    view.receive(notice(0, [("a", 0)], acked))  # a repeat
    feed(view)
    view.receive(notice(1, [("a", 3), ("a", 1)], acked))  # 2 is in another replica's write
    clock.now = 1.0
    feed(view)
    assert view.tracker.agents[("s", "a")].ranges == [[0, 1]]
    assert acked.order == [0]  # notice 1 waits: seq 3 is not fed yet
    view.receive(notice(2, [("a", 2)], acked))
    feed(view)
    seqs = view.tracker.agents[("s", "a")]
    assert seqs.ranges == [[0, 3]]
    assert (seqs.gaps, seqs.missing()) == (0, 0)
    assert sorted(acked.order) == [0, 1, 2]
    assert json.loads((tmp_path / "seqs.json").read_text())[0]["ranges"] == [[0, 3]]


def test_a_batch_stored_nowhere_is_a_gap_once_grace_has_passed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    view, clock = shared(tmp_path)
    acked = Acked()
    view.receive(notice(0, [("a", 0)], acked))  # a repeat
    feed(view)
    view.receive(notice(1, [("a", 2), ("a", 3)], acked))
    clock.now = GRACE - 0.1
    feed(view)
    assert view.tracker.missing == 0 and "sequence gap" not in caplog.text
    clock.now = GRACE
    feed(view)
    seqs = view.tracker.agents[("s", "a")]
    assert seqs.ranges == [[0, 0], [2, 3]]
    assert (seqs.gaps, seqs.missing()) == (1, 1)
    assert "sequence gap" in caplog.text
    # Stored late after all (a replica that was down): filled, not lost.
    view.receive(notice(2, [("a", 1)], acked))
    feed(view)
    assert view.tracker.missing == 0
    assert sorted(acked.order) == [0, 1, 2]


def test_a_replica_joining_late_does_not_judge_what_was_stored_before(tmp_path: Path) -> None:
    view, clock = shared(tmp_path, known=False)
    acked = Acked()
    # Its first notices: live seqs of other replicas, and late ones of a replica that
    # was down, stored minutes after their successors, arriving first.
    view.receive(notice(0, [("a", 33), ("a", 36)], acked))
    view.receive(notice(1, [("a", 50)], acked))
    feed(view)
    assert ("s", "a") not in view.tracker.agents  # not judged before `grace`
    clock.now = GRACE / 2
    view.receive(notice(2, [("a", 39), ("a", 51)], acked))
    clock.now = GRACE
    feed(view)
    view.receive(notice(3, [("a", 42), ("a", 52)], acked))
    feed(view)
    clock.now = 3 * GRACE
    feed(view)
    seqs = view.tracker.agents[("s", "a")]
    assert seqs.ranges == [[51, 52]]
    assert (seqs.gaps, seqs.missing()) == (0, 0)
    assert view.before_start == 5
    assert sorted(acked.order) == [0, 1, 2, 3]


def test_a_known_agent_is_tracked_on_from_the_saved_view(tmp_path: Path) -> None:
    tracker = SequenceTracker()
    tracker.see("s", "a", 0)
    tracker.see("s", "a", 1)
    clock = Clock()
    view = SharedSequences(tracker, tmp_path / "seqs.json", GRACE, clock)
    acked = Acked()
    view.receive(notice(0, [("a", 3), ("a", 2)], acked))
    feed(view)
    assert tracker.agents[("s", "a")].ranges == [[0, 3]]


def test_an_invalid_notice_is_acknowledged_and_counted(tmp_path: Path) -> None:
    view, _ = shared(tmp_path)
    acked = Acked()
    view.receive(
        Message(
            STORED_TOPIC,
            b'{"replica": "r", "seqs": [["s", "a", "x"]]}',
            lambda: acked.order.append(0),
        )
    )
    assert (view.rejected, acked.order) == (1, [0])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    lost=st.sets(st.integers(1, 58), max_size=3),
)
def test_any_interleaving_within_grace_reports_exactly_the_batches_stored_nowhere(
    tmp_path_factory: pytest.TempPathFactory, n: int, seed: int, lost: set[int]
) -> None:
    """Seqs 1..n of one agent (0 is known already), stored by replicas whose notices come
    up to grace/2 late and out of order, fed at random moments; some are stored nowhere.
    Whatever the order, the view ends with exactly those missing."""
    rng = random.Random(seed)
    lost = {q for q in lost if q < n}  # the last one stored, so every hole is inside
    view, clock = shared(tmp_path_factory.mktemp("v"))
    tracker = view.tracker
    acked = Acked()
    arrivals: list[tuple[float, int]] = []
    for seq in range(1, n + 1):
        if seq not in lost:
            arrivals.append((seq * 0.1 + rng.uniform(0, GRACE / 2), seq))
    arrivals.sort()
    for number, (at, seq) in enumerate(arrivals):
        clock.now = at
        view.receive(notice(number, [("a", seq)], acked))
        if rng.random() < 0.3:
            feed(view)
    clock.now += GRACE
    feed(view)
    seqs = tracker.agents[("s", "a")]
    assert seqs.missing() == len(lost)
    assert seqs.ranges[-1][1] == n
    assert sorted(acked.order) == list(range(len(arrivals)))


# --- settings, ids, subscriptions -------------------------------------------------------

BASE: dict[str, Any] = {
    "mqtt": {"url": "mqtt://127.0.0.1:1", "client_id": "central"},
    "influxdb": {"url": "http://127.0.0.1:1", "org": "o", "bucket": "b", "token": "t"},
}


def config(tmp_path: Path, **ingest: Any) -> CollectorConfig:
    return CollectorConfig.model_validate({**BASE, "data_dir": str(tmp_path), "ingest": ingest})


def test_replicas_need_a_shared_store(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="replicas need a store they share"):
        CollectorConfig.model_validate(
            {"mqtt": BASE["mqtt"], "data_dir": str(tmp_path), "ingest": {"shared_group": "g"}}
        )


@pytest.mark.parametrize("bad", ["a/b", "a+", "#", "", "x" * 65])
def test_a_group_that_would_break_the_filter_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError, match="shared_group"):
        config(tmp_path, shared_group=bad)


def test_replica_id_from_setting_environment_or_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REPLICA_ENV, "from-env")
    assert replica_id("set") == "set"
    assert replica_id(None) == "from-env"
    monkeypatch.delenv(REPLICA_ENV)
    assert replica_id(None) == socket.gethostname()


class NoStore:
    def write(self, batches: Sequence[Batch]) -> int:
        return 0

    def write_points(self, points: Sequence[Point]) -> int:
        return len(points)

    def close(self) -> None:
        pass


def test_each_replica_has_its_own_ids_state_and_the_shared_filter(tmp_path: Path) -> None:
    apps = [CollectorApp(config(tmp_path, shared_group="g", replica=r), NoStore()) for r in "ab"]
    topics = [[(i._client_id, i._topic) for i in app.ingests] for app in apps]
    assert topics[0] == [
        ("central-a", "$share/g/greengauge/v1/+/+/readings"),
        ("central-a-sequences", STORED_TOPIC),
    ]
    ids = [cid for app in topics for cid, _ in app]
    assert len(set(ids)) == len(ids)
    assert apps[1].spool.path == tmp_path / "replicas" / "b" / "spool.sqlite"
    # A disk that cannot take the shared view's file shows in the metrics.
    shared = apps[0].shared_sequences
    assert shared is not None
    shared.disk.failed(OSError(28, "No space left on device"))
    assert [d.name for d in apps[0].disk_faults if d.failing] == ["sequences"]
    for app in apps:
        app.close()


def test_a_single_collector_is_as_before(tmp_path: Path) -> None:
    app = CollectorApp(config(tmp_path), NoStore())
    assert [(i._client_id, i._topic) for i in app.ingests] == [
        ("central", "greengauge/v1/+/+/readings")
    ]
    assert app.spool.path == tmp_path / "spool.sqlite"
    app.close()


async def test_a_shared_subscription_over_mqtt311_stops_with_the_reason(
    mosquitto: Mosquitto,
) -> None:
    refusing = Refusing(mosquitto.port)
    async with refusing.serving() as broker:
        received: list[Message] = []
        ingest = Ingest(
            broker, "shared-311", "$share/g/greengauge/v1/+/+/readings", received.append
        )
        with pytest.raises(SharedSubscriptionNeedsMqtt5, match=r"ingest.shared_group.*MQTT 5"):
            await asyncio.wait_for(ingest.run(), 20)
    assert refusing.connects[5] == 1
    assert refusing.connects[4] == 0  # refused before subscribing to a topic nobody uses


def test_the_accounting_of_replicas_equals_a_single_collectors(tmp_path: Path) -> None:
    """Three replicas share the batches round robin; the one with the plant model also
    takes every batch on its view: its figures are a single collector's, exactly."""
    plant = accounting_config().model_dump(mode="json")
    batches = accounting_readings(30)
    topic = "greengauge/v1/s1/gw/readings"
    payloads = [b.model_dump_json().encode() for b in batches]

    def deliver(receive: Callable[[Message], None], payload: bytes) -> None:
        receive(Message(topic, payload, lambda: None))

    def app(data: str, **more: Any) -> CollectorApp:
        settings = {**BASE, "data_dir": str(tmp_path / data), **more}
        return CollectorApp(CollectorConfig.model_validate(settings), NoStore())

    single = app("single", accounting=plant)
    replicas = [
        app(
            "replicas",
            ingest={"shared_group": "g", "replica": name},
            **({"accounting": plant} if name == "r1" else {}),
        )
        for name in ("r1", "r2", "r3")
    ]
    view = replicas[0].view
    assert view is not None and all(r.view is None for r in replicas[1:])
    for number, payload in enumerate(payloads):
        deliver(single.pipeline.receive, payload)
        deliver(replicas[number % 3].pipeline.receive, payload)  # its share, to store
        deliver(view.receive, payload)  # every batch, unshared
    figures = []
    end = int((ACCOUNTING_T0 + timedelta(hours=1)).timestamp() * 1000)
    for each in (single, replicas[0]):
        assert each.accounting is not None
        accounting = each.accounting.accounting
        asyncio.run(accounting.step())
        assert accounting.readings_used == 3 * len(batches)  # 3 counters a batch, once
        site = accounting.config.sites[0]
        figures.append(
            [meter_totals(accounting.db, accounting.config, "s1", m, 0, end) for m in site.meters]
        )
    assert figures[0] == figures[1]
    assert figures[0][0][0] == pytest.approx(60.0)  # the incomer: 120 kW for 30 minutes
    for each in (single, *replicas):
        each.close()


def test_a_batch_is_acknowledged_only_once_its_stored_notice_is_at_the_broker(
    tmp_path: Path,
) -> None:
    """A replica killed between the store and the notice leaves the batch unacknowledged
    (delivered again: a repeat), never acknowledged without a notice (a false gap)."""
    order: list[str] = []
    release = asyncio.Event()

    async def notice(batches: Sequence[Batch]) -> None:
        order.append(f"notice {[b.seq for b in batches]}")
        await release.wait()  # the broker's PUBACK
        order.append("notice acknowledged")

    writer = BatchWriter(
        NoStore(),
        WriteSettings(),
        DeadLetters(tmp_path / "dead.jsonl", DeadLetterSettings()),
        Spool(tmp_path / "spool.sqlite"),
        SequenceTracker(),
        tmp_path / "sequences.json",
        notice,
    )

    def ack(seq: int) -> Callable[[], None]:
        return lambda: order.append(f"ack {seq}")

    for batch in accounting_readings(0, 0)[:1] + accounting_readings(1)[1:3]:
        writer.add("t", batch.model_dump_json().encode(), Batch.of(batch), ack(batch.seq))

    async def run() -> None:
        flushing = asyncio.create_task(writer.flush())
        await asyncio.sleep(0.2)
        assert order == ["notice [0, 1, 2]"]  # stored, not acknowledged
        release.set()
        await flushing

    asyncio.run(run())
    assert order == ["notice [0, 1, 2]", "notice acknowledged", "ack 0", "ack 1", "ack 2"]
    assert not (tmp_path / "sequences.json").exists()  # the replicas' view tracks them


def test_a_stopping_replica_does_not_wait_for_a_notice_it_cannot_send(tmp_path: Path) -> None:
    """At shutdown the writer's last flush cannot publish notices any more: its batches
    stay unacknowledged (delivered again) instead of the stop hanging."""
    notices = StoredNotices(BrokerSettings(url="mqtt://127.0.0.1:1"), "stopping", "r")
    acks: list[int] = []
    writer = BatchWriter(
        NoStore(),
        WriteSettings(),
        DeadLetters(tmp_path / "dead.jsonl", DeadLetterSettings()),
        Spool(tmp_path / "spool.sqlite"),
        SequenceTracker(),
        tmp_path / "sequences.json",
        notices.publish,
    )
    [batch] = accounting_readings(0, 0)

    async def run() -> None:
        running = asyncio.create_task(notices.run())
        await asyncio.sleep(0.1)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        writer.add("t", batch.model_dump_json().encode(), Batch.of(batch), lambda: acks.append(0))
        await asyncio.wait_for(writer.flush(), 5)
        with pytest.raises(NoticeUnavailable):
            await notices.publish([Batch.of(batch)])

    asyncio.run(run())
    assert acks == []


def test_the_collector_refuses_to_share_over_mqtt311_with_a_clear_error(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    refusing = Refusing(mosquitto.port)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with refusing.serving():
            await stop.wait()

    server = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    server.start()
    config = write_yaml(
        tmp_path / "replica.yaml",
        {
            **BASE,
            "mqtt": {"url": f"mqtt://127.0.0.1:{refusing.port}"},
            "data_dir": str(tmp_path / "data"),
            "ingest": {"shared_group": "g", "replica": "x"},
        },
    )
    try:
        done = subprocess.run(
            [str(BIN / "energy-collector"), "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        loop.call_soon_threadsafe(stop.set)
        server.join(5)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines()[-1] == (
        "energy-collector: ingest.shared_group: the broker refused MQTT 5, which the shared "
        "subscription $share/g/greengauge/v1/+/+/readings needs; upgrade the broker "
        "(mosquitto >= 1.6, EMQX) or leave shared_group out to run one collector"
    )
