# Two commands matter on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs the project into it first.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export ROUTIINE_HOME ?= $(CURDIR)/.routiine

.PHONY: demo test ui lint install clean browser

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@cp -n deploy/dagster-local.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true
	$(BIN)/routiine demo

ui: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@cp -n deploy/dagster-local.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# Debian's Chromium and ChromeDriver for the connect-page browser test; apt runs only when they are missing.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
		apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; fi

test: $(STAMP) browser
	@# Tests make their own Dagster instances and data folders, never the demo's.
	env -u DAGSTER_HOME -u ROUTIINE_HOME $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check routiine_pipeline tests bench
	$(BIN)/ruff format --check routiine_pipeline tests bench

clean:
	rm -rf $(VENV) .routiine .dagster_home
