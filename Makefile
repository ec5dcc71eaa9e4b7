# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3

.PHONY: setup system-deps demo test bench

system-deps:
	bash scripts/install-system-deps.sh

setup: system-deps
	$(PYTHON) -m pip install -q -e '.[dev]'

demo: setup
	musicbrain scan examples/catalog --report pdf -o scan-out

test: setup
	$(PYTHON) -m pytest -q

bench: setup
	for b in decode model explain data train scan; do $(PYTHON) benchmarks/$$b.py || exit 1; done
