"""Physical limits on this machine, measured the way the GreenGauge benchmarks are.

    .venv/bin/python bench/limits.py [--repeat 3]

- mosquitto: QoS 1 messages per second over loopback, one publisher (bench/qos1_publisher.py:
  paho-mqtt, 20 in flight, waits for every PUBACK) and one subscriber (mosquitto_sub -q 1),
  100-byte payloads; wall rate, messages the subscriber got, and the broker's CPU seconds
  per 1000 messages.
- VictoriaMetrics: values (fields) per second from one Python writer POSTing large
  line-protocol batches to /api/v2/write over one keep-alive connection, the bodies
  made beforehand; the count is checked against VM's vm_rows_inserted_total. Also the
  store's own floor for "read to queryable": a point stamped now, written alone, polled
  with /api/v1/export until it shows (no force_flush).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import resource
import subprocess
import sys
import time
import urllib.parse
from contextlib import ExitStack
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
        latencies = _vm_latency(vm, connection, probes=20)
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
        "queryable_ms_p50": round(percentile(latencies, 50)),
        "queryable_ms_p99": round(percentile(latencies, 99)),
        "machine_busy": round(load.busy(), 3),
    }


def _vm_latency(vm: VictoriaMetrics, connection: http.client.HTTPConnection, probes: int) -> list:
    """Milliseconds from a point's own timestamp to the first export that shows it."""
    latencies = []
    for probe in range(probes):
        ts = int(time.time() * 1000)
        body = f"probe,p=p value={probe} {ts}\n".encode()
        connection.request("POST", "/api/v2/write?precision=ms", body=body)
        connection.getresponse().read()
        query = urllib.parse.urlencode(
            {"match[]": "probe_value", "start": str(ts // 1000 - 1), "end": "4102444800"}
        )
        while True:
            connection.request("GET", f"/api/v1/export?{query}")
            text = connection.getresponse().read().decode()
            seen = [t for line in text.splitlines() if line for t in json.loads(line)["timestamps"]]
            if ts in seen:
                latencies.append(time.time() * 1000 - ts)
                break
            if time.time() * 1000 - ts > 30_000:
                latencies.append(float("inf"))
                break
            time.sleep(0.01)
        time.sleep(0.2 + (probe % 7) * 0.09)  # not in step with VM's flush period
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--fields", type=int, default=39)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    for index in range(args.repeat):
        work = VAR / "limits" / f"{time.strftime('%Y%m%dT%H%M%S')}-{index}"
        work.mkdir(parents=True)
        with ExitStack():
            for result in (
                mosquitto_qos1(args.messages, work),
                victoria_writer(args.batches, args.lines, args.fields, work),
            ):
                result["machine"] = machine()
                print(json.dumps(result))
                if not args.no_save:
                    save_result("limits", result)


if __name__ == "__main__":
    main()
