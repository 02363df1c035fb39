"""Hostile traffic at a running collector, beside valid traffic (issue 12). By hand only.

A real mosquitto, VictoriaMetrics and `energy-collector run` (InfluxDB protocol store,
API, accounting with one MES line) are started on loopback. Valid reading batches,
agent statuses and production reports are published at the same time as at least
10,000 generated hostile payloads on every topic the collector reads (and, for a share,
as POST bodies to the production API). Then it prints:

- crashes: the collector exited, or its log has a traceback;
- hangs: a sentinel batch published after everything else is not stored in time, or the
  log says a message held the acknowledgements;
- dead letters against the hostile messages the broker let through (each hostile
  payload is unique, matched by its SHA-256 or its text);
- valid values stored in VictoriaMetrics against sent, valid messages dead-lettered, and
  duplicate samples;
- the collector's RSS before and after, and its peak.

Every hostile payload is invalid by construction: a mutation of a valid message that
breaks exactly one rule, or something that is not a message at all. The generator is
seeded (`--seed`), so a run can be repeated exactly.

    .venv/bin/python bench/hostile.py --hostile 10000
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import random
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from common import (
    ROOT,
    VAR,
    Mosquitto,
    VictoriaMetrics,
    bin_path,
    child,
    free_port,
    machine,
    memory_kib,
    save_result,
    wait_port,
)
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import TypeAdapter, ValidationError

from greengauge.contract import AgentStatus, ProductionOutput, ReadingBatch, ValueAdded

SITE = "hostile-plant"
LINE = "line-1"
VALID_AGENTS = 4
METERS = 8
QUANTITIES = ("voltage_l1", "current_l1", "power_active", "frequency", "energy_active_import")
STORE_TIMEOUT = 120.0
SENTINEL_TIMEOUT = 60.0
QUIET_SECONDS = 5.0
# Hostile values for a field: none of them is valid for any field of any wire message.
BAD_VALUES: tuple[Any, ...] = (
    None,
    "",
    "x" * 5000,
    [],
    {},
    True,
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "1969-12-31T23:59:59Z",
    "2999-01-01T00:00:00Z",
    "a/b",
    "+",
    "#",
    "\u0000",
    "line\nbreak",
)
# Times a wire model accepts and only the collector's window can refuse.
OUT_OF_WINDOW = ("1969-12-31T23:59:59Z", "2999-01-01T00:00:00Z")
TIMES = ("ts", "last_read", "oldest", "start", "end")
# Literals spliced into the JSON text as they are (json.dumps cannot write them).
BAD_LITERALS = ("NaN", "Infinity", "-Infinity", "1e999", "1" * 5000, "-" + "9" * 40)


_MODELS: dict[str, TypeAdapter[Any]] = {
    "readings": TypeAdapter(ReadingBatch),
    "status": TypeAdapter(AgentStatus),
    "production": TypeAdapter(ProductionOutput | ValueAdded),
}


def _model_accepts(kind: str, text: str) -> bool:
    try:
        _MODELS[kind].validate_json(text)
    except (ValidationError, ValueError, OverflowError):
        return False
    return True


def now_utc() -> datetime:
    return datetime.now(UTC)


def stamp(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- valid messages --------------------------------------------------------------------


def reading_batch(site: str, agent: str, seq: int, ts: datetime, meters: int) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "site": site,
        "agent": agent,
        "seq": seq,
        "readings": [
            {
                "meter": f"m{m:02d}",
                "ts": stamp(ts),
                "values": {q: 100.0 + seq + m + i / 8 for i, q in enumerate(QUANTITIES)},
            }
            for m in range(meters)
        ],
    }


def agent_status(site: str, agent: str, ts: datetime) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "site": site,
        "agent": agent,
        "state": "online",
        "ts": stamp(ts),
        "meters": {"m00": {"state": "online", "last_read": stamp(ts), "reads": 10, "errors": {}}},
        "outbox": {"depth": 0, "dropped": 0},
    }


def production(start: datetime, quantity: float) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "output",
        "site": SITE,
        "line": LINE,
        "start": stamp(start),
        "end": stamp(start + timedelta(minutes=1)),
        "quantity": quantity,
        "unit": "t",
    }


def topic(agent: str, kind: str) -> str:
    return f"greengauge/v1/{SITE}/{agent}/{kind}"


PRODUCTION_TOPIC = f"greengauge/v1/{SITE}/production"


# --- hostile messages ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hostile:
    topic: str
    payload: bytes
    category: str
    http: bool = False  # sent as a POST body to the production API instead


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a field of a JSON document (object keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _set(document: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


_MARK = "\u2063hostile-literal\u2063"


class Generator:
    """Unique hostile payloads for the three topics, from one seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.serial = 0

    def _base(self) -> tuple[str, dict[str, Any]]:
        """A valid message of a random topic, made unique by its hostile agent or period."""
        self.serial += 1
        kind = self.rng.choice(("readings", "status", "production"))
        when = now_utc() - timedelta(seconds=self.rng.uniform(0, 60))
        agent = f"h{self.serial}"
        if kind == "readings":
            return topic(agent, kind), reading_batch(SITE, agent, self.serial, when, 2)
        if kind == "status":
            return topic(agent, kind), agent_status(SITE, agent, when)
        # The serial in the period keeps every production payload unique.
        start = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=self.serial)
        return PRODUCTION_TOPIC, production(start, 1.0)

    def next(self) -> Hostile:  # noqa: PLR0911 - one return per kind of payload
        topic_name, document = self._base()
        kind = topic_name.rsplit("/", 1)[1]
        choice = self.rng.random()
        if choice < 0.45:
            return self._mutated(topic_name, kind, document)
        if choice < 0.55:
            key = self.rng.choice(list(document))
            text = json.dumps(document)
            dup = f'"{key}": {json.dumps(document[key])}, '
            return Hostile(topic_name, text.replace("{", "{" + dup, 1).encode(), "duplicate key")
        if choice < 0.62:
            document["unexpected"] = self.serial
            return Hostile(topic_name, json.dumps(document).encode(), "extra field")
        if choice < 0.70:
            text = json.dumps(document)
            cut = self.rng.randrange(1, len(text) - 1)
            return Hostile(topic_name, text[:cut].encode(), "truncated json")
        if choice < 0.78:
            size = self.rng.randrange(1, 3000)
            return Hostile(topic_name, self.rng.randbytes(size), "random bytes")
        if choice < 0.83:
            depth = self.rng.choice((100, 10_000, 200_000))
            nested = "[" * depth + str(self.serial) + "]" * depth
            return Hostile(topic_name, nested.encode(), "deep nesting")
        if choice < 0.88:
            document["site"] = "another-site"
            return Hostile(topic_name, json.dumps(document).encode(), "topic mismatch")
        if choice < 0.93:
            wrong = self.rng.choice(['"x"', "[]", "null", "1", "{}"])
            return Hostile(
                topic_name, f"{wrong} ".encode() * (self.serial % 3 + 1), "not a message"
            )
        if choice < 0.97:
            # Hundreds of KB: large but under any broker limit GreenGauge ships with.
            filler = "z" * self.rng.randrange(100_000, 400_000)
            document["padding"] = filler
            return Hostile(topic_name, json.dumps(document).encode(), "large payload")
        return Hostile(topic_name, b"", "empty") if self.serial % 2 else self._oversize()

    def _mutated(self, topic_name: str, kind: str, document: dict[str, Any]) -> Hostile:
        """One field set to a value no message may carry there (drawn again while the
        wire model takes it, unless it is a time or number only the collector can judge)."""
        while True:
            mutated = json.loads(json.dumps(document))
            path = self.rng.choice(list(_paths(mutated)))
            if self.rng.random() < 0.5:
                value: Any = self.rng.choice(BAD_VALUES)
                category = f"{kind}: bad value"
            else:
                value = _MARK + self.rng.choice(BAD_LITERALS)
                category = f"{kind}: bad literal"
            _set(mutated, path, value)
            text = json.dumps(mutated, ensure_ascii=False)
            text = re.sub(f'"{_MARK}([^"]*)"', r"\1", text)
            judged_by_collector = (value in OUT_OF_WINDOW and path[-1] in TIMES) or (
                path[-1] == "seq" and not isinstance(value, str)
            )
            if judged_by_collector or not _model_accepts(kind, text):
                return Hostile(topic_name, text.encode(), category, http=self._http(kind))

    def _http(self, kind: str) -> bool:
        return kind == "production" and self.rng.random() < 0.3

    def _oversize(self) -> Hostile:
        """Bigger than the broker takes: the broker refuses it, the collector never sees it."""
        payload = b'{"pad":"' + b"y" * (2 * 1024 * 1024 + self.serial) + b'"}'
        return Hostile(topic("h0", "readings"), payload, "oversize")


