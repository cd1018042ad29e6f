# Two entry points: `make run` (the service on a local Ray, local storage, port 6008) and
# `make test`. Both create .venv and install everything on first use.
# The first of these that is Python 3.11+ (the pinned numpy, scipy, PyAV and FastAPI need it;
# Ubuntu 22.04's python3 is 3.10); PYTHON=... picks one by hand.
PYTHON ?= $(shell for p in python3 python3.11 python3.12 python3.13; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A fresh local Ray 2.60 turns token auth on, which makes the `serve` CLI and the Ray dashboard
# answer 401 unless every client has the token; the embedded single-machine default turns it off.
export RAY_AUTH_MODE ?= disabled
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install run test bench-image clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { test -n "$(PYTHON)" || { echo 'Python 3.11+ is needed: none of python3, python3.11, python3.12, python3.13 is (set PYTHON=...)' >&2; exit 1; }; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps --no-build-isolation basicsr==1.4.2 realesrgan==0.3.0
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

run: $(STAMP)
	$(BIN)/python -m tmlsr_ray serve

test: $(STAMP)
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

bench-image: $(STAMP)
	$(BIN)/python bench/image.py

clean:
	rm -rf $(VENV) .pytest_cache
