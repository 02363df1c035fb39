"""The collector's composition root: every part is built here, once, and handed what it
needs; `run_collector` runs them and closes them in order.

A reading's way through the parts: Ingest (readings subscription) -> Pipeline (guard,
window, latest table, live hub, accounting) -> BatchWriter (store, spool, sequences,
dead letters). Beside it: the agent-status and MES subscriptions, the alerts publisher,
the API and the metrics, which read the parts' counts through `stats()`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from collector import sequences
from collector.accounting.engine import Accounting
from collector.accounting.live import LiveAccounting
from collector.alerts_publisher import AlertsPublisher
from collector.config import CollectorConfig
from collector.deadletters import DeadLetters
from collector.guard import Guard
from collector.health import HEALTH_FILE, HealthFile
from collector.ingest import Ingest, Message
from collector.metrics import CollectorMetrics
from collector.notify.alerts import AlertNotices, Sinks, notices_for
from collector.notify.notifier import NotifierMetrics
from collector.notify.watch import watcher_for
from collector.pipeline import Pipeline
from collector.platform.task import platform_task
from collector.replicas import (
    NOTICE_RECEIVE_MAXIMUM,
    STORED_TOPIC,
    SharedSequences,
    StoredNotices,
    replica_id,
    shared,
    state_dir,
)
from collector.spool import Spool
from collector.state.hub import LiveHub
from collector.state.latest import LatestReadings, render
from collector.state.statuses import AgentStatuses
from collector.stats import AccountingStat, DiskStat, Stats
from collector.stores import PointStore, Store
from collector.stores.history import History
from collector.stores.opening import open_history, open_store, store_retention
from collector.validate import accepted_window
from collector.writer import BatchWriter
from greengauge.common.clientid import client_id, per_host
from greengauge.common.files import open_state
from greengauge.common.logs import fields
from greengauge.common.secrets import redact_url
from greengauge.contract import PRODUCTION_SUBSCRIPTION, Topic, subscription

log = logging.getLogger(__name__)

PROGRAM = "collector"
DEAD_LETTERS_FILE = "dead-letters.jsonl"
SPOOL_FILE = "spool.sqlite"
SEQUENCES_FILE = "sequences.json"


class CollectorApp:
    """Every part of one collector. `store` is opened by the caller (one handle, shared by
    the writer and the accounting) and closed by it."""

    def __init__(
        self,
        config: CollectorConfig,
        store: Store,
        table: bool = False,
        retention: timedelta | None = None,
    ) -> None:
        self.config = config
        data_dir = config.data_dir
        ingest = config.ingest
        mqtt = config.mqtt
        # A replica's own files live in a folder of its own: replicas may share a volume.
        self.replica = replica_id(ingest.replica) if ingest.shared_group is not None else None
        if self.replica is not None:
            data_dir = state_dir(data_dir, self.replica)
        self.dead_letters = DeadLetters(data_dir / DEAD_LETTERS_FILE, config.dead_letters)
        self.guard = Guard(self.dead_letters)
        self.window = accepted_window(ingest.max_age_days, ingest.max_future_seconds, retention)
        spool = data_dir / SPOOL_FILE
        self.spool = open_state(spool, lambda: Spool(spool), "spool")
        self.sequences = sequences.load(
            data_dir / SEQUENCES_FILE, ingest.max_seq_jump, ingest.agents
        )
        self.stored_notices: StoredNotices | None = None
        self.shared_sequences: SharedSequences | None = None
        if self.replica is not None:
            self.stored_notices = StoredNotices(mqtt, self._client_id("stored"), self.replica)
            self.shared_sequences = SharedSequences(
                self.sequences, data_dir / SEQUENCES_FILE, ingest.sequence_grace_seconds
            )
        self.writer = BatchWriter(
            store,
            config.write,
            self.dead_letters,
            self.spool,
            self.sequences,
            data_dir / SEQUENCES_FILE,
            self.stored_notices.publish if self.stored_notices is not None else None,
        )
        # Kept only for its readers, the terminal table and the API: per reading, it is a
        # measurable share of the collector's CPU at hundreds of thousands of values a second.
        self.latest = (
            LatestReadings(ingest.meters_per_agent, ingest.latest_meters)
            if table or config.api is not None
            else None
        )
        self.statuses = AgentStatuses(
            self.window, ingest.agents, ingest.meters_per_agent, ingest.latest_meters
        )
        self.hub = LiveHub()
        self.alerts: AlertsPublisher | None = None
        self.notices: AlertNotices | None = None
        self.accounting = self._accounting(store)

        def subscribe(
            role: str,
            topic: str,
            deliver: Callable[[Message], None],
            receive_maximum: int = ingest.receive_maximum,
        ) -> Ingest:
            return Ingest(
                mqtt,
                self._client_id(role),
                topic,
                self.dead_letters.size_limited(deliver, ingest.max_payload),
                receive_maximum,
                ingest.ack_overdue_seconds,
            )

        readings = subscription(Topic.READINGS)
        self.view: Pipeline | None = None
        """a replica's views (table, API, accounting), fed every batch unshared"""
        if ingest.shared_group is None or self.shared_sequences is None:
            self.pipeline = Pipeline(
                self.guard, self.window, self.writer, self.hub, self.latest, self.accounting
            )
            self.ingest = subscribe("", readings, self.pipeline.receive)
            self.ingests = [self.ingest]
        else:
            # A replica stores its share; the views (table, API, accounting) need every
            # batch, so a replica serving them also takes all of them, unshared.
            # Its own hub, which nothing reads: the live stream is the view's.
            self.pipeline = Pipeline(self.guard, self.window, self.writer, LiveHub(), None, None)
            self.ingest = subscribe(
                "", shared(ingest.shared_group, readings), self.pipeline.receive
            )
            self.ingests = [
                self.ingest,
                subscribe(
                    "sequences", STORED_TOPIC, self.shared_sequences.receive, NOTICE_RECEIVE_MAXIMUM
                ),
            ]
            if self.latest is not None or self.accounting is not None:
                self.view = Pipeline(
                    self.guard, self.window, None, self.hub, self.latest, self.accounting
                )
                self.ingests.append(subscribe("view", readings, self.view.receive))
        if self.accounting is not None:
            self.ingests.append(subscribe("mes", PRODUCTION_SUBSCRIPTION, self.accounting.receive))
        if config.api is not None:
            # Agents' statuses are read by the API only.
            self.ingests.append(subscribe("status", subscription(Topic.STATUS), self._status))

    def _client_id(self, role: str) -> str:
        if self.replica is None:
            return client_id(self.config.mqtt, per_host(PROGRAM), role)
        return client_id(self.config.mqtt, f"greengauge-{PROGRAM}", role, self.replica)

    def _status(self, message: Message) -> None:
        self.statuses.receive(message, self.guard)

    def _accounting(self, store: Store) -> LiveAccounting | None:
        """The live accounting, with its alerts publisher; None without a plant model."""
        if self.config.accounting is None:
            return None
        if not isinstance(store, PointStore):  # both built-in stores are
            raise TypeError(f"{store!r} cannot store derived measurements")
        accounting = Accounting(self.config.accounting, self.config.data_dir, store)
        mqtt = self.config.mqtt
        publisher = AlertsPublisher(mqtt, self._client_id("alerts"), accounting.db)
        self.alerts = publisher
        notify = self.config.notify
        if notify is None:
            accounting.set_sink(publisher)
        else:
            # Alerts to people too; the notifier stops when the accounting closes.
            self.notices = notices_for(notify, accounting)
            accounting.set_sink(Sinks([publisher, self.notices]))
        return LiveAccounting(accounting, self.guard, self.window)

    @property
    def disk_faults(self) -> list[DiskStat]:
        faults = [self.dead_letters.fault, self.writer.disk]
        # A replica's sequence file is the shared view's, not the writer's.
        shared = self.shared_sequences
        faults.append(shared.disk if shared is not None else self.writer.sequences_disk)
        if self.accounting is not None:
            faults.append(self.accounting.accounting.disk)
        return [DiskStat(f.name, f.failing, f.failures) for f in faults]

    def stats(self) -> Stats:
        dead, seqs, writer = self.dead_letters, self.sequences, self.writer
        agents = seqs.agents.values()
        acc = self.accounting.accounting if self.accounting is not None else None
        return Stats(
            messages=self.pipeline.messages,
            values_written=writer.values_written,
            store_writes=writer.writes,
            store_faults=writer.store_faults,
            pending=writer.pending,
            spool_depth=self.spool.depth,
            dead_letters=dead.count,
            dead_letter_bytes=dead.bytes_written,
            dead_letters_truncated=dead.truncated,
            dead_letter_files_deleted=dead.files_deleted,
            dead_letter_repeats=dead.repeats,
            dead_letters_pending=dead.pending,
            dead_letter_repaired_bytes=dead.repaired_bytes,
            disks=self.disk_faults,
            sequence_gaps=sum(a.gaps for a in agents),
            sequence_missing=seqs.missing,
            sequence_repeats=seqs.repeats,
            sequence_epochs=sum(a.epochs for a in agents),
            sequence_agents_forgotten=seqs.forgotten,
            mqtt_connected=self.ingest.connected,
            stream_subscribers=self.hub.subscribers,
            status_rejected=self.statuses.rejected,
            statuses_evicted=self.statuses.evicted,
            rejected=dict(self.guard.rejected),
            failed=dict(self.guard.failed),
            ack_overdue=sum(i.overdue for i in self.ingests),
            latest_meters=len(self.latest) if self.latest is not None else None,
            latest_evicted=self.latest.evicted if self.latest is not None else 0,
            accounting=(
                AccountingStat(
                    acc.readings_used, acc.corrections, acc.late_readings, acc.too_old_readings
                )
                if acc is not None
                else None
            ),
        )

    def status_line(self) -> str:
        api = self.config.api
        dashboard = f"dashboard http://{api.listen}/\n" if api is not None else ""
        return dashboard + (
            f"messages {self.pipeline.messages}  values stored {self.writer.values_written}  "
            f"spooled {self.spool.depth}  dead letters {self.dead_letters.count}  "
            f"missing batches {self.sequences.missing}  (Ctrl-C to stop)"
        )

    async def show_table(self, latest: LatestReadings) -> None:
        while True:
            table = render(latest.rows(), datetime.now(UTC), self.status_line())
            # Home the cursor and clear below, so the table refreshes in place.
            sys.stdout.write("\x1b[H\x1b[J" + table + "\n")
            sys.stdout.flush()
            await asyncio.sleep(1.0)

    def close(self) -> None:
        self.spool.close()
        if self.accounting is not None:
            self.accounting.close()


