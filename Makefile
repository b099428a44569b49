# seglake — the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= small

.PHONY: venv demo test bench lint dist clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/seglake demo generate --scale $(SCALE)
	$(BIN)/seglake ingest
	SEGLAKE__PRIVACY__DEMO_MODE=true $(BIN)/seglake refine
	SEGLAKE__PRIVACY__DEMO_MODE=true $(BIN)/seglake resolve
	$(BIN)/seglake features
	$(BIN)/seglake segment
	$(BIN)/seglake score
	$(BIN)/seglake publish

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/lakehouse_bench.py
	$(BIN)/python bench/demo_bench.py --scale medium
	$(BIN)/python bench/ingest_refine_bench.py --scale medium
	$(BIN)/python bench/identity_bench.py --scales small,medium
	$(BIN)/python bench/features_bench.py --scale medium
	$(BIN)/python bench/segments_bench.py --scale medium

lint: $(STAMP)
	$(BIN)/ruff check lib tests jobs bench

dist: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) build dist lakehouse reports demo bench/out
