"""CPU of the collector's per-message work that does not wait on anything: parse and
validate a readings message (`collector.validate.reading_batch`) and render it as line
protocol (`collector.stores.lineprotocol.batch_lines`), on collector_bench.py's feed.

    PYTHONPATH=<code> .venv/bin/python bench/parse_cpu.py --label <what>

CPU time of this process (time.process_time), best of --repeat rounds: on a machine
shared with other work, wall-clock throughput says more about the others than about the
code, and the best round is the one least disturbed. Run it for two versions of the code
(PYTHONPATH) one after the other, alternating, to compare them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from functools import partial

from collector_bench import METERS_PER_AGENT, QUANTITIES, Feed

from collector.stores.lineprotocol import batch_lines
from collector.validate import reading_batch


def best_us(work: Callable[[], object], count: int, repeat: int) -> float:
    """Best CPU microseconds per call of `work` over `repeat` rounds of `count` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(count):
            work()
        best = min(best, (time.process_time() - start) / count)
    return round(best * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    shapes = {"batched": (METERS_PER_AGENT, len(QUANTITIES)), "single": (1, 10)}
    for name, (meters, quantities) in shapes.items():
        feed = Feed("a-0", meters, quantities)
        payload = feed.message(time.time())
        count = max(20, 20000 // feed.values)
        batch = reading_batch(feed.topic, payload)
        parse = best_us(partial(reading_batch, feed.topic, payload), count, args.repeat)
        lines = best_us(partial(batch_lines, [batch]), count, args.repeat)
        row = {
            "label": args.label,
            "code": os.environ.get("PYTHONPATH", ""),
            "shape": name,
            "values_per_message": feed.values,
            "parse_validate_us": parse,
            "line_protocol_us": lines,
            "us_per_1000_values": round(1000 * (parse + lines) / feed.values, 1),
            "loadavg": os.getloadavg()[0],
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
