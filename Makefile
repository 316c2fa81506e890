# Ops Copilot. Quick start: `make run` (app + sidecar, offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501
# Loopback only; serve a team through a TLS reverse proxy (README, "Serving a team").
ADDRESS ?= 127.0.0.1
SIDECAR_PORT ?= 8000
export HF_HUB_OFFLINE := 1

.PHONY: venv run index test test-e2e lint format bench bench-smoke sidecar clean

# The venv is rebuilt only when the requirements change.
$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: run make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || (echo "python venv failed: on Debian/Ubuntu run apt-get install python3-venv" && false)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

index: venv
	$(PY) -m copilot index

# The sidecar runs in the background and stops with the app (Ctrl-C).
run: index
	@echo "App: http://$(ADDRESS):$(PORT)   Sidecar: http://127.0.0.1:$(SIDECAR_PORT)/healthz"
	$(PY) -m copilot sidecar --host 127.0.0.1 --port $(SIDECAR_PORT) & \
	  SIDECAR=$$!; trap 'kill $$SIDECAR 2>/dev/null' EXIT INT TERM; \
	  $(PY) -m streamlit run streamlit_app.py --server.address $(ADDRESS) --server.port $(PORT) \
	    --server.headless true

sidecar: venv
	$(PY) -m copilot sidecar --host 127.0.0.1 --port $(SIDECAR_PORT)

# The PostgreSQL store tests start a throwaway cluster: Debian's postgresql (installed here if
# missing; CI=1 makes a missing server a failure instead of a skip).
test: venv
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) || (echo "install Debian's postgresql (as root: apt-get install postgresql)" && false)
	$(PY) -m pytest -m "not e2e" -q

# Browser journey: needs Debian's chromium (installed here if missing).
test-e2e: venv
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || (echo "install Debian's chromium (as root: apt-get install chromium)" && false)
	$(PY) -m pytest -m e2e -q

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy copilot pages streamlit_app.py

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The performance benchmarks, then the evaluation suite (governed vs baseline, offline unless
# PROVIDER says otherwise; SUITE=full for all tasks), then one summary table.
PROVIDER ?= stub
SUITE ?= quick
bench: venv
	$(PY) bench/run_all.py --provider $(PROVIDER) --suite $(SUITE)

# Every benchmark once at tiny sizes (each under a minute) and the evaluation suite on 3
# tasks in both configurations, so CI notices one that no longer runs.
bench-smoke: venv
	$(PY) bench/run_all.py --smoke --provider stub --out runtime/bench-smoke

clean:
	rm -rf runtime .pytest_cache .mypy_cache .ruff_cache
