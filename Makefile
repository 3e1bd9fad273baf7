# Two commands do everything: `make demo` and `make test`. Each sets up .venv on first use (idempotent).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dynamictrl-installed

.PHONY: demo test lint setup app chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is the CPU wheel on this project's CPU machines and the normal CUDA build elsewhere.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/infer.py --demo

# The web app (scripts/app.py) on http://127.0.0.1:7860 with the embedded model; ARGS="--model DIR ..." for others.
app: $(STAMP)
	$(PY) scripts/app.py $(ARGS)

# tests/test_app_browser.py drives Debian's chromium (Playwright cannot download its own here): installed when
# missing and we are root; otherwise that test skips and says why.
CHROMIUM_INSTALL := export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing Debian's chromium for tests/test_app_browser.py"; $(CHROMIUM_INSTALL) || echo "chromium could not be installed: tests/test_app_browser.py will skip"; fi

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: $(STAMP) chromium
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q