# --- the run ---------------------------------------------------------------------------


def collector_config(work: Path, mqtt_port: int, vm_url: str, api_port: int) -> Path:
    config: dict[str, Any] = {
        "mqtt": {"url": f"mqtt://127.0.0.1:{mqtt_port}", "client_id": "hostile-collector"},
        "influxdb": {"url": vm_url, "org": "bench", "bucket": "bench", "token": "bench"},
        "data_dir": str(work / "collector-data"),
        "api": {"listen": f"127.0.0.1:{api_port}"},
        "accounting": {
            "sites": [
                {
                    "id": SITE,
                    "timezone": "Asia/Shanghai",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "meters": [{"id": "m00", "carrier": "electricity", "line": LINE}],
                    "lines": [
                        {
                            "id": LINE,
                            "product": "clinker",
                            "output_unit": "t",
                            "output": {"mes": True},
                            "benchmark": {
                                "custom": {
                                    "name": "bench line",
                                    "unit": "kgce/t",
                                    "benchmark": 100.0,
                                    "baseline": 120.0,
                                    "source": "bench values",
                                }
                            },
                        }
                    ],
                }
            ]
        },
    }
    path = work / "collector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def broker_limit() -> int | None:
    """The max_packet_size of the shipped broker config, which the bench's broker uses too."""
    conf = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
    match = re.search(r"^\s*max_packet_size\s+(\d+)", conf.read_text(), re.M)
    return int(match[1]) if match else None


