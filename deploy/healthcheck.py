"""Container health check for the GreenGauge image (both CLIs); standard library only.

GREENGAUGE_HEALTH_URL   healthy when it answers 200 (the collector's /healthz)
GREENGAUGE_HEALTH_FILE  healthy when the file changed within GREENGAUGE_HEALTH_MAX_AGE
                        seconds (default 120) and, when it is a JSON object with
                        "healthy", that is true: the collector's data_dir/health.json
                        (collector/health.py: broker, store, disk), or the agent's
                        state_dir/stats.json (written while it runs)
neither                 healthy (the container's process is running)
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request


def main() -> int:
    url = os.environ.get("GREENGAUGE_HEALTH_URL")
    if url:
        try:
            with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - our URL
                return 0 if response.status == 200 else 1
        except OSError as exc:
            # Named, not shown: the URL may hold credentials.
            print(f"health: GREENGAUGE_HEALTH_URL: {exc}", file=sys.stderr)
            return 1
    path = os.environ.get("GREENGAUGE_HEALTH_FILE")
    if path:
        max_age = float(os.environ.get("GREENGAUGE_HEALTH_MAX_AGE", "120"))
        try:
            age = time.time() - os.stat(path).st_mtime  # noqa: PTH116 - stdlib only, tiny
        except OSError as exc:
            print(f"health: {path}: {exc.strerror}", file=sys.stderr)
            return 1
        if age > max_age:
            print(f"health: {path} not updated for {age:.0f} s", file=sys.stderr)
            return 1
        return _reported(path)
    return 0


def _reported(path: str) -> int:
    """1 when the file says it is unhealthy, printing why; 0 for any other content."""
    try:
        with open(path, encoding="utf-8") as file:  # noqa: PTH123 - stdlib only, tiny
            report = json.load(file)
    except (OSError, ValueError):
        return 0  # not a JSON report (the collector writes it atomically): its age said enough
    if isinstance(report, dict) and report.get("healthy") is False:
        problems = report.get("problems") or ["unhealthy"]
        print(f"health: {'; '.join(map(str, problems))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
