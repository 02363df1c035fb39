#!/bin/sh
# Third batch of recorded runs: the fixed mosquitto limit, and the collectors' ceilings.
set -x
PY=.venv/bin/python
$PY bench/limits.py --repeat 3
$PY bench/collector_bench.py --peer nodered --rates 700000,900000 --step 20 --keep-going
$PY bench/collector_bench.py --rates 600000 --step 20
