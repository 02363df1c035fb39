"""Agent benchmark: `energy-agent run` polling N simulated SDM630 meters at 1 s over loopback.

    .venv/bin/python bench/agent_bench.py --meters 10,100,500 --duration 60 --repeat 2

Per N it starts its own mosquitto, simulator processes (bench/multisim.py: the project's
simulator on many ports; --per-bus unit ids per port, so --per-bus 1 gives every meter
its own TCP connection and --per-bus 100 puts 100 meters behind one port, as
`energy-agent simulate --unit-ids 1-100` does), the agent, and a subscriber that takes
every reading batch from the broker. Over a window of whole seconds after a warm-up it
reports, from /proc of each process:

- values/s received at the broker (a "reading" in the issue's sense: one quantity of one
  meter at one time) and meter reads/s, against the N x 45 x seconds expected;
- the agent's CPU seconds per 1000 values and values per CPU second;
- the agent's peak RSS (VmHWM) and its RSS at the start and end of the window;
- tick jitter: each reading's `ts` (the time of its read, from the message at the
  broker) against the whole second it was scheduled for, p50/p99/max in ms;
- the simulators' and mosquitto's CPU separately (they must not be the bottleneck).

--profile-agent records the agent with py-spy (bench/.venv) for the window instead:
bench/var/.../agent.speedscope.json and a top-functions table (bench/profile_top.py).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
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
    bin_path,
    child,
    cpu_seconds,
    free_port,
    machine,
    memory_kib,
    percentile,
    save_result,
    subscriber,
    wait_port,
)

PROFILE = BENCH / "profiles" / "sdm630_full45.yaml"
QUANTITIES = len(yaml.safe_load(PROFILE.read_text())["registers"])


@dataclass
class Received:
    """What the subscriber took from the broker: (ts epoch s, values, arrival) per reading."""

    readings: list[tuple[float, int, float]] = field(default_factory=list)
    messages: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def subscribe(port: int, received: Received) -> paho.Client:
    def on_message(payload: bytes) -> None:
        arrived = time.time()
        batch = json.loads(payload)
        rows = [
            (
                datetime.fromisoformat(r["ts"]).timestamp(),
                len(r["values"]) + len(r.get("custom", ())),
                arrived,
            )
            for r in batch["readings"]
        ]
        with received.lock:
            received.messages += 1
            received.readings += rows

    return subscriber(port, "greengauge/v1/+/+/readings", f"bench-sub-{port}", on_message)


def agent_config(
    path: Path, n: int, per_bus: int, first_port: int, mqtt_port: int, event_loop: str
) -> None:
    meters = [
        {
            "id": f"m{i:03d}",
            "profile": str(PROFILE),
            "modbus": {
                "host": "127.0.0.1",
                "port": first_port + i // per_bus,
                "unit_id": i % per_bus + 1,
                "timeout": 1.0,
            },
            "interval": 1.0,
        }
        for i in range(n)
    ]
    config = {
        "site": "bench",
        "agent_id": "agent",
        "mqtt": {"url": f"mqtt://127.0.0.1:{mqtt_port}"},
        "state_dir": str(path.parent / "state"),
        "meters": meters,
        "event_loop": event_loop,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def run_once(args: argparse.Namespace, n: int) -> dict[str, Any]:  # noqa: PLR0915
    stamp = time.strftime("%Y%m%dT%H%M%S")
    work = VAR / "agent" / f"n{n}-b{args.per_bus}-{stamp}"
    work.mkdir(parents=True)
    ports = math.ceil(n / args.per_bus)
    ports_per_sim = max(1, args.meters_per_sim // args.per_bus)
    first_port = free_port() if args.first_port == 0 else args.first_port
    received = Received()
    with ExitStack() as stack:
        broker = Mosquitto(work / "mosquitto", extra_config=["max_queued_messages 100000"])
        broker.start()
        stack.callback(broker.stop)
        sims = []
        for start in range(0, ports, ports_per_sim):
            count = min(ports_per_sim, ports - start)
            sims.append(
                stack.enter_context(
                    child(
                        [
                            bin_path("python"),
                            str(BENCH / "multisim.py"),
                            "--profile",
                            str(PROFILE),
                            "--first-port",
                            str(first_port + start),
                            "--ports",
                            str(count),
                            "--unit-ids",
                            f"1-{args.per_bus}",
                        ],
                        work / f"sim-{start}.log",
                    )
                )
            )
        for port in range(first_port, first_port + ports):
            # Five simulator processes starting at once on a loaded 2-core machine took
            # over a minute (2026-11-27).
            wait_port(port, 240)
        client = subscribe(broker.port, received)
        stack.callback(client.loop_stop)
        stack.callback(client.disconnect)
        config = work / "agent.yaml"
        agent_config(config, n, args.per_bus, first_port, broker.port, args.event_loop)
        agent = stack.enter_context(
            child([bin_path("energy-agent"), "run", "--config", str(config)], work / "agent.log")
        )
        time.sleep(args.warmup)
        if agent.poll() is not None:
            raise RuntimeError(f"agent exited: {(work / 'agent.log').read_text()[-2000:]}")
        # The window: ticks S+1 .. S+D, CPU sampled 0.6 s after a whole second, by which
        # time a tick's reads are published (BATCH_LINGER is 0.1 s).
        now = time.time()
        first_tick = math.floor(now) + 2
        time.sleep(first_tick - 0.4 - now)
        pids = {
            "agent": [agent.pid],
            "simulators": [s.pid for s in sims],
            "mosquitto": [broker._process.pid] if broker._process else [],
        }
        load = MachineLoad()
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        rss_start = memory_kib(agent.pid)["VmRSS"]
        spy = None
        if args.profile_agent:
            spy = subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(agent.pid),
                    "--duration",
                    str(args.duration),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(work / "agent.folded"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(work / "py-spy.log").open("wb"),
            )
        rss_samples = []
        end = first_tick - 1 + args.duration + 0.6
        while time.time() < end:
            rss_samples.append(memory_kib(agent.pid)["VmRSS"])
            time.sleep(min(1.0, max(0.0, end - time.time())))
        cpu1 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        # One sample a second, kept for a look at the curve of a long run.
        (work / "rss-kib.txt").write_text("".join(f"{kib}\n" for kib in rss_samples))
        memory = memory_kib(agent.pid)
        busy = load.busy()
        if spy is not None:
            spy.wait(timeout=60)
        time.sleep(0.5)
        # How long a SIGTERM takes to end the agent is a figure too (grace is 3 s).
        stopping = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=60)
            stop_seconds: float | None = round(time.monotonic() - stopping, 2)
        except subprocess.TimeoutExpired:
            stop_seconds = None  # killed by child() on the way out
    with received.lock:
        rows = list(received.readings)
    window = [r for r in rows if first_tick - 0.5 <= r[0] < first_tick + args.duration - 0.5]
    offsets = [(ts - round(ts)) * 1000 for ts, _, _ in window]
    delivery = [(arrived - ts) * 1000 for ts, _, arrived in window]
    values = sum(v for _, v, _ in window)
    expected = n * QUANTITIES * args.duration
    agent_cpu = cpu1["agent"] - cpu0["agent"]
    result = {
        "bench": "agent",
        "machine": machine(),
        "machine_busy": round(busy, 3),
        "meters": n,
        "per_bus": args.per_bus,
        "event_loop": args.event_loop,
        "buses": ports,
        "simulator_processes": len(sims),
        "seconds": args.duration,
        "profiled": bool(args.profile_agent),
        "reads": len(window),
        "reads_expected": n * args.duration,
        "values": values,
        "values_expected": expected,
        "values_per_s": round(values / args.duration, 1),
        "agent_cpu_s": round(agent_cpu, 2),
        "agent_cpu_s_per_1000_values": round(1000 * agent_cpu / max(values, 1), 4),
        "agent_values_per_cpu_s": round(values / agent_cpu) if agent_cpu else None,
        "agent_core_fraction": round(agent_cpu / args.duration, 3),
        "simulators_cpu_s": round(cpu1["simulators"] - cpu0["simulators"], 2),
        "mosquitto_cpu_s": round(cpu1["mosquitto"] - cpu0["mosquitto"], 2),
        "agent_rss_peak_mib": round(memory["VmHWM"] / 1024, 1),
        "agent_rss_start_mib": round(rss_start / 1024, 1),
        "agent_rss_end_mib": round(memory["VmRSS"] / 1024, 1),
        "agent_rss_max_in_window_mib": round(max(rss_samples) / 1024, 1),
        # Flat or growing: the highest RSS of the window's first and last tenth.
        "agent_rss_max_first_tenth_mib": round(
            max(rss_samples[: len(rss_samples) // 10 + 1]) / 1024, 1
        ),
        "agent_rss_max_last_tenth_mib": round(
            max(rss_samples[-(len(rss_samples) // 10 + 1) :]) / 1024, 1
        ),
        "jitter_ms_p50": round(percentile(offsets, 50), 2),
        "jitter_ms_p99": round(percentile(offsets, 99), 2),
        "jitter_ms_max": round(max(offsets, default=math.nan), 2),
        "jitter_ms_min": round(min(offsets, default=math.nan), 2),
        "read_to_broker_ms_p50": round(percentile(delivery, 50), 1),
        "read_to_broker_ms_p99": round(percentile(delivery, 99), 1),
        "sigterm_to_exit_s": stop_seconds,
        "workdir": str(work.relative_to(BENCH)),
    }
    if args.profile_agent and (work / "agent.folded").exists():
        top = subprocess.run(
            [bin_path("python"), str(BENCH / "profile_top.py"), str(work / "agent.folded")],
            capture_output=True,
            text=True,
            check=False,
        )
        (work / "profile-top.txt").write_text(top.stdout)
        print(top.stdout)
    if not args.keep:
        shutil.rmtree(work / "mosquitto" / "data", ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", default="10,100,500", help="comma-separated N values")
    parser.add_argument("--per-bus", type=int, default=1, help="meters per Modbus TCP port")
    parser.add_argument("--meters-per-sim", type=int, default=100, help="per simulator process")
    parser.add_argument("--duration", type=int, default=60, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=12.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--first-port", type=int, default=0, help="0: a free one")
    parser.add_argument("--profile-agent", action="store_true", help="py-spy the agent")
    parser.add_argument("--keep", action="store_true", help="keep broker data")
    parser.add_argument("--no-save", action="store_true", help="do not append to bench/results")
    parser.add_argument("--label", default="", help="what code ran (e.g. a commit), saved")
    parser.add_argument("--event-loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.first_port == 0:
        args.first_port = 30000
    for n in (int(x) for x in args.meters.split(",")):
        for _ in range(args.repeat):
            result = run_once(args, n)
            if args.label:
                result["label"] = args.label
            print(json.dumps(result, indent=1))
            if not args.no_save and not args.profile_agent:
                save_result("agent", result)


if __name__ == "__main__":
    main()