class Publisher:
    """One QoS 1 connection; `send` waits for the broker's PUBACK (bounded in-flight)."""

    def __init__(self, port: int, client_id: str) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(50)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._inflight: list[paho.MQTTMessageInfo] = []

    def send(self, topic_name: str, payload: bytes) -> None:
        self._inflight.append(self.client.publish(topic_name, payload, qos=1))
        if len(self._inflight) >= 50:
            self.drain()

    def drain(self) -> None:
        for info in self._inflight:
            info.wait_for_publish(timeout=30)
        self._inflight.clear()

    def close(self) -> None:
        self.drain()
        self.client.disconnect()
        self.client.loop_stop()


def send_oversize(port: int, hostile: Hostile) -> bool:
    """Whether the broker accepted an oversize payload (it should cut the connection)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"oversize-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish(hostile.topic, hostile.payload, qos=1)
        with contextlib.suppress(RuntimeError, ValueError):
            # The broker cuts the connection instead of answering: no PUBACK will come.
            info.wait_for_publish(timeout=1)
        return info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def dead_letters(data_dir: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in sorted(data_dir.glob("dead-letters*.jsonl*")):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                entries.append(json.loads(line))
    return entries


def key(topic_name: str, payload: bytes) -> tuple[str, str]:
    return topic_name, hashlib.sha256(payload).hexdigest()


def letter_hash(entry: dict[str, Any]) -> str | None:
    """The SHA-256 of a dead letter's payload: its own field, or computed from its text."""
    for key in ("sha256", "payload_sha256"):
        if key in entry:
            return str(entry[key])
    if "payload" in entry:
        return hashlib.sha256(str(entry["payload"]).encode()).hexdigest()
    if "payload_base64" in entry:
        return hashlib.sha256(base64.b64decode(entry["payload_base64"])).hexdigest()
    return None


