# GreenGauge: `make demo` shows the demo plant live; `make test` runs the whole suite.
# Both set themselves up: a virtualenv in .venv (agent and collector: the `collector` and
# `dev` extras), and the servers from Debian packages.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_PACKAGES := mosquitto
TEST_PACKAGES := mosquitto mosquitto-clients victoria-metrics mbpoll socat chromium fonts-wqy-microhei prometheus

.PHONY: demo test lint unit servers-demo servers-test clean messages

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[collector,dev]"
	touch $@

servers-demo:
	@deploy/install-packages.sh $(DEMO_PACKAGES)

servers-test:
	@deploy/install-packages.sh $(TEST_PACKAGES)

demo: $(STAMP) servers-demo
	deploy/demo/run-demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP) servers-test lint
	$(VENV)/bin/pytest

# Message catalogs (README: "In Chinese or English"): extract the messages marked in the
# code, merge them into each language's .po; then translate the new, empty msgstr entries.
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg --no-location --sort-output \
		--project GreenGauge --copyright-holder GreenGauge -o $(VENV)/greengauge.pot .
	$(VENV)/bin/pybabel update -i $(VENV)/greengauge.pot -d greengauge/locale -D greengauge \
		--ignore-obsolete --no-fuzzy-matching -w 100

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (issue 8), by hand only, never in CI: see bench/README.md for the figures.
.PHONY: bench-setup bench-agent bench-limits bench-collector bench-peers bench-summary bench-footprint
bench-setup: $(STAMP) servers-test
	test -x bench/.venv/bin/py-spy || (python3 -m venv bench/.venv && bench/.venv/bin/pip install -r bench/requirements.txt)
	test -x bench/.venv-m4m/bin/modbus4mqtt || (python3 -m venv bench/.venv-m4m && bench/.venv-m4m/bin/pip install -r bench/requirements-modbus4mqtt.txt)
	cd bench/peers/nodered && npm ci --no-audit --no-fund
bench-agent: $(STAMP)
	$(PY) bench/agent_bench.py --meters 10,100,500 --duration 60 --repeat 2
bench-limits: $(STAMP)
	$(PY) bench/limits.py --repeat 2
bench-collector: $(STAMP)
	$(PY) bench/collector_bench.py --rates 50000,100000,200000,300000,500000,700000
	$(PY) bench/collector_bench.py --peer nodered --rates 100000,200000,300000,500000
bench-peers: $(STAMP)
	$(PY) bench/peer_agent_bench.py --peer modbus4mqtt --meters 10,100
	$(PY) bench/peer_agent_bench.py --peer nodered --meters 10,100
bench-summary: $(STAMP)
	$(PY) bench/summarize.py
bench-footprint: $(STAMP)
	$(PY) bench/install_footprint.py --repeat 7
