"""Issue 13: how long recomputing a month of a plant takes (the accounting alone, no servers).

N electricity meters, a counter reading a minute each, for D days (default 200 meters, 30
days: 8.64 million readings). The accounting database is filled through the live path's
own function (`engine.account`, a day per meter per pass, readings in time order), then:

- `recompute`: `Accounting.recompute` over the whole period (every series walked again
  and every minute replaced), as `energy-collector recompute` does;
- `late`: a 15-minute backlog of every meter, from the middle of the period, delivered
  after everything else (the broker outage of the issue), through `Accounting.process`;
- `live`: 60 passes of the live path (`Accounting.process`), each one reading of every
  meter, in order, as a collector takes them: CPU microseconds per reading;
- `floor`: the same readings inserted into an empty SQLite table of the accounting's
  `reading` schema, one `executemany` in one transaction (no walk, no minutes): what
  writing the rows alone costs, the peer the recompute is compared with.

Figures: wall and CPU seconds (this process), readings per CPU second, the database's
size, peak RSS. Appended to bench/results/recompute.jsonl.

    .venv/bin/python bench/recompute_bench.py [--meters 200] [--days 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from common import VAR, MachineLoad, cpu_seconds, machine, memory_kib, save_result

from collector.accounting.core.counters import Sample
from collector.accounting.db import _SCHEMA, FILE
from collector.accounting.engine import Accounting
from collector.accounting.passes import account
from collector.plant import AccountingConfig
from greengauge.contract import MeterReading, Quantity, ReadingBatch

START = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # 1 Nov 00:00 in Shanghai
MINUTE = timedelta(minutes=1)
E = Quantity.ENERGY_ACTIVE_IMPORT


def config(meters: int) -> AccountingConfig:
    return AccountingConfig.model_validate(
        {
            "sites": [
                {
                    "id": "s1",
                    "grid_factor": {"series": "national_average", "year": 2023},
                    "meters": [
                        {"id": f"m{i:03d}", "carrier": "electricity"} for i in range(meters)
                    ],
                    "lines": [],
                }
            ]
        }
    )


def kw(meter: int, minute: int) -> float:
    """A load that moves with the minute and differs per meter (no two minutes alike)."""
    return 50.0 + meter + 40.0 * ((minute * 7 + meter * 13) % 29) / 29.0


def counter(meter: int, minutes: range, value: float) -> tuple[list[Sample], float]:
    out = []
    for i in minutes:
        out.append(Sample(START + i * MINUTE, value))
        value += kw(meter, i) / 60.0
    return out, value


def insert_floor(data: Any, meters: int, minutes: int) -> None:
    """meters x minutes rows into an empty table of the reading schema, one transaction."""
    path = data / "floor.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(next(x for x in _SCHEMA if "EXISTS reading (" in x))
    start = int(START.timestamp() * 1000)
    conn.execute("BEGIN")
    for m in range(meters):
        series = f"m{m:03d}"
        conn.executemany(
            "INSERT INTO reading VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ("s1", series, t, float(i), t, float(i), None, None)
                for i, t in enumerate(range(start, start + minutes * 60_000, 60_000))
            ),
        )
    conn.execute("COMMIT")
    conn.close()
    path.unlink()


def timed(work: Any) -> tuple[float, float]:
    pid = os.getpid()
    wall, cpu = time.monotonic(), cpu_seconds(pid)
    work()
    return time.monotonic() - wall, cpu_seconds(pid) - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    data = VAR / "recompute"
    shutil.rmtree(data, ignore_errors=True)
    acc = Accounting(config(args.meters), data)
    targets = acc.series("s1")
    day = 24 * 60
    load = MachineLoad()

    # A broker outage: 15 minutes of every meter held back, sent after the rest.
    outage = range((args.days // 2) * day + 600, (args.days // 2) * day + 615)
    held: dict[str, list[Sample]] = {}

    def fill() -> None:
        values = [0.0] * args.meters
        for d in range(args.days):
            for m, target in enumerate(targets):
                samples, values[m] = counter(m, range(d * day, (d + 1) * day), values[m])
                minute = {s.ts: i for i, s in enumerate(samples, d * day)}
                held.setdefault(target.series, []).extend(
                    s for s in samples if minute[s.ts] in outage
                )
                with acc.db.transaction() as conn:
                    account(conn, "s1", target, [s for s in samples if minute[s.ts] not in outage])

    fill_wall, fill_cpu = timed(fill)
    readings = args.meters * args.days * day - len(outage) * args.meters
    end = START + args.days * timedelta(days=1)
    recompute_wall, recompute_cpu = timed(lambda: acc.recompute("s1", START, end))
    rows = acc.db.query("SELECT count(*) FROM minute")[0][0]
    batches = [
        ReadingBatch(
            site="s1",
            agent="gw",
            seq=k,
            readings=[
                MeterReading(meter=series, ts=ss[k].ts, values={E: ss[k].value})
                for series, ss in held.items()
            ],
        )
        for k in range(len(outage))
    ]
    late_wall, late_cpu = timed(lambda: acc.process(batches))

    # the live path: a pass per minute after the month, one reading of every meter each
    values = [
        float(
            acc.db.query(
                "SELECT value FROM reading WHERE series = ? ORDER BY ts DESC LIMIT 1",
                (t.series,),
            )[0][0]
        )
        for t in targets
    ]
    passes = []
    for k in range(60):
        i = args.days * day + k
        readings_k = []
        for m, target in enumerate(targets):
            readings_k.append(
                MeterReading(meter=target.series, ts=START + i * MINUTE, values={E: values[m]})
            )
            values[m] += kw(m, i) / 60.0
        passes.append(ReadingBatch(site="s1", agent="gw", seq=1000 + k, readings=readings_k))

    def live() -> None:
        for batch in passes:
            acc.process([batch])

    live_wall, live_cpu = timed(live)

    floor_wall, floor_cpu = timed(lambda: insert_floor(data, args.meters, args.days * day))
    busy = load.busy()
    size = (data / FILE).stat().st_size + sum(
        p.stat().st_size for p in data.glob(f"{FILE}-*") if p.is_file()
    )
    acc.close()
    result = {
        **machine(),
        "meters": args.meters,
        "days": args.days,
        "readings": readings,
        "minute_rows": rows,
        "fill_wall_s": round(fill_wall, 1),
        "fill_cpu_s": round(fill_cpu, 1),
        "recompute_wall_s": round(recompute_wall, 1),
        "recompute_cpu_s": round(recompute_cpu, 1),
        "recompute_readings_per_cpu_s": round(readings / recompute_cpu),
        "late_backlog_readings": 15 * args.meters,
        "late_wall_s": round(late_wall, 2),
        "late_cpu_s": round(late_cpu, 2),
        "corrections": acc.corrections,
        "live_us_per_reading": round(live_cpu / (60 * args.meters) * 1e6, 1),
        "live_wall_s": round(live_wall, 2),
        "floor_insert_wall_s": round(floor_wall, 1),
        "floor_insert_cpu_s": round(floor_cpu, 1),
        "recompute_over_floor_cpu": round(recompute_cpu / floor_cpu, 2) if floor_cpu else None,
        "database_mib": round(size / 2**20, 1),
        "peak_rss_mib": round(memory_kib(os.getpid())["VmHWM"] / 1024, 1),
        "machine_busy": round(busy, 2),
    }
    print(result)
    save_result("recompute", result)


if __name__ == "__main__":
    main()