def vm_samples(vm: VictoriaMetrics, agents: str) -> tuple[int, int]:
    """(samples, duplicate samples) of the valid agents' readings in VictoriaMetrics."""
    vm.force_flush()
    samples = duplicates = 0
    for series in vm.export(f'{{__name__=~"reading_.+",agent=~"{agents}"}}'):
        stamps = series["timestamps"]
        samples += len(stamps)
        duplicates += len(stamps) - len(set(stamps))
    return samples, duplicates


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def main() -> None:  # noqa: PLR0912, PLR0915 - one run, told in order
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hostile", type=int, default=10_000, help="hostile payloads to send")
    parser.add_argument("--valid-batches", type=int, default=250, help="per valid agent")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()

    work = VAR / "hostile" / time.strftime("%Y%m%dT%H%M%S")
    run: dict[str, Any] = {"bench": "hostile", **machine(), "seed": args.seed}
    limit = broker_limit()
    extra = [f"max_packet_size {limit}"] if limit else []
    print(f"work folder {work}; broker max_packet_size {limit or 'unset'}")
    broker = Mosquitto(work / "mosquitto", extra_config=["max_queued_messages 1000000", *extra])
    vm = VictoriaMetrics(work / "vm")
    broker.start()
    vm.start()
    api_port = free_port()
    config = collector_config(work, broker.port, vm.url, api_port)
    command = [bin_path("energy-collector"), "run", "--config", str(config)]
    log_path = work / "collector.log"
    try:
        with child(command, log_path, env={"HOME": str(work)}) as collector:
            wait_port(api_port, 30)
            subscribed = wait_until(lambda: log_path.read_text().count("subscribed") >= 2, 30)
            print(f"collector up (pid {collector.pid}, both subscriptions: {subscribed})")
            rss_before = memory_kib(collector.pid)["VmRSS"]
            generator = Generator(args.seed)
            hostile = [generator.next() for _ in range(args.hostile)]
            valid = Publisher(broker.port, "hostile-valid")
            bad = Publisher(broker.port, "hostile-bad")
            production_url = f"http://127.0.0.1:{api_port}/api/v1/sites/{SITE}/production"
            sent_valid_values = 0
            valid_hashes: set[str] = set()
            seqs = dict.fromkeys(range(VALID_AGENTS), 0)
            http_codes: Counter[int] = Counter()
            # By (topic, sha256): the same payload again on a topic is one message delivered
            # twice, which the collector keeps once (and acknowledges both).
            through_broker: set[tuple[str, str]] = set()
            refused_by_broker = 0
            categories = Counter(h.category for h in hostile)
            started = time.monotonic()
            interleave = max(1, args.hostile // (args.valid_batches * VALID_AGENTS))
            for index, item in enumerate(hostile):
                if item.category == "oversize":
                    if send_oversize(broker.port, item):
                        through_broker.add(key(item.topic, item.payload))
                    else:
                        refused_by_broker += 1
                elif item.http:
                    http_codes[post(production_url, item.payload)] += 1
                else:
                    bad.send(item.topic, item.payload)
                    through_broker.add(key(item.topic, item.payload))
                if index % interleave == 0:
                    agent = index // interleave % VALID_AGENTS
                    if seqs[agent] < args.valid_batches:
                        body = reading_batch(SITE, f"v{agent}", seqs[agent], now_utc(), METERS)
                        payload = json.dumps(body).encode()
                        valid.send(topic(f"v{agent}", "readings"), payload)
                        valid_hashes.add(hashlib.sha256(payload).hexdigest())
                        sent_valid_values += METERS * len(QUANTITIES)
                        seqs[agent] += 1
                        if seqs[agent] % 50 == 0:
                            status = json.dumps(agent_status(SITE, f"v{agent}", now_utc()))
                            valid.send(topic(f"v{agent}", "status"), status.encode())
                            valid_hashes.add(hashlib.sha256(status.encode()).hexdigest())
                            report = production(now_utc().replace(microsecond=0), 1.0 + agent)
                            report_bytes = json.dumps(report).encode()
                            valid.send(PRODUCTION_TOPIC, report_bytes)
                            valid_hashes.add(hashlib.sha256(report_bytes).hexdigest())
                if index % 1000 == 999:
                    print(f"  sent {index + 1}/{len(hostile)} hostile", flush=True)
            for agent, seq in seqs.items():  # the rest of the valid batches
                for s in range(seq, args.valid_batches):
                    body = reading_batch(SITE, f"v{agent}", s, now_utc(), METERS)
                    payload = json.dumps(body).encode()
                    valid.send(topic(f"v{agent}", "readings"), payload)
                    valid_hashes.add(hashlib.sha256(payload).hexdigest())
                    sent_valid_values += METERS * len(QUANTITIES)
            bad.close()
            sent_seconds = time.monotonic() - started
            # The sentinel: a valid batch after everything else; stored only if ingest goes on.
            sentinel_at = time.monotonic()
            body = reading_batch(SITE, "v0", args.valid_batches, now_utc(), METERS)
            valid.send(topic("v0", "readings"), json.dumps(body).encode())
            valid.close()
            sent_valid_values += METERS * len(QUANTITIES)
            agents = "v[0-9]+"
            data_dir = work / "collector-data"
            stored_all = wait_until(
                lambda: vm_samples(vm, agents)[0] >= sent_valid_values, STORE_TIMEOUT
            )
            sentinel_s = time.monotonic() - sentinel_at
            previous = -1
            while (count := len(dead_letters(data_dir))) != previous:
                previous = count
                time.sleep(QUIET_SECONDS)
            samples, duplicate_samples = vm_samples(vm, agents)
            alive = collector.poll() is None
            memory = memory_kib(collector.pid) if alive else {"VmRSS": 0, "VmHWM": 0}
            letters = dead_letters(data_dir)
            letter_keys = Counter(
                (str(e.get("topic")), h) for e in letters if (h := letter_hash(e)) is not None
            )
            letter_hashes = {h for _, h in letter_keys}
            hostile_lettered = sum(1 for k in through_broker if letter_keys[k])
            hostile_twice = sum(1 for k in through_broker if letter_keys[k] > 1)
            valid_lettered = sum(1 for h in valid_hashes if h in letter_hashes)
            log_text = log_path.read_text(errors="replace")
            by_category = Counter(
                h.category
                for h in hostile
                if not h.http
                and h.category != "oversize"
                and not letter_keys[key(h.topic, h.payload)]
            )
    finally:
        broker.stop()
        vm.stop()
    run.update(
        {
            "hostile_sent": len(hostile),
            "hostile_via_broker": len(through_broker),
            "hostile_refused_by_broker": refused_by_broker,
            "hostile_via_http": sum(http_codes.values()),
            "http_codes": {str(k): v for k, v in sorted(http_codes.items())},
            "hostile_dead_lettered": hostile_lettered,
            "hostile_dead_lettered_twice": hostile_twice,
            "hostile_not_dead_lettered_by_category": dict(by_category),
            "dead_letter_entries": len(letters),
            "valid_values_sent": sent_valid_values,
            "valid_values_stored": samples,
            "valid_stored_all": stored_all,
            "valid_messages_dead_lettered": valid_lettered,
            "duplicate_samples": duplicate_samples,
            "crashed": not alive,
            "tracebacks": log_text.count("Traceback"),
            "stuck_lines": len(re.findall(r"level=error[^\n]*(stuck|held)", log_text)),
            "sentinel_stored_s": round(sentinel_s, 1) if stored_all else None,
            "send_seconds": round(sent_seconds, 1),
            "rss_before_mib": round(rss_before / 1024, 1),
            "rss_after_mib": round(memory["VmRSS"] / 1024, 1),
            "rss_peak_mib": round(memory["VmHWM"] / 1024, 1),
            "categories": dict(categories),
        }
    )
    print(json.dumps(run, indent=1, ensure_ascii=False))
    print(f"saved to {save_result('hostile', run)}")
    failed = (
        run["crashed"]
        or run["tracebacks"]
        or not stored_all
        or valid_lettered
        or hostile_lettered < len(through_broker)
        or http_codes.get(500, 0)
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
