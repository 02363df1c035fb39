"""Peers on the agent side, polling the same simulated plant as bench/agent_bench.py.

    .venv/bin/python bench/peer_agent_bench.py --peer modbus4mqtt --meters 10 --duration 60
    .venv/bin/python bench/peer_agent_bench.py --peer nodered --meters 10,100 --duration 60

Same simulators (bench/multisim.py, bench-only 45-quantity SDM630 profile, one Modbus TCP
port per meter), same own mosquitto, same window and /proc figures as the agent bench:
values/s at the broker, CPU seconds of the peer's processes per 1000 values, RSS.

- modbus4mqtt 0.7.1 (bench/.venv-m4m): one process per meter (it polls one device), a
  value per MQTT message. 0.7.1 has no float32 type, so it reads the float registers as
  uint32 (same requests, same bytes, an integer published); its reads are aligned groups
  of `scan_batching` registers, and with this register map only 80 fits (one request for
  registers 0-79: the 33 quantities there; the others sit in groups the device refuses).
  Favourable to the peer: 33 values per request against GreenGauge's 15.
- Node-RED 4.1.8 + node-red-contrib-modbus 5.23.3 (bench/peers/nodered, npm ci): per
  meter one modbus-client and three modbus-read nodes (the agent's three requests, every
  1 s), a function node decoding the floats into {quantity: value} and mqtt out, QoS 1,
  one message per request.
Tick jitter is not reported for peers: their messages carry no read time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from common import (
    BENCH,
    VAR,
    MachineLoad,
    Mosquitto,
    bin_path,
    child,
    machine,
    memory_kib,
    save_result,
    subscriber,
    tree_cpu,
    tree_pids,
    wait_port,
)

PROFILE = BENCH / "profiles" / "sdm630_full45.yaml"
M4M = BENCH / ".venv-m4m" / "bin" / "modbus4mqtt"
NODERED = BENCH / "peers" / "nodered"
BLOCKS = ((0, 80), (200, 26), (342, 16))


def _quantities() -> list[tuple[int, str]]:
    profile = yaml.safe_load(PROFILE.read_text())
    return [(r["address"], r["quantity"]) for r in profile["registers"]]


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values = 0
        self.messages = 0


def subscribe(port: int, topic: str, counts: Counts, json_values: bool) -> paho.Client:
    def on_message(payload: bytes) -> None:
        values = len(json.loads(payload)) if json_values else 1
        with counts.lock:
            counts.values += values
            counts.messages += 1

    return subscriber(port, topic, "bench-peer-sub", on_message)


def modbus4mqtt(
    stack: ExitStack, work: Path, n: int, first_port: int, mqtt_port: int
) -> list[subprocess.Popen[bytes]]:
    registers = [
        {
            "pub_topic": f"{quantity}",
            "address": address,
            "table": "input",
            "type": "uint32",
            "pub_only_on_change": False,
        }
        for address, quantity in _quantities()
        if address < 80
    ]
    processes = []
    for i in range(n):
        config = work / f"m4m-{i:03d}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "ip": "127.0.0.1",
                    "port": first_port + i,
                    "device_address": 1,
                    "update_rate": 1,
                    "scan_batching": 80,
                    "registers": registers,
                }
            )
        )
        processes.append(
            stack.enter_context(
                child(
                    [
                        str(M4M),
                        "--hostname",
                        "127.0.0.1",
                        "--port",
                        str(mqtt_port),
                        "--config",
                        str(config),
                        "--mqtt_topic_prefix",
                        f"m4m/m{i:03d}/",
                    ],
                    work / f"m4m-{i:03d}.log",
                )
            )
        )
    return processes


_DECODE = """
const fields = %s[msg.topic.split('/')[1]];
const buffer = msg.responseBuffer.buffer;
const out = {};
for (const [offset, name] of fields) out[name] = buffer.readFloatBE(2 * offset);
msg.topic = 'nodered/' + msg.topic.split('/')[0];
msg.payload = out;
return msg;
"""


def nodered(
    stack: ExitStack, work: Path, n: int, first_port: int, mqtt_port: int
) -> list[subprocess.Popen[bytes]]:
    quantities = _quantities()
    offsets = {
        str(start): [
            [address - start, q] for address, q in quantities if start <= address < start + count
        ]
        for start, count in BLOCKS
    }
    flows: list[dict[str, Any]] = [
        {"id": "tab", "type": "tab", "label": "bench"},
        {
            "id": "broker",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(mqtt_port),
            "clientid": "bench-nodered",
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
        },
        {
            "id": "decode",
            "type": "function",
            "z": "tab",
            "func": _DECODE % json.dumps(offsets),
            "outputs": 1,
            "wires": [["out"]],
        },
        {
            "id": "out",
            "type": "mqtt out",
            "z": "tab",
            "topic": "",
            "qos": "1",
            "retain": "false",
            "broker": "broker",
            "wires": [],
        },
    ]
    for i in range(n):
        flows.append(
            {
                "id": f"client{i}",
                "type": "modbus-client",
                "clienttype": "tcp",
                "bufferCommands": True,
                "stateLogEnabled": False,
                "queueLogEnabled": False,
                "failureLogEnabled": False,
                "tcpHost": "127.0.0.1",
                "tcpPort": str(first_port + i),
                "tcpType": "DEFAULT",
                "unit_id": "1",
                "commandDelay": "1",
                "clientTimeout": "1000",
                "reconnectOnTimeout": True,
                "reconnectTimeout": "2000",
                "parallelUnitIdsAllowed": True,
            }
        )
        for start, count in BLOCKS:
            flows.append(
                {
                    "id": f"read{i}-{start}",
                    "type": "modbus-read",
                    "z": "tab",
                    "topic": f"m{i:03d}/{start}",
                    "unitid": "1",
                    "dataType": "InputRegister",
                    "adr": str(start),
                    "quantity": str(count),
                    "rate": "1",
                    "rateUnit": "s",
                    "server": f"client{i}",
                    "wires": [["decode"], []],
                }
            )
    user_dir = work / "nodered"
    user_dir.mkdir()
    (user_dir / "flows.json").write_text(json.dumps(flows))
    (user_dir / "settings.js").write_text(
        "module.exports = {flowFile: 'flows.json', uiHost: '127.0.0.1', httpAdminRoot: false,"
        " httpNodeRoot: false, logging: {console: {level: 'warn'}}, "
        " contextStorage: {default: {module: 'memory'}}};\n"
    )
    node = stack.enter_context(
        child(
            [
                "node",
                str(NODERED / "node_modules" / "node-red" / "red.js"),
                "--userDir",
                str(user_dir),
                "--port",
                "0",
            ],
            work / "nodered.log",
            env={"NODE_ENV": "production", "HOME": str(user_dir)},
        )
    )
    return [node]


def run_once(args: argparse.Namespace, n: int) -> dict[str, Any]:
    work = VAR / "peers" / f"{args.peer}-n{n}-{time.strftime('%Y%m%dT%H%M%S')}"
    work.mkdir(parents=True)
    first_port = args.first_port
    counts = Counts()
    with ExitStack() as stack:
        broker = Mosquitto(work / "mosquitto", extra_config=["max_queued_messages 100000"])
        broker.start()
        stack.callback(broker.stop)
        sims = []
        per_sim = 100
        for start in range(0, n, per_sim):
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
                            str(min(per_sim, n - start)),
                        ],
                        work / f"sim-{start}.log",
                    )
                )
            )
        for port in range(first_port, first_port + n):
            # Five simulator processes starting at once on a loaded 2-core machine took
            # over a minute (2026-11-27).
            wait_port(port, 240)
        topic = "m4m/#" if args.peer == "modbus4mqtt" else "nodered/#"
        client = subscribe(broker.port, topic, counts, json_values=args.peer == "nodered")
        stack.callback(client.loop_stop)
        start_peer = modbus4mqtt if args.peer == "modbus4mqtt" else nodered
        peers = start_peer(stack, work, n, first_port, broker.port)
        time.sleep(args.warmup)
        dead = [p for p in peers if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{len(dead)} peer processes exited; logs in {work}")
        roots = [p.pid for p in peers]
        load = MachineLoad()
        cpu0 = sum(tree_cpu(pid) for pid in roots)
        with counts.lock:
            values0, messages0 = counts.values, counts.messages
        started = time.time()
        time.sleep(args.duration)
        seconds = time.time() - started
        cpu = sum(tree_cpu(pid) for pid in roots) - cpu0
        with counts.lock:
            values, messages = counts.values - values0, counts.messages - messages0
        busy = load.busy()
        rss = hwm = 0
        for pid in roots:
            for p in tree_pids(pid):
                memory = memory_kib(p)
                rss += memory.get("VmRSS", 0)
                hwm += memory.get("VmHWM", 0)
    quantities = _quantities()
    per_read = len(quantities if args.peer == "nodered" else [q for q in quantities if q[0] < 80])
    return {
        "bench": "peer_agent",
        "peer": args.peer,
        "machine": machine(),
        "machine_busy": round(busy, 3),
        "meters": n,
        "processes": len(peers),
        "seconds": round(seconds, 1),
        "values": values,
        "values_expected": round(n * per_read * seconds),
        "messages": messages,
        "values_per_s": round(values / seconds, 1),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000_values": round(1000 * cpu / max(values, 1), 4),
        "values_per_cpu_s": round(values / cpu) if cpu else None,
        "core_fraction": round(cpu / seconds, 3),
        "rss_total_mib": round(rss / 1024, 1),
        "rss_peak_sum_mib": round(hwm / 1024, 1),
        "workdir": str(work.relative_to(BENCH)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", choices=["modbus4mqtt", "nodered"], required=True)
    parser.add_argument("--meters", default="10")
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--first-port", type=int, default=31000)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("NODE_OPTIONS", "")
    for n in (int(x) for x in args.meters.split(",")):
        for _ in range(args.repeat):
            result = run_once(args, n)
            print(json.dumps(result, indent=1))
            if not args.no_save:
                save_result("peers_agent", result)


if __name__ == "__main__":
    main()