async def run_collector(config: CollectorConfig, table: bool, drain: bool = False) -> None:
    metrics = CollectorMetrics()
    raw_store = open_store(config)
    retention = await asyncio.to_thread(store_retention, raw_store)
    store = metrics.timed(raw_store)
    app = CollectorApp(config, store, table, retention)
    metrics.watch(app.stats)
    if app.notices is not None:
        metrics.registry.register(NotifierMetrics(app.notices.notifier))
    log.info(
        "collector starting",
        extra=fields(
            broker=redact_url(config.mqtt.url),
            store=redact_url(config.influxdb.url) if config.influxdb else "embedded sqlite",
            data_dir=str(config.data_dir),
            spooled=app.spool.depth,
            accepted_days=app.window.max_age.days,
            **({"replica": app.replica} if app.replica is not None else {}),
        ),
    )
    # SIGTERM stops as Ctrl-C does: what is pending is made durable before exit (and
    # what cannot be acknowledged any more is delivered again by the broker).
    main = asyncio.current_task()
    terminated = asyncio.Event()

    def terminate() -> None:
        terminated.set()
        if main is not None:
            main.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    history: History | None = None
    try:
        async with asyncio.TaskGroup() as tasks:
            history = _start(app, metrics, tasks, table, terminate if drain else None)
    except asyncio.CancelledError:
        if not terminated.is_set():
            raise
    finally:
        await app.writer.flush()
        log.info(
            "collector stopped",
            extra=fields(
                messages=app.pipeline.messages,
                values_stored=app.writer.values_written,
                spooled=app.spool.depth,
                dead_letters=app.dead_letters.count,
                sequence_repeats=app.sequences.repeats,
                missing_batches=app.sequences.missing,
            ),
        )
        if history is not None:
            history.close()
        app.close()
        store.close()


