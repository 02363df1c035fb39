"""Every figure in bench/results/*.jsonl side by side, with the ratios the issue asks for.

    .venv/bin/python bench/summarize.py [--since 2026-11-24]

Medians over the repeated runs; the spread (min..max) is printed beside each, so the
noise of a shared machine shows. Ratios: GreenGauge / peer and GreenGauge / limit.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from typing import Any

from common import RESULTS


def _load(name: str, since: str) -> list[dict[str, Any]]:
    path = RESULTS / f"{name}.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["machine"]["date"] >= since]


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:,.4g}"
    return f"{median:,.4g} ({min(values):,.4g}..{max(values):,.4g}, n={len(values)})"


def main() -> None:  # noqa: PLR0912, PLR0915
    parser = argparse.ArgumentParser()
    parser.add_argument("--since", default="")
    args = parser.parse_args()
    agent = _load("agent", args.since)
    peers = _load("peers_agent", args.since)
    limits = _load("limits", args.since)
    collector = _load("collector", args.since)

    print("## Agent (GreenGauge), per N meters, medians (min..max, runs)")
    by_n: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for row in agent:
        by_n[(row["meters"], row["per_bus"])].append(row)
    gg_per_cpu: dict[int, float] = {}
    keys = [
        ("values_per_s", "values/s"),
        ("values_expected", "expected values"),
        ("values", "values"),
        ("agent_values_per_cpu_s", "values per CPU s"),
        ("agent_cpu_s_per_1000_values", "CPU s / 1000 values"),
        ("agent_core_fraction", "cores used"),
        ("agent_rss_peak_mib", "peak RSS MiB"),
        ("jitter_ms_p50", "jitter p50 ms"),
        ("jitter_ms_p99", "jitter p99 ms"),
        ("jitter_ms_max", "jitter max ms"),
        ("read_to_broker_ms_p99", "read->broker p99 ms"),
        ("simulators_cpu_s", "simulators CPU s"),
        ("machine_busy", "machine busy"),
    ]
    for (n, per_bus), rows in sorted(by_n.items()):
        print(f"\nN={n} meters, {per_bus} per Modbus port, {rows[0]['seconds']} s windows")
        for key, label in keys:
            print(f"  {label:22} {_spread([r[key] for r in rows])}")
        if per_bus == 1:
            gg_per_cpu[n] = statistics.median(r["agent_values_per_cpu_s"] for r in rows)

    print("\n## Agent-side peers")
    by_peer: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in peers:
        by_peer[(row["peer"], row["meters"])].append(row)
    for (peer, n), rows in sorted(by_peer.items()):
        per_cpu = [r["values_per_cpu_s"] for r in rows if r["values_per_cpu_s"]]
        print(f"\n{peer}, N={n}")
        print(f"  values/s               {_spread([r['values_per_s'] for r in rows])}")
        print(f"  values per CPU s       {_spread(per_cpu)}")
        print(f"  RSS total MiB          {_spread([r['rss_total_mib'] for r in rows])}")
        print(f"  machine busy           {_spread([r['machine_busy'] for r in rows])}")
        if n in gg_per_cpu and per_cpu:
            ratio = gg_per_cpu[n] / statistics.median(per_cpu)
            print(f"  GreenGauge / {peer} (values per CPU s, N={n}): {ratio:.2f}x")

    print("\n## Physical limits")
    mosq = [r for r in limits if r["limit"] == "mosquitto_qos1"]
    vm = [r for r in limits if r["limit"] == "victoria_metrics_writer"]
    if mosq:
        print(f"mosquitto QoS 1 msg/s       {_spread([r['msgs_per_s'] for r in mosq])}")
        print(f"  broker msgs per CPU s     {_spread([r['broker_msgs_per_cpu_s'] for r in mosq])}")
    floor = [r for r in limits if r["limit"] == "pymodbus_async_client"]
    if floor:
        per_request = _spread([r["cpu_ms_per_request"] for r in floor])
        print(f"pymodbus async client CPU ms/request {per_request}")
        print(f"  values per CPU s (39 / 3 req) {_spread([r['values_per_cpu_s'] for r in floor])}")
    if vm:
        print(f"VictoriaMetrics values/s    {_spread([r['values_per_s'] for r in vm])}")
        print(f"  VM values per CPU s       {_spread([r['vm_values_per_cpu_s'] for r in vm])}")
        print(f"  VM own queryable p50 ms   {_spread([r['queryable_ms_p50'] for r in vm])}")
        print(f"  VM own queryable p99 ms   {_spread([r['queryable_ms_p99'] for r in vm])}")

    print("\n## Collector")
    best: dict[str, list[float]] = defaultdict(list)
    for run in collector:
        peer = run.get("peer", "greengauge")
        best[peer].append(run["highest_sustained_rate"])
        rate = run["highest_sustained_rate"]
        print(f"\n{peer} run {run['machine']['date']}: highest sustained {rate:,}")
        for step in run["steps"]:
            print(
                f"  {step['rate_target']:>8,}/s  published {step['publish_rate']:>8,}/s  "
                f"lost {step['values_lost']:>7,}  lag {step['lag_after_step_s']}s  "
                f"CPU s/1000 {step['collector_cpu_s_per_1000_values']}  "
                f"latency p50/p99 {step['latency_s_p50']}/{step['latency_s_p99']} s  "
                f"busy {step['machine_busy']}  {'OK' if step['sustained'] else 'FAIL'}"
            )

    print("\n## Ratios")
    if gg_per_cpu and mosq:
        top = max(gg_per_cpu)
        agent_rate = statistics.median(r["values_per_s"] for r in by_n[(top, 1)])
        m = statistics.median(r["msgs_per_s"] for r in mosq)
        print(
            f"agent values/s at N={top} / mosquitto QoS 1 msg/s: {agent_rate / m:.2f} "
            "(a value-per-message design is capped at 1.0)"
        )
    if gg_per_cpu and floor:
        ceiling = statistics.median(r["values_per_cpu_s"] for r in floor)
        for n, value in sorted(gg_per_cpu.items()):
            print(f"agent values per CPU s / pymodbus floor, N={n}: {value / ceiling:.2f}")
    gg = max(best.get("greengauge", []), default=None)
    red = max(best.get("nodered", []), default=None)
    if gg is not None and red:
        print(f"collector zero-loss rate GreenGauge / Node-RED: {gg / red:.2f}x")
    if gg is not None and vm:
        v = statistics.median(r["values_per_s"] for r in vm)
        print(f"collector zero-loss rate / VictoriaMetrics one-writer limit: {gg / v:.3f}")


if __name__ == "__main__":
    main()
