"""The collector's config file: the broker, the store, and where local state lives."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from collector.api.settings import ApiSettings
from collector.notify.rules import AlertRules
from collector.notify.settings import NotifySettings
from collector.plant import AccountingConfig
from collector.platform.settings import PlatformSettings
from collector.sequences import DEFAULT_MAX_JUMP
from greengauge.common.broker import BrokerSettings
from greengauge.common.configfile import load_model


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InfluxSettings(_Config):
    url: str = Field(pattern=r"^https?://", description="http(s)://host:8086")
    org: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    token: SecretStr = Field(description="use ${INFLUX_TOKEN}, never a literal")
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds per write")


class WriteSettings(_Config):
    max_values: int = Field(
        default=50_000, ge=1, description="flush a write once this many values wait"
    )
    # 50 ms: at 500 one-reading messages a second, 0 made every message its own store
    # write (1.08 ms of CPU each, twice Node-RED's 0.52); 0.05 took it to 0.28 ms with
    # read -> stored p99 at 0.17 s (issue 19's bound: 0.5 s). Under heavy load batches
    # grow with the write time anyway.
    max_delay: float = Field(
        default=0.05,
        ge=0,
        le=60,
        description=(
            "seconds the oldest waiting value may wait for more to join its write; "
            "0: written as soon as the writer is free"
        ),
    )

    # Writes in flight at once: one at a time, the store's answer time bounds the rate
    # (VictoriaMetrics on a busy machine); the acknowledgements stay in order regardless.
    concurrency: int = Field(
        default=2,
        ge=1,
        le=16,
        description=(
            "store writes in flight at once; their acknowledgements are still released "
            "in the order the messages arrived"
        ),
    )


class IngestSettings(_Config):
    max_payload: int = Field(
        default=1_048_576,
        ge=1024,
        description=(
            "bytes: a larger message is dead-lettered (reason, size, hash and a prefix); "
            "keep the broker's max_packet_size just above it (deploy/mosquitto)"
        ),
    )
    receive_maximum: int = Field(
        default=100,
        ge=1,
        le=65535,
        description="MQTT 5: messages the broker may send before the collector acknowledges",
    )
    max_age_days: float | None = Field(
        default=None,
        gt=0,
        le=36500,
        description=(
            "oldest reading, agent status or production period accepted, in days; default: "
            "the InfluxDB bucket's retention when it states one, else 3650 (the store would "
            "drop older points silently: the collector dead-letters them instead)"
        ),
    )
    max_future_seconds: float = Field(
        default=300,
        ge=0,
        le=7 * 86400,
        description="how far ahead of the collector's clock a timestamp may be",
    )
    max_seq_jump: int = Field(
        default=DEFAULT_MAX_JUMP,
        ge=1,
        description="a batch seq this far from an agent's highest starts a new epoch (logged)",
    )
    ack_overdue_seconds: float = Field(
        default=60,
        gt=0,
        le=86400,
        description="log an error when one message holds back the acknowledgements this long",
    )
    meters_per_agent: int = Field(
        default=1000,
        ge=1,
        description="distinct meter ids one agent may report (more: dead-lettered)",
    )
    latest_meters: int = Field(
        default=50_000,
        ge=1,
        description=(
            "latest readings kept for the API in all, and meters named by the agent "
            "statuses kept (least recently updated evicted)"
        ),
    )
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description=(
            "run as one of several replicas sharing the readings through the MQTT 5 shared "
            "subscription $share/<group>/...; leave out for a single collector"
        ),
    )
    replica: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description=(
            "with shared_group: this replica's id, stable across its restarts (its broker "
            "session and its state folder data_dir/replicas/<id> are kept by it); default: "
            "the host name"
        ),
    )
    sequence_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description=(
            "with shared_group: how long a batch stored by one replica may trail a later "
            "batch of its agent stored by another before the hole counts as a gap"
        ),
    )
    agents: int = Field(
        default=10_000,
        ge=1,
        description=(
            "agents whose status and batch sequence numbers are kept (least recently "
            "updated forgotten)"
        ),
    )


class DeadLetterSettings(_Config):
    payload_prefix: int = Field(
        default=4096, ge=0, le=1_048_576, description="bytes of each payload kept, at most"
    )
    max_file_bytes: int = Field(
        default=10_000_000, ge=65_536, description="dead-letters.jsonl rotates at this size"
    )
    max_files: int = Field(
        default=5, ge=1, le=100, description="files kept, rotated ones included (oldest go)"
    )


class CollectorConfig(_Config):
    mqtt: BrokerSettings
    influxdb: InfluxSettings | None = Field(
        default=None, description="leave out for the embedded SQLite store"
    )
    data_dir: Path = Field(
        default=Path("var/collector"),
        description="embedded store, dead letters, spool; relative to the config file's folder",
    )
    write: WriteSettings = WriteSettings()
    ingest: IngestSettings = IngestSettings()
    dead_letters: DeadLetterSettings = DeadLetterSettings()
    accounting: AccountingConfig | None = Field(
        default=None, description="the plant model; leave out to store readings only"
    )
    api: ApiSettings | None = Field(
        default=None, description="HTTP API, dashboard and /metrics; leave out for none"
    )
    language: Literal["en", "zh-CN"] | None = Field(
        default=None,
        description=(
            "language of reports, summaries and alert texts; --lang and GREENGAUGE_LANG "
            "come first; leave out for the locale (LC_ALL, LANG)"
        ),
    )
    notify: NotifySettings | None = Field(
        default=None,
        description="deliver alerts to webhooks, email, DingTalk, WeCom; leave out for none",
    )
    alert_rules: AlertRules | None = Field(
        default=None,
        description="meters or gateways offline, outboxes backing up, thresholds on any "
        "quantity; needs `notify` and `api` (whose status subscription they read)",
    )

    platform: PlatformSettings | None = Field(
        default=None,
        description="upload indicators to the provincial energy online-monitoring platform",
    )

    @model_validator(mode="after")
    def _platform_sites(self) -> CollectorConfig:
        if self.platform is not None:
            self.platform.check(self.accounting)
        return self

    @model_validator(mode="after")
    def _rules_need(self) -> CollectorConfig:
        if self.alert_rules is not None:
            missing = [n for n in ("notify", "api") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"alert_rules: needs the {' and '.join(missing)} section")
        return self

    @model_validator(mode="after")
    def _replicas_share_a_store(self) -> CollectorConfig:
        if self.ingest.shared_group is not None and self.influxdb is None:
            raise ValueError(
                "ingest.shared_group: replicas need a store they share (influxdb: InfluxDB "
                "or VictoriaMetrics); the embedded SQLite store is one collector's own"
            )
        return self


def load_config(path: Path) -> CollectorConfig:
    config, _ = load_model(path, CollectorConfig)
    if not config.data_dir.is_absolute():
        config = config.model_copy(update={"data_dir": (path.parent / config.data_dir).resolve()})
    return config
