"""Top functions of a py-spy `--format raw` (folded stacks) profile, by own and total time.

.venv/bin/python bench/profile_top.py bench/var/agent/.../agent.folded [--top 30]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Leaf frames that are a thread waiting, not working: py-spy's idle detection misses them
# (the event loop in epoll, idle executor workers, threads in Condition.wait).
_IDLE_LEAVES = (
    "EpollSelector.select (",
    "_worker (concurrent/futures/thread.py)",
    "wait (threading.py)",
    "select (selectors.py)",
)
_SITE = re.compile(r"^(?P<func>.*?) \((?P<file>[^:]*)(?::\d+)?\)$")


def _frame(text: str) -> str:
    """`func (path/to/module.py:12)` -> `func (module/short path)`, lines merged."""
    match = _SITE.match(text)
    if match is None:
        return text
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    # The project's own packages, from whichever checkout ran.
    for package in ("/agent/", "/collector/", "/greengauge/"):
        if package in path:
            path = package[1:] + path.split(package, 1)[1]
            break
    return f"{match['func']} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folded", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    by_area: Counter[str] = Counter()
    samples = 0
    for line in args.folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        if frames and frames[-1].startswith(_IDLE_LEAVES):
            continue
        # py-spy puts the thread name first; idle samples are excluded by default.
        samples += count
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
        leaf_area = "other"
        for name in reversed(frames):
            if "(agent/" in name or "(collector/" in name:
                leaf_area = "greengauge: " + name.split("(", 1)[1].split("/")[1].rstrip(")")
                break
            if "pymodbus" in name:
                leaf_area = "pymodbus"
                break
            if "aiomqtt" in name or "paho" in name:
                leaf_area = "mqtt (aiomqtt/paho)"
                break
            if "pydantic" in name:
                leaf_area = "pydantic"
                break
        by_area[leaf_area] += count
    print(f"busy samples (idle waits left out): {samples}\n")
    print("own time (leaf frame)")
    for name, count in own.most_common(args.top):
        print(f"{100 * count / samples:6.1f}%  {name}")
    print("\ntotal time (frame anywhere on the stack)")
    for name, count in total.most_common(args.top):
        print(f"{100 * count / samples:6.1f}%  {name}")
    print("\nby the nearest named area below the leaf")
    for name, count in by_area.most_common():
        print(f"{100 * count / samples:6.1f}%  {name}")


if __name__ == "__main__":
    main()
