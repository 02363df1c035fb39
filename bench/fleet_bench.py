"""Fleet simulation against 1, 2, 3 collector replicas on one MQTT 5 shared subscription.

    .venv/bin/python bench/fleet_bench.py --plants 100 --meters 200 --intervals 1,15 \
        --replicas 1,2,3 --seconds 20

Every plant is one agent publishing the wire format (one reading batch per interval with
every meter, --quantities values each, its own seq, QoS 1), plants spread evenly over
the interval; mosquitto and VictoriaMetrics as in collector_bench.py. For each interval
and replica count: fresh replicas (`energy-collector run`, `ingest.shared_group`, the
influxdb store on VM) subscribe, the fleet publishes for --seconds after a warm-up
interval, and the run reports values/s published and stored (VM's inserted rows), the
lag from the last publish until VM had every value, each replica's CPU seconds and its
share of the batches (from the stored notices), CPU s per 1,000 values per replica and in
all, and the machine's busy fraction over the window (the feeder and servers included).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from common import (
    VAR,
    MachineLoad,
    Mosquitto,
    VictoriaMetrics,
    bin_path,
    child,
    cpu_seconds,
    machine,
    save_result,
    subscriber,
)
from paho.mqtt.enums import CallbackAPIVersion

from collector.replicas import STORED_TOPIC

QUANTITIES = [
    "voltage_l1",
    "voltage_l2",
    "voltage_l3",
    "current_l1",
    "current_l2",
    "current_l3",
    "power_active",
    "power_reactive",
    "power_factor",
    "frequency",
    "energy_active_import",
    "energy_active_export",
    "energy_reactive_import",
    "energy_reactive_export",
    "energy_active_total",
]
QUEUE_FULL = paho.MQTT_ERR_QUEUE_SIZE


class Plant:
    """Pre-rendered batches of one plant's agent; only seq and ts change per message."""

    def __init__(self, name: str, meters: int, quantities: int, run: str) -> None:
        self.agent = name
        self.seq = 0
        values = ",".join(
            f'"{q}":{230.0 + i * 1.125}' for i, q in enumerate(QUANTITIES[:quantities])
        )
        self._parts = [f'{{"meter":"m{i:03d}","ts":"' for i in range(meters)]
        self._tail = f'","values":{{{values}}}}}'
        self.site = run
        self.topic = f"greengauge/v1/{run}/{name}/readings"

    def message(self, ts: float) -> bytes:
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"
        )
        readings = (self._tail + ",").join(p + stamp for p in self._parts) + self._tail
        body = (
            f'{{"schema_version":1,"site":"{self.site}","agent":"{self.agent}",'
            f'"seq":{self.seq},"readings":[{readings}]}}'
        )
        self.seq += 1
        return body.encode()


def inserted(vm: VictoriaMetrics) -> int:
    with urllib.request.urlopen(f"{vm.url}/metrics", timeout=30) as response:  # noqa: S310
        text = response.read().decode()
    match = re.search(r'^vm_rows_inserted_total\{type="influx"\} (\d+)', text, re.M)
    return int(match[1]) if match else 0


