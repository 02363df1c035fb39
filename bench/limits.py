"""Physical limits on this machine, measured the way the GreenGauge benchmarks are.

    .venv/bin/python bench/limits.py [--repeat 3]

- mosquitto: QoS 1 messages per second over loopback, one publisher (bench/qos1_publisher.py:
  paho-mqtt, 20 in flight, waits for every PUBACK) and one subscriber (mosquitto_sub -q 1),
  100-byte payloads; wall rate, messages the subscriber got, and the broker's CPU seconds
  per 1000 messages.
- VictoriaMetrics: values (fields) per second from one Python writer POSTing large
  line-protocol batches to /api/v2/write over one keep-alive connection, the bodies
  made beforehand; the count is checked against VM's vm_rows_inserted_total.
- VictoriaMetrics' own write -> queryable time (the floor of any collector's "read to
  queryable" against it), idle and under a load writer at --visibility-rates values/s:
  a point stamped now, written alone, polled with /api/v1/export every 10 ms until it
  shows (no force_flush); to a series VM knows and to a new one, separately.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    VAR,
    MachineLoad,
    Mosquitto,
    VictoriaMetrics,
    cpu_seconds,
    machine,
    percentile,
    save_result,
)


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def mosquitto_qos1(messages: int, work: Path) -> dict[str, Any]:
    broker = Mosquitto(work / "mosquitto", extra_config=["max_queued_messages 0"])
    broker.start()
    try:
        pid = broker._process.pid  # type: ignore[union-attr]
        port = str(broker.port)
        load = MachineLoad()
        # -W 120: stop after two minutes at most rather than wait forever for lost ones.
        sub = subprocess.Popen(
            [
                *("mosquitto_sub", "-p", port, "-q", "1", "-t", "limit"),
                *("-C", str(messages), "-W", "120", "-F", "."),
            ],
            stdout=subprocess.PIPE,
        )
        time.sleep(0.5)
        cpu0 = cpu_seconds(pid)
        children0 = _children_cpu()
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(BENCH / "qos1_publisher.py"), port, str(messages)],
            check=True,
            capture_output=True,
        )
        publisher_cpu = _children_cpu() - children0
        output, _ = sub.communicate(timeout=600)
        seconds = time.perf_counter() - started
        received = output.count(b".")
        cpu = cpu_seconds(pid) - cpu0
    finally:
        broker.stop()
    return {
        "limit": "mosquitto_qos1",
        "messages": messages,
        "received": received,
        "seconds": round(seconds, 2),
        "msgs_per_s": round(received / seconds),
        "broker_cpu_s_per_1000": round(1000 * cpu / messages, 4),
        "broker_msgs_per_cpu_s": round(messages / cpu) if cpu else None,
        "publisher": "paho-mqtt (Python), 20 in flight",
        "publisher_cpu_s": round(publisher_cpu, 2),
        "machine_busy": round(load.busy(), 3),
    }


def _body(batch: int, lines: int, fields: int, ts0: int) -> bytes:
    out = []
    for line in range(lines):
        values = ",".join(f"q{f}={(line * fields + f) * 0.5 + batch}" for f in range(fields))
        out.append(f"limit,site=s,agent=a,meter=m{line} {values} {ts0 + batch}")
    return ("\n".join(out) + "\n").encode()


def _inserted(vm: VictoriaMetrics) -> int:
    text = vm._get("/metrics").decode()
    match = re.search(r'^vm_rows_inserted_total\{type="influx"\} (\d+)', text, re.M)
    return int(match[1]) if match else 0


def victoria_writer(batches: int, lines: int, fields: int, work: Path) -> dict[str, Any]:
    vm = VictoriaMetrics(work / "vm")
    vm.start()
    try:
        pid = vm._process.pid  # type: ignore[union-attr]
        ts0 = int(time.time() * 1000) - 10 * batches
        bodies = [_body(b, lines, fields, ts0) for b in range(batches)]
        values = batches * lines * fields
        connection = http.client.HTTPConnection("127.0.0.1", vm.port, timeout=60)
        path = "/api/v2/write?org=o&bucket=b&precision=ms"
        load = MachineLoad()
        before = _inserted(vm)
        cpu0 = cpu_seconds(pid)
        started = time.perf_counter()
        for body in bodies:
            connection.request("POST", path, body=body)
            response = connection.getresponse()
            response.read()
            if response.status != 204:
                raise RuntimeError(f"write answered {response.status}")
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu0
        inserted = _inserted(vm) - before
        connection.close()
    finally:
        vm.stop()
    return {
        "limit": "victoria_metrics_writer",
        "values": values,
        "values_inserted": inserted,
        "lines_per_request": lines,
        "fields_per_line": fields,
        "request_bytes": len(bodies[0]),
        "seconds": round(seconds, 2),
        "values_per_s": round(values / seconds),
        "vm_cpu_s_per_1000": round(1000 * cpu / values, 5),
        "vm_values_per_cpu_s": round(values / cpu) if cpu else None,
        "machine_busy": round(load.busy(), 3),
    }


def _post(connection: http.client.HTTPConnection, body: bytes) -> None:
    connection.request("POST", "/api/v2/write?precision=ms", body=body)
    response = connection.getresponse()
    response.read()
    if response.status != 204:
        raise RuntimeError(f"write answered {response.status}")


def _load_writer(vm: VictoriaMetrics, rate: int, stop: threading.Event, sent: list[int]) -> None:
    """Writes `rate` values/s of known series, in 50,000-value POSTs (a collector's batch)."""
    lines, fields = 1282, 39
    template = "\n".join(
        f"load,site=s,agent=a,meter=m{line} "
        + ",".join(f"q{f}={line + f * 0.5}" for f in range(fields))
        + " @TS@"
        for line in range(lines)
    ).encode()
    connection = http.client.HTTPConnection("127.0.0.1", vm.port, timeout=60)
    period = lines * fields / rate
    due = time.monotonic()
    while not stop.is_set():
        _post(connection, template.replace(b"@TS@", str(int(time.time() * 1000)).encode()))
        sent[0] += lines * fields
        due += period
        stop.wait(max(0.0, due - time.monotonic()))
    connection.close()


def _until_seen(connection: http.client.HTTPConnection, match: str, ts: int) -> float:
    """Milliseconds from ts to the first export (every 10 ms) that shows the point."""
    query = urllib.parse.urlencode(
        {"match[]": match, "start": str(ts // 1000 - 1), "end": "4102444800"}
    )
    while True:
        connection.request("GET", f"/api/v1/export?{query}")
        text = connection.getresponse().read().decode()
        if any(ts in json.loads(line)["timestamps"] for line in text.splitlines() if line):
            return time.time() * 1000 - ts
        if time.time() * 1000 - ts > 30_000:
            return math.inf
        time.sleep(0.01)


def _probe(vm: VictoriaMetrics, kind: str, seconds: float, found: list[float]) -> None:
    """Probes one after another for `seconds`: to one known series, or each to a new one."""
    connection = http.client.HTTPConnection("127.0.0.1", vm.port, timeout=60)
    started = time.monotonic()
    probe = 0
    while time.monotonic() - started < seconds:
        probe += 1
        tags, label = ("kind=known", 'kind="known"')
        if kind == "new":
            tags, label = (f"kind=new,n={probe}", f'n="{probe}"')
        ts = int(time.time() * 1000)
        _post(connection, f"probe,{tags} value={probe} {ts}".encode())
        found.append(_until_seen(connection, f"probe_value{{{label}}}", ts))
        time.sleep(random.uniform(0.1, 0.6))  # not in step with VM's flush ticker
    connection.close()


def vm_visibility(rate: int, seconds: float, work: Path) -> dict[str, Any]:
    """VictoriaMetrics' own write -> queryable time, idle (rate 0) or under a load writer.

    A probe is one point stamped now and written alone (no force_flush), to a series VM
    already knows, and in a second thread each to a series new to it (a new label value,
    as every new meter or agent is); polled via /api/v1/export every 10 ms.
    """
    vm = VictoriaMetrics(work / f"vm-visibility-{rate}")
    vm.start()
    stop = threading.Event()
    sent = [0]
    try:
        vm.write_lines(f"probe,kind=known value=0 {int(time.time() * 1000)}")
        if rate:
            args = (vm, rate, stop, sent)
            threading.Thread(target=_load_writer, args=args, daemon=True).start()
        time.sleep(5)  # the known series and the load's series are searchable by now
        load = MachineLoad()
        cpu0 = cpu_seconds(vm._process.pid)  # type: ignore[union-attr]
        sent0, started = sent[0], time.monotonic()
        latencies: dict[str, list[float]] = {"known": [], "new": []}
        probers = [
            threading.Thread(target=_probe, args=(vm, kind, seconds, found))
            for kind, found in latencies.items()
        ]
        for prober in probers:
            prober.start()
        for prober in probers:
            prober.join()
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(vm._process.pid) - cpu0  # type: ignore[union-attr]
        result: dict[str, Any] = {
            "limit": "victoria_metrics_visibility",
            "load_rate_target": rate,
            "load_rate": round((sent[0] - sent0) / elapsed),
            "seconds": round(elapsed, 1),
            "vm_cores": round(cpu / elapsed, 2),
            "machine_busy": round(load.busy(), 3),
        }
        for kind, values in latencies.items():
            result[f"{kind}_probes"] = len(values)
            for q in (50, 90, 99):
                result[f"{kind}_ms_p{q}"] = round(percentile(values, q))
            result[f"{kind}_ms_max"] = round(max(values))
    finally:
        stop.set()
        vm.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--fields", type=int, default=39)
    parser.add_argument("--visibility-rates", default="0,100000,300000,500000")
    parser.add_argument("--visibility-seconds", type=float, default=40)
    parser.add_argument(
        "--only", choices=["mosquitto", "vm-writer", "vm-visibility"], help="one limit only"
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    for index in range(args.repeat):
        work = VAR / "limits" / f"{time.strftime('%Y%m%dT%H%M%S')}-{index}"
        work.mkdir(parents=True)
        limits: list[Callable[[], dict[str, Any]]] = []
        if args.only in (None, "mosquitto"):
            limits.append(partial(mosquitto_qos1, args.messages, work))
        if args.only in (None, "vm-writer"):
            limits.append(partial(victoria_writer, args.batches, args.lines, args.fields, work))
        if args.only in (None, "vm-visibility"):
            limits += [
                partial(vm_visibility, int(rate), args.visibility_seconds, work)
                for rate in args.visibility_rates.split(",")
            ]
        for limit in limits:
            result = limit()
            result["machine"] = machine()
            print(json.dumps(result), flush=True)
            if not args.no_save:
                save_result("limits", result)


if __name__ == "__main__":
    main()
