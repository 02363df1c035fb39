# GreenGauge: `make demo` shows the demo plant live; `make test` runs the whole suite.
# Both set themselves up: a virtualenv in .venv, and the servers from Debian packages.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_PACKAGES := mosquitto
TEST_PACKAGES := mosquitto mosquitto-clients victoria-metrics mbpoll socat chromium

.PHONY: demo test lint unit servers-demo servers-test clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
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

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
