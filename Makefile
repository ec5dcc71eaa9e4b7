# The two commands of the README: `make demo` and `make test`. Both set everything up first,
# into the virtual environment $(VENV), from the exact versions in requirements.lock.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Installed when the lock, the package metadata or the venv itself changes.
STAMP := $(VENV)/.musicbrain-installed

.PHONY: setup system-deps demo test test-ray test-gpu bench lock

system-deps:
	bash scripts/install-system-deps.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# --require-hashes: every wheel must be the one the lock names, byte for byte. basic-pitch
# (requirements-nodeps.lock, which says why) and the package itself go in afterwards without
# dependencies, so nothing outside the locks is resolved.
$(STAMP): requirements.lock requirements-nodeps.lock setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements-nodeps.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: system-deps $(STAMP)

demo: setup
	$(BIN)/musicbrain scan examples/catalog --report pdf -o scan-out

test: setup
	$(BIN)/python -m pytest -q

# The Ray engine's tests alone (they also run within `make test`).
test-ray: setup
	$(BIN)/python -m pytest -q -m ray

bench: setup
	for b in decode model explain data train scan report artifacts; do $(BIN)/python benchmarks/$$b.py || exit 1; done
	$(BIN)/python benchmarks/external.py ../shared/eval --max-per-source 60 --jobs 2

# Refresh the lock on purpose (never implicitly): exact versions and hashes for Linux x86-64,
# Python 3.11, resolved from setup.cfg with its dev and ray extras (so the tests of the Ray
# engine run wherever `make test` does).
lock:
	$(PYTHON) -m pip install -q uv
	$(PYTHON) -m uv pip compile setup.cfg --extra dev --extra ray --generate-hashes --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --no-header --annotation-style line \
	    -o requirements.lock
