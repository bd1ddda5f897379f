# The two commands of the README's quick start live here, so that the README,
# CI and developers all run exactly the same thing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint typecheck contracts unit browser bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: install, then start the embedded local network of several organizations
run: $(STAMP)
	$(BIN)/datanet devnet

## test: install, then every static check and the whole test suite
test: $(STAMP) lint typecheck contracts unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) browser
	$(BIN)/pytest -q -p no:cacheprovider

## browser: Debian's chromium and chromium-driver for the dashboard's browser test
## (installed only when /usr/bin/chromedriver is missing and we are root)
browser:
	@if [ ! -x /usr/bin/chromedriver ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver \
		|| { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; }; \
	fi

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_verify.py

## fuzz: coverage-guided fuzzing of every decoder (atheris), FUZZ_INPUTS per target, sequentially
FUZZ_INPUTS ?= 1000000
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --inputs $(FUZZ_INPUTS) --nice 10 --results benchmarks/results/fuzz.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
