#!/bin/sh
# Second half of the recorded runs (after fixes to the limits and collector benches).
set -x
PY=.venv/bin/python
$PY bench/limits.py --repeat 2
$PY bench/collector_bench.py --rates 50000,100000,200000,300000,500000,700000 --step 20
$PY bench/collector_bench.py --peer nodered --rates 100000,200000,300000,500000 --step 20
$PY bench/agent_bench.py --meters 500 --duration 60 --repeat 2
$PY bench/agent_bench.py --meters 500 --duration 30 --profile-agent
