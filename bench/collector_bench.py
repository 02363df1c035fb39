"""Collector benchmark: a bounded publisher feeds mosquitto at rising rates; the collector
(`energy-collector run`, influxdb store) writes into VictoriaMetrics.

    .venv/bin/python bench/collector_bench.py --rates 50000,100000,200000,300000,500000
    .venv/bin/python bench/collector_bench.py --peer nodered --rates 25000,50000,100000

`--peer nodered` measures the peer instead: Node-RED 4.1.8, mqtt in (QoS 1, JSON) ->
function (batch to points) -> influxdb batch (node-red-contrib-influxdb 0.7.0, v2 API,
one write per message) into the same VictoriaMetrics, same series names and tags.

The feed looks like a fleet of agents with 100 meters each: every agent sends one
reading batch a second (100 readings x 39 values, the wire format, QoS 1, its own seq),
agents started evenly over the second; a rate of R values/s is R / 3900 agents. The
publisher is bounded: paho-mqtt with at most --inflight unacknowledged messages.

Per step (--step seconds at one rate) it reports: values published, values queryable in
VictoriaMetrics afterwards (a count query over the step's timestamps: the loss), how
long after the last publish the store had them all (the lag), the collector's CPU
seconds per 1000 values, and two latencies from the reading's ts (stamped by the feeder
just before it publishes, so the publisher's bound waits count):

- read -> stored (GreenGauge only): the collector's histogram
  greengauge_collector_reading_stored_age_seconds, every reading, observed when the store
  answered the write (HTTP 204), scraped from its /metrics before and after the step;
  p50/p99 interpolated within buckets, the share within 1.5 s exact. Against InfluxDB
  2.x, the production store, an acknowledged write is queryable.
- read -> queryable in VictoriaMetrics: one meter of every agent is a probe, and a
  poller asks VM every 50 ms (export API, cache off) for probe points, so latency =
  first seen - the reading's ts. This adds VM's own visibility delay (fresh rows become
  searchable on a ~1 s flush ticker; bench/limits.py --only vm-visibility measures it).

A step's agents are all new series; the step measures once every probe series has shown
in VM (warmup_s). A step counts as sustained when nothing is lost and the lag after the
step is at most --max-lag seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from common import (
    BENCH,
    PY_SPY,
    VAR,
    MachineLoad,
    Mosquitto,
    VictoriaMetrics,
    bin_path,
    child,
    cpu_seconds,
    free_port,
    machine,
    percentile,
    save_result,
    thread_cpu_seconds,
)
from paho.mqtt.enums import CallbackAPIVersion

METERS_PER_AGENT = 100
QUANTITIES = [
    "voltage_l1",
    "voltage_l2",
    "voltage_l3",
    "voltage_l1_l2",
    "voltage_l2_l3",
    "voltage_l3_l1",
    "current_l1",
    "current_l2",
    "current_l3",
    "current_n",
    "power_active",
    "power_active_l1",
    "power_active_l2",
    "power_active_l3",
    "power_reactive",
    "power_reactive_l1",
    "power_reactive_l2",
    "power_reactive_l3",
    "power_apparent",
    "power_apparent_l1",
    "power_apparent_l2",
    "power_apparent_l3",
    "power_factor",
    "power_factor_l1",
    "power_factor_l2",
    "power_factor_l3",
    "frequency",
    "energy_active_import",
    "energy_active_export",
    "energy_active_total",
    "energy_active_import_l1",
    "energy_active_import_l2",
    "energy_active_import_l3",
    "energy_active_export_l1",
    "energy_active_export_l2",
    "energy_active_export_l3",
    "energy_reactive_import",
    "energy_reactive_export",
    "energy_reactive_total",
]
QUEUE_FULL = paho.MQTT_ERR_QUEUE_SIZE
# A step's agents are new series in VM, which makes new series searchable ~9 s after their
# first write (bench/limits.py, vm-visibility "new"), later than new points of known
# series, and takes them slower meanwhile: a step measures from WARMUP seconds after
# every agent's probe series has shown (the collector has caught up by then), or after
# MAX_WARMUP seconds.
WARMUP = 3
MAX_WARMUP = 30
STORED_AGE = "greengauge_collector_reading_stored_age_seconds"


class Feed:
    """Pre-rendered reading batches of one agent; only seq and ts change per message."""

    def __init__(
        self, agent: str, meters: int = METERS_PER_AGENT, quantities: int = len(QUANTITIES)
    ) -> None:
        self.agent = agent
        self.seq = 0
        self.values = meters * quantities
        names = QUANTITIES[:quantities]
        values = ",".join(f'"{q}":{230.0 + i * 1.125}' for i, q in enumerate(names))
        meter_ids = ["probe"] + [f"m{i:03d}" for i in range(1, meters)]
        self._parts = [f'{{"meter":"{m}","ts":"' for m in meter_ids]
        self._tail = f'","values":{{{values}}}}}'
        self.topic = f"greengauge/v1/bench/{agent}/readings"

    def message(self, ts: float) -> bytes:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
        stamp += f".{int(ts * 1000) % 1000:03d}Z"
        middle = self._tail + ","
        readings = middle.join(p + stamp for p in self._parts) + self._tail
        body = (
            f'{{"schema_version":1,"site":"bench","agent":"{self.agent}",'
            f'"seq":{self.seq},"readings":[{readings}]}}'
        )
        self.seq += 1
        return body.encode()


class Prober(threading.Thread):
    """Polls VictoriaMetrics for probe points; remembers when each (agent, ts) showed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: dict[tuple[str, int], float] = {}
        self.start_s = time.time()
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stopping.is_set():
            query = urllib.parse.urlencode(
                {
                    "match[]": 'reading_voltage_l1{meter="probe"}',
                    "start": f"{self.start_s - 1:.3f}",
                    "end": "4102444800",
                }
            )
            now = time.time()
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=5) as r:  # noqa: S310
                    body = r.read()
                with self.lock:
                    for line in body.splitlines():
                        item = json.loads(line)
                        agent = item["metric"]["agent"]
                        for ts in item["timestamps"]:
                            self.seen.setdefault((agent, ts), now)
            self.stopping.wait(0.05)

    def agents_seen(self, prefix: str) -> int:
        with self.lock:
            return len({agent for agent, _ in self.seen if agent.startswith(prefix)})


