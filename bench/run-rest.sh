#!/bin/sh
# The runs behind bench/README.md after the agent matrix, one after the other (never in
# parallel: they would measure each other). Run from the repository root.
set -x
PY=.venv/bin/python
$PY bench/agent_bench.py --meters 100 --duration 30 --profile-agent
$PY bench/limits.py --repeat 2
$PY bench/collector_bench.py --rates 50000,100000,200000,300000,500000 --step 20
$PY bench/collector_bench.py --peer nodered --rates 10000,25000,50000,100000 --step 20
$PY bench/peer_agent_bench.py --peer modbus4mqtt --meters 10,100 --duration 60
$PY bench/peer_agent_bench.py --peer nodered --meters 10,100 --duration 60
$PY bench/agent_bench.py --meters 100 --per-bus 100 --duration 60
