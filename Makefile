# Two entry points: `make run` (the service on a local Ray, local storage, port 6008) and
# `make test`. Both create .venv and install everything on first use.
PYTHON ?= python3
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
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
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