def _get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        body: bytes = response.read()
        return body


def inserted(vm: VictoriaMetrics) -> int:
    text = _get(f"{vm.url}/metrics").decode()
    match = re.search(r'^vm_rows_inserted_total\{type="influx"\} (\d+)', text, re.M)
    return int(match[1]) if match else 0


def stored(vm: VictoriaMetrics, agents: str, first_ms: int, last_ms: int) -> int:
    """Values of the step's agents in VM with first_ms <= ts <= last_ms (deduplicated)."""
    vm.force_flush()
    window = last_ms - first_ms + 1
    query = urllib.parse.urlencode(
        {
            "query": (
                f'sum(count_over_time({{__name__=~"reading_.+",agent=~"{agents}"}}[{window}ms]))'
            ),
            "time": f"{last_ms / 1000:.3f}",
        }
    )
    # A count over millions of fresh points can take VM a while on a busy machine.
    data = json.loads(_get(f"{vm.url}/api/v1/query?{query}", timeout=180))
    result = data["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def stored_ages(metrics_url: str | None) -> dict[float, float]:
    """The collector's read-to-stored histogram: cumulative count per upper bound."""
    if metrics_url is None:
        return {}
    text = _get(metrics_url).decode()
    pattern = rf'^{STORED_AGE}_bucket{{le="([^"]+)"}} (\S+)$'
    return {float(m[1]): float(m[2]) for m in re.finditer(pattern, text, re.M)}


def age_figures(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """p50/p99 of a histogram's increase (linear within a bucket, as histogram_quantile),
    and the exact share within 1.5 s (a bucket bound)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or not counts[-1]:
        return {}
    total = counts[-1]

    def quantile(q: float) -> float:
        rank, low, below = q * total, 0.0, 0.0
        for bound, count in zip(bounds, counts, strict=True):
            if count >= rank:
                if math.isinf(bound):
                    return low
                return low + (bound - low) * (rank - below) / max(count - below, 1e-9)
            low, below = bound, count
        return low

    return {
        "read_stored_readings": int(total),
        "read_stored_s_p50": round(quantile(0.5), 3),
        "read_stored_s_p99": round(quantile(0.99), 3),
        "read_stored_within_1_5_s": round(counts[bounds.index(1.5)] / total, 4),
    }


def collector_config(
    path: Path,
    mqtt_port: int,
    vm_url: str,
    api_port: int,
    write: dict[str, float],
    receive_maximum: int | None = None,
) -> None:
    config: dict[str, Any] = {
        "mqtt": {"url": f"mqtt://127.0.0.1:{mqtt_port}", "client_id": "bench-collector"},
        "influxdb": {"url": vm_url, "org": "bench", "bucket": "bench", "token": "bench"},
        "data_dir": str(path.parent / "collector-data"),
        # For /metrics only: the read-to-stored histogram.
        "api": {"listen": f"127.0.0.1:{api_port}"},
    }
    if write:
        config["write"] = write
    if receive_maximum is not None:
        config["ingest"] = {"receive_maximum": receive_maximum}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


_TO_POINTS = """
const b = msg.payload;
msg.payload = b.readings.map(r => ({measurement: 'reading',
  tags: {agent: b.agent, meter: r.meter, site: b.site}, fields: r.values,
  timestamp: new Date(r.ts)}));
return msg;
"""


def nodered_collector(work: Path, mqtt_port: int, vm_url: str) -> list[str]:
    """Node-RED's flow and settings in work/nodered; returns its command line."""
    user_dir = work / "nodered"
    user_dir.mkdir()
    flows = [
        {"id": "tab", "type": "tab", "label": "collector"},
        {
            "id": "broker",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(mqtt_port),
            "clientid": "bench-nodered-collector",
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": False,
        },
        {
            "id": "in",
            "type": "mqtt in",
            "z": "tab",
            "topic": "greengauge/v1/+/+/readings",
            "qos": "1",
            "datatype": "json",
            "broker": "broker",
            "wires": [["points"]],
        },
        {
            "id": "points",
            "type": "function",
            "z": "tab",
            "func": _TO_POINTS,
            "outputs": 1,
            "wires": [["write"]],
        },
        {
            "id": "influx",
            "type": "influxdb",
            "influxdbVersion": "2.0",
            "url": vm_url,
            "timeout": "10",
            "rejectUnauthorized": False,
        },
        {
            "id": "write",
            "type": "influxdb batch",
            "z": "tab",
            "influxdb": "influx",
            "precisionV18FluxV20": "ms",
            "org": "bench",
            "bucket": "bench",
            "wires": [],
        },
    ]
    (user_dir / "flows.json").write_text(json.dumps(flows))
    (user_dir / "flows_cred.json").write_text(json.dumps({"influx": {"token": "bench"}}))
    (user_dir / "settings.js").write_text(
        "module.exports = {flowFile: 'flows.json', credentialSecret: false, uiHost: '127.0.0.1',"
        " httpAdminRoot: false, httpNodeRoot: false, logging: {console: {level: 'warn'}}};\n"
    )
    red = BENCH / "peers" / "nodered" / "node_modules" / "node-red" / "red.js"
    return ["node", str(red), "--userDir", str(user_dir), "--port", "0"]


def record(pid: int, seconds: int, folded: Path) -> subprocess.Popen[bytes]:
    """py-spy samples the process for `seconds` into folded stacks: only the thread that
    holds the GIL (`--gil`), i.e. where its Python CPU goes; without it, a thread waiting
    for the GIL (or in select) counts as busy at the line it waits on."""
    return subprocess.Popen(
        [
            *(str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds)),
            *("--gil", "--rate", "100", "--format", "raw", "--output", str(folded)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=folded.with_suffix(".log").open("wb"),
    )


def profile_top(folded: Path) -> None:
    """The profile's top functions (bench/profile_top.py), printed and saved beside it."""
    top = subprocess.run(
        [bin_path("python"), str(BENCH / "profile_top.py"), str(folded)],
        capture_output=True,
        text=True,
        check=False,
    )
    folded.with_suffix(".top.txt").write_text(top.stdout)
    print(top.stdout, flush=True)


def run_step(  # noqa: PLR0912, PLR0915
    rate: int,
    seconds: int,
    client: paho.Client,
    pids: dict[str, int],
    vm: VictoriaMetrics,
    prober: Prober,
    max_lag: float,
    metrics_url: str | None,
    shape: tuple[int, int] = (METERS_PER_AGENT, len(QUANTITIES)),
    profile: Path | None = None,
) -> dict[str, Any]:
    per_message = shape[0] * shape[1]
    agents = max(1, round(rate / per_message))
    feeds = [Feed(f"a{rate}-{i:03d}", *shape) for i in range(agents)]
    before = inserted(vm)
    start = math.floor(time.time()) + 1.0
    sent = published = 0
    late = 0.0
    first_ms = last_ms = 0
    load: MachineLoad | None = None
    cpu0: dict[str, float] = {}
    threads0: dict[int, float] = {}
    ages0: dict[float, float] = {}
    waits: list[float] = []
    spy: subprocess.Popen[bytes] | None = None
    prefix = f"a{rate}-"
    warmup = MAX_WARMUP
    second = 0
    # The warm-up registers the step's new series in VM; it is left out of every figure.
    while second < warmup + seconds:
        if warmup == MAX_WARMUP and prober.agents_seen(prefix) == agents:
            warmup = min(second + WARMUP, MAX_WARMUP)
        measured = second >= warmup
        if measured and load is None:
            load = MachineLoad()
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            threads0 = thread_cpu_seconds(pids["collector"])
            ages0 = stored_ages(metrics_url)
            measure_start = time.time()
            if profile is not None:
                spy = record(pids["collector"], seconds, profile)
        for index, feed in enumerate(feeds):
            due = start + second + index / agents
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            elif measured:
                late = max(late, -wait)
            ts = time.time()
            ms = int(ts * 1000)
            payload = feed.message(ts)
            # Bounded: with --inflight messages unacknowledged, wait for the broker.
            while (info := client.publish(feed.topic, payload, qos=1)).rc == QUEUE_FULL:
                time.sleep(0.001)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"publish failed: {info.rc}")
            sent += per_message
            if measured:
                # Stamped before the bound let it go: waits here count in every latency.
                waits.append(time.time() - ts)
                first_ms = first_ms or ms
                last_ms = ms
                published += per_message
        second += 1
    assert load is not None
    published_at = time.time()
    publish_seconds = published_at - measure_start
    deadline = published_at + 60
    drained_at = None
    while time.time() < deadline:
        if inserted(vm) - before >= sent:
            drained_at = time.time()
            break
        time.sleep(0.05)
    cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
    threads = thread_cpu_seconds(pids["collector"])
    # The main thread (the event loop) by its id; the others, busiest first, by rank: in
    # GreenGauge the first is paho's network thread, the rest the store's worker threads.
    thread_cpu = {t: s - threads0.get(t, 0.0) for t, s in threads.items()}
    loop_cpu = thread_cpu.pop(pids["collector"], 0.0)
    busy = load.busy()
    if spy is not None:
        spy.wait(timeout=60)
    ages = age_figures(ages0, stored_ages(metrics_url))
    time.sleep(1.0)  # the prober sees the last probes
    count = stored(vm, f"a{rate}-.*", first_ms, last_ms)
    with prober.lock:
        latencies = [
            seen - ts / 1000
            for (agent, ts), seen in prober.seen.items()
            if agent.startswith(f"a{rate}-") and first_ms <= ts <= last_ms
        ]
    probes_expected = agents * seconds
    collector_cpu = cpu1["collector"] - cpu0["collector"]
    lag = None if drained_at is None else round(drained_at - published_at, 2)
    return {
        "rate_target": rate,
        "agents": agents,
        "warmup_s": warmup,
        "seconds": seconds,
        "values_published": published,
        "publish_rate": round(published / publish_seconds),
        "publisher_late_max_s": round(late, 3),
        "publish_wait_s_p99": round(percentile(waits, 99), 3),
        "values_stored": count,
        "values_lost": published - count,
        "lag_after_step_s": lag,
        "sustained": count >= published and lag is not None and lag <= max_lag,
        "collector_cpu_s": round(collector_cpu, 2),
        "collector_cpu_s_per_1000_values": round(1000 * collector_cpu / published, 4),
        "collector_cpu_ms_per_message": round(1000 * collector_cpu * per_message / published, 4),
        "collector_thread_cpu_s": [
            round(loop_cpu, 2),
            *(round(c, 2) for c in sorted(thread_cpu.values(), reverse=True)[:4] if c >= 0.01),
        ],
        "collector_values_per_cpu_s": round(published / collector_cpu) if collector_cpu else None,
        "vm_cpu_s": round(cpu1["vm"] - cpu0["vm"], 2),
        "mosquitto_cpu_s": round(cpu1["mosquitto"] - cpu0["mosquitto"], 2),
        "feeder_cpu_s": round(cpu1["feeder"] - cpu0["feeder"], 2),
        "latency_probes": f"{len(latencies)}/{probes_expected}",
        "latency_s_p50": round(percentile(latencies, 50), 3),
        "latency_s_p99": round(percentile(latencies, 99), 3),
        "latency_s_max": round(max(latencies, default=math.nan), 3),
        **ages,
        "machine_busy": round(busy, 3),
    }


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50000,100000,200000,300000,500000")
    parser.add_argument("--step", type=int, default=20, help="seconds per rate")
    parser.add_argument("--inflight", type=int, default=200)
    parser.add_argument("--max-lag", type=float, default=2.0)
    parser.add_argument(
        "--max-delay", type=float, help="the collector's write.max_delay (default: its own)"
    )
    parser.add_argument(
        "--concurrency", type=int, help="the collector's write.concurrency (default: its own)"
    )
    parser.add_argument(
        "--receive-maximum", type=int, help="the collector's ingest.receive_maximum"
    )
    parser.add_argument("--keep-going", action="store_true", help="after a failed step")
    parser.add_argument("--peer", choices=["greengauge", "nodered"], default="greengauge")
    parser.add_argument(
        "--meters", type=int, default=METERS_PER_AGENT, help="readings a message (1: one a message)"
    )
    parser.add_argument(
        "--quantities", type=int, default=len(QUANTITIES), help="values a reading (at most 39)"
    )
    parser.add_argument("--label", help="what was measured (e.g. the code's commit), saved")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the collector with py-spy over each step's window (var/.../*.folded)",
    )
    args = parser.parse_args()
    work = VAR / "collector" / f"{args.peer}-{time.strftime('%Y%m%dT%H%M%S')}"
    work.mkdir(parents=True)
    run: dict[str, Any] = {
        "bench": "collector",
        "peer": args.peer,
        "max_delay": args.max_delay,
        "concurrency": args.concurrency,
        "receive_maximum": args.receive_maximum,
        "label": args.label,
        "profiled": args.profile,
        "meters_per_message": args.meters,
        "values_per_reading": args.quantities,
        "machine": machine(),
        "steps": [],
    }
    with ExitStack() as stack:
        broker = Mosquitto(work / "mosquitto", extra_config=["max_queued_messages 1000000"])
        broker.start()
        stack.callback(broker.stop)
        # Every agent of every step is new series (3900 each): a fleet, as in production.
        vm = VictoriaMetrics(
            work / "vm",
            # The loss count reads every point of a step: give it the time it takes.
            extra_args=["-search.maxUniqueTimeseries=10000000", "-search.maxQueryDuration=5m"],
        )
        vm.start()
        stack.callback(vm.stop)
        metrics_url = None
        if args.peer == "nodered":
            command = nodered_collector(work, broker.port, vm.url)
        else:
            config = work / "collector.yaml"
            api_port = free_port()
            metrics_url = f"http://127.0.0.1:{api_port}/metrics"
            write: dict[str, float] = {}
            if args.max_delay is not None:
                write["max_delay"] = args.max_delay
            if args.concurrency is not None:
                write["concurrency"] = args.concurrency
            collector_config(config, broker.port, vm.url, api_port, write, args.receive_maximum)
            command = [bin_path("energy-collector"), "run", "--config", str(config)]
        collector = stack.enter_context(child(command, work / "c.log", env={"HOME": str(work)}))
        time.sleep(3 if args.peer == "greengauge" else 10)
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-feed")
        client.max_inflight_messages_set(args.inflight)
        client.max_queued_messages_set(args.inflight)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        stack.callback(client.loop_stop)
        prober = Prober(vm.url)
        prober.start()
        stack.callback(prober.stopping.set)
        pids = {
            "collector": collector.pid,
            "vm": vm._process.pid,  # type: ignore[union-attr]
            "mosquitto": broker._process.pid,  # type: ignore[union-attr]
            "feeder": os.getpid(),  # this process: publisher and prober
        }
        for rate in (int(r) for r in args.rates.split(",")):
            shape = (args.meters, args.quantities)
            folded = work / f"collector-{rate}.folded" if args.profile else None
            step = run_step(
                rate, args.step, client, pids, vm, prober, args.max_lag, metrics_url, shape, folded
            )
            print(json.dumps(step), flush=True)
            if folded is not None and folded.exists():
                profile_top(folded)
            run["steps"].append(step)
            if collector.poll() is not None:
                break
            if not step["sustained"] and not args.keep_going:
                break
            time.sleep(2)
    sustained = [s["rate_target"] for s in run["steps"] if s["sustained"]]
    run["highest_sustained_rate"] = max(sustained, default=0)
    run["workdir"] = str(work.relative_to(BENCH))
    print(json.dumps({k: v for k, v in run.items() if k != "steps"}))
    if not args.no_save:
        save_result("collector", run)


if __name__ == "__main__":
    main()