def replica_config(
    path: Path,
    broker: Mosquitto,
    vm: VictoriaMetrics,
    group: str,
    name: str,
    write: dict[str, float],
) -> Path:
    config: dict[str, Any] = {
        # A client id per case: a session keeps its subscriptions, so a replica id reused
        # with another group would receive through both (see docs/architecture.md).
        "mqtt": {"url": broker.url, "client_id": f"fleet-{group}"},
        "influxdb": {"url": vm.url, "org": "bench", "bucket": "bench", "token": "bench"},
        "data_dir": str(path.parent / "data"),
        "ingest": {"shared_group": group, "replica": name},
        "write": write,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_case(  # noqa: PLR0915
    work: Path,
    broker: Mosquitto,
    vm: VictoriaMetrics,
    client: paho.Client,
    interval: float,
    replicas: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    group = f"i{interval:g}-n{replicas}".replace(".", "_")
    shares: Counter[str] = Counter()
    lock = threading.Lock()

    def noticed(payload: bytes) -> None:
        notice = json.loads(payload)
        with lock:
            shares[notice["replica"]] += len(notice["seqs"])

    watcher = subscriber(broker.port, STORED_TOPIC, f"watch-{group}", noticed)
    plants = [Plant(f"p{i:04d}", args.meters, args.quantities, group) for i in range(args.plants)]
    per_message = args.meters * args.quantities
    (work / group).mkdir()
    with ExitStack() as stack:
        procs = {}
        for index in range(replicas):
            name = f"r{index}"
            write = {} if args.max_delay is None else {"max_delay": args.max_delay}
            config = replica_config(work / group / f"{name}.yaml", broker, vm, group, name, write)
            command = [bin_path("energy-collector"), "run", "--config", str(config)]
            procs[name] = stack.enter_context(child(command, work / group / f"{name}.log"))
        deadline = time.monotonic() + 30
        while any(
            (work / group / f"{n}.log").read_text().count("msg=subscribed") < 2 for n in procs
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("replicas did not subscribe")
            time.sleep(0.2)
        # Warm-up interval (new series in VM), then the measured window.
        ticks = int(args.seconds / interval) + 1
        start = time.time() + 0.5
        before = cpu0 = None
        load = None
        published = 0
        late = 0.0
        for tick in range(ticks):
            if tick == 1:
                before = inserted(vm)
                cpu0 = {n: cpu_seconds(p.pid) for n, p in procs.items()}
                load = MachineLoad()
                with lock:
                    shares.clear()
                measured_from = time.time()
            for index, plant in enumerate(plants):
                due = start + tick * interval + index * interval / len(plants)
                wait = due - time.time()
                if wait > 0:
                    time.sleep(wait)
                elif tick:
                    late = max(late, -wait)
                payload = plant.message(time.time())
                while client.publish(plant.topic, payload, qos=1).rc == QUEUE_FULL:
                    time.sleep(0.001)
                if tick:
                    published += per_message
        published_at = time.time()
        assert before is not None and cpu0 is not None and load is not None
        drained = None
        while time.time() < published_at + args.max_wait:
            if inserted(vm) - before >= published:
                drained = time.time()
                break
            time.sleep(0.05)
        cpu = {n: cpu_seconds(p.pid) - cpu0[n] for n, p in procs.items()}
        busy = load.busy()
        stored = inserted(vm) - before
        time.sleep(1)
        watcher.loop_stop()
        with lock:
            batches = dict(shares)
    window = published_at - measured_from
    total_cpu = sum(cpu.values())
    per_replica = {
        n: {
            "cpu_s": round(cpu[n], 2),
            "values": batches.get(n, 0) * per_message,
            "cpu_s_per_1000_values": round(
                1000 * cpu[n] / max(batches.get(n, 0) * per_message, 1), 4
            ),
        }
        for n in procs
    }
    return {
        "interval_s": interval,
        "replicas": replicas,
        "max_delay": args.max_delay,
        "plants": args.plants,
        "meters": args.meters,
        "quantities": args.quantities,
        "window_s": round(window, 1),
        "values_published": published,
        "values_per_s_published": round(published / window),
        "values_stored": stored,
        # Until the store had them all: above the published rate's reach, the lag counts.
        "values_per_s_stored": round(published / (drained - measured_from)) if drained else None,
        "lag_after_last_publish_s": None if drained is None else round(drained - published_at, 2),
        "publisher_late_max_s": round(late, 3),
        "cpu_s_per_1000_values_all_replicas": round(1000 * total_cpu / max(published, 1), 4),
        "per_replica": per_replica,
        "machine_busy": round(busy, 3),
        "loadavg": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plants", type=int, default=100)
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--quantities", type=int, default=10, choices=range(1, len(QUANTITIES) + 1))
    parser.add_argument("--intervals", default="1,15")
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--seconds", type=float, default=20, help="measured, per case")
    parser.add_argument("--max-wait", type=float, default=60, help="for the store to catch up")
    parser.add_argument(
        "--max-delay", type=float, help="the replicas' write.max_delay (default: theirs)"
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    work = VAR / "fleet" / time.strftime("%Y%m%dT%H%M%S")
    work.mkdir(parents=True)
    run: dict[str, Any] = {"bench": "fleet", "machine": machine(), "cases": []}
    with ExitStack() as stack:
        broker = Mosquitto(work / "mosquitto", extra_config=["max_queued_messages 1000000"])
        broker.start()
        stack.callback(broker.stop)
        vm = VictoriaMetrics(work / "vm", extra_args=["-search.maxUniqueTimeseries=10000000"])
        vm.start()
        stack.callback(vm.stop)
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="fleet-feed")
        client.max_inflight_messages_set(200)
        client.max_queued_messages_set(200)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        stack.callback(client.loop_stop)
        for interval in (float(i) for i in args.intervals.split(",")):
            for replicas in (int(r) for r in args.replicas.split(",")):
                case = run_case(work, broker, vm, client, interval, replicas, args)
                print(json.dumps(case), flush=True)
                run["cases"].append(case)
    if not args.no_save:
        save_result("fleet", run)


if __name__ == "__main__":
    main()
