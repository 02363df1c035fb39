#!/usr/bin/env bash
# The demo plant on loopback: two meter simulators, mosquitto, the agent and the collector
# (embedded SQLite store) with its API and dashboard, and the live table in the foreground
# until Ctrl-C (`run-demo.sh --no-table`: just the dashboard).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.venv/bin
logs=var/demo/logs
dashboard=http://127.0.0.1:18080/   # api.listen in configs/demo/collector.yaml
table=--table
[ "${1:-}" = "--no-table" ] && table=
mkdir -p "$logs"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped; logs in $logs, readings in var/demo/readings.sqlite"
}
trap cleanup EXIT INT TERM

start() {  # start NAME COMMAND...: run in the background, output to its log file
  local name=$1; shift
  "$@" >"$logs/$name.log" 2>&1 &
  pids+=("$!")
}

wait_port() {  # wait_port PORT NAME: until something listens there (10 s at most)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: $2 did not start on port $1; see $logs/$2.log" >&2
  exit 1
}

# A month of history first (once), through the import path, from the simulators' own
# model: the report, the plots and the dashboard's trends have data at first run, and
# the live readings carry on from where it ends.
if [ ! -e var/demo/history.imported ]; then
  echo "demo: loading a month of simulated history (once; a minute or two; log: $logs/import.log)"
  "$bin/energy-agent" history --config configs/demo/agent.yaml --days 30 --step 300 \
    --output var/demo/history.csv
  "$bin/energy-collector" import --config configs/demo/collector.yaml --site demo-plant \
    --agent gw-01 var/demo/history.csv >"$logs/import.log" 2>&1
  touch var/demo/history.imported
fi

start mosquitto mosquitto -c configs/demo/mosquitto.conf
start sim-sdm630 "$bin/energy-agent" simulate --profile eastron_sdm630 --port 15020 --unit-ids 10,91
start sim-dtsu666 "$bin/energy-agent" simulate --profile chint_dtsu666 --port 15021 --unit-ids 3-5
start sim-counters "$bin/energy-agent" simulate --profile generic_production_counter --port 15022 --unit-ids 3-5
wait_port 18830 mosquitto
wait_port 15020 sim-sdm630
wait_port 15021 sim-dtsu666
wait_port 15022 sim-counters
start agent "$bin/energy-agent" run --config configs/demo/agent.yaml
echo "dashboard: $dashboard   (API: ${dashboard}openapi.json, metrics: ${dashboard}metrics;"
echo "           agent metrics: http://127.0.0.1:19108/metrics)"
[ -z "$table" ] && echo "Ctrl-C to stop"
"$bin/energy-collector" run --config configs/demo/collector.yaml $table 2>"$logs/collector.log"