def _start(
    app: CollectorApp,
    metrics: CollectorMetrics,
    tasks: asyncio.TaskGroup,
    table: bool,
    drain: Callable[[], None] | None,
) -> History | None:
    """Every task of a running collector; the API's history reader, to close at the end.
    `drain`: leave the shared group, then call it (`run --drain`)."""
    config = app.config
    tasks.create_task(app.writer.run())
    tasks.create_task(HealthFile(app.stats, config.data_dir / HEALTH_FILE).run())
    if app.stored_notices is not None and app.shared_sequences is not None:
        tasks.create_task(app.stored_notices.run())
        tasks.create_task(app.shared_sequences.run())
        if drain is not None:
            tasks.create_task(_drain(app, drain))
    for ingest in app.ingests:
        tasks.create_task(ingest.run())
    if table and app.latest is not None:
        tasks.create_task(app.show_table(app.latest))
    if app.accounting is not None:
        tasks.create_task(app.accounting.run())
    if app.alerts is not None:
        tasks.create_task(app.alerts.run())
    if config.alert_rules is not None:
        db = app.accounting.accounting.db if app.accounting is not None else None
        tasks.create_task(watcher_for(config, app.notices, db, app.latest, app.statuses).run())
    tasks.create_task(platform_task(config, app.accounting))
    return _open_api(app, metrics, tasks) if config.api is not None else None


async def _drain(app: CollectorApp, stop: Callable[[], None]) -> None:
    """Leave the shared group, store what the broker queued for this replica's id, stop.

    Explicit, never on SIGTERM: replicas all stopping at once (an upgrade) must stay in
    the group, or the broker, finding no member, would drop what agents send meanwhile."""
    await app.ingest.leave()
    log.info("drained: left the shared group, everything queued for it is stored")
    stop()


def _open_api(app: CollectorApp, metrics: CollectorMetrics, tasks: asyncio.TaskGroup) -> History:
    """Start the API (imported only when configured: FastAPI and uvicorn are heavy)."""
    from collector.api import figures  # noqa: PLC0415
    from collector.api.audit import FILE_NAME as AUDIT_FILE  # noqa: PLC0415
    from collector.api.audit import AuditLog  # noqa: PLC0415
    from collector.api.server import Api  # noqa: PLC0415

    assert app.config.api is not None and app.latest is not None
    history = open_history(app.config)
    accounting = app.accounting.accounting if app.accounting is not None else None
    state = figures.State(app.latest, app.statuses, accounting)
    audit = AuditLog(app.config.data_dir / AUDIT_FILE, app.config.api.audit_days)
    api = Api(app.config.api, state, app.hub, history, app.accounting, metrics, app.notices, audit)
    tasks.create_task(api.run())
    return history
