# The README's commands. Each one creates or refreshes .venv first (tools/setup_env.sh), so both work
# on a fresh clone and are safe to run twice.
PY := .venv/bin/python
export OMP_NUM_THREADS ?= 2

.PHONY: setup demo test test-slow test-cuda bench clean

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) -m omnisense.cli demo --output outputs/demo

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

test-cuda: setup
	$(PY) -m pytest -q -m cuda

clean:
	rm -rf outputs runs .pytest_cache
