# seglake — the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= small

.PHONY: venv browser demo test test-cluster bench lint dist clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[spark,tracking,dev]'
	@# byte-compiled on every core (pip compiles one file at a time); a file that does not
	@# compile is skipped, as pip skips it
	-$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	@touch $(STAMP)

venv: $(STAMP)

# every stage in one Spark application; the demo's public pseudonymisation key (demo mode).
# Then the marketing side: the largest rule segment's exported treatment group gets an offer,
# the world lives 28 more days, and its lift over the holdout is measured and reported.
DEMO_ENV = SEGLAKE__PRIVACY__DEMO_MODE=true
demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/seglake run --demo --scale $(SCALE)
	$(DEMO_ENV) $(BIN)/seglake demo campaign
	$(DEMO_ENV) $(BIN)/seglake run --from ingest --to resolve
	$(DEMO_ENV) $(BIN)/seglake measure
	$(DEMO_ENV) $(BIN)/seglake monitor
	$(DEMO_ENV) $(BIN)/seglake report

# the report test opens the report in headless Chromium: Debian's package, installed when missing
# (as root, or through sudo); Playwright's own browser download is not used
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "make: installing Chromium (Debian package) for the report's browser test"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -q >/dev/null || true; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q chromium >/dev/null; \
	  command -v chromium >/dev/null 2>&1 || { echo "make: no chromium: install it (apt-get install chromium)"; exit 1; }; }

test: $(STAMP) browser
	$(BIN)/python -m pytest

# a Spark standalone master and worker, the packed environment and the docs' spark-submit command
test-cluster: $(STAMP)
	$(BIN)/python -m pytest -m cluster -s tests/test_cluster.py

bench: $(STAMP)
	$(BIN)/python bench/demo_bench.py --scale medium --out bench/out/pipeline/medium
	$(BIN)/python bench/pipeline_bench.py --scales small,medium
	$(BIN)/python bench/lakehouse_bench.py
	$(BIN)/python bench/ingest_refine_bench.py --scale medium
	$(BIN)/python bench/identity_bench.py --scales small,medium
	$(BIN)/python bench/register_bench.py --persons 6000
	$(BIN)/python bench/incremental_bench.py --scale medium --days 60 --extra 1 --step 19
	$(BIN)/python bench/incremental_bench.py --scale medium --days 60 --extra 1 --step 19 \
	  --event-days 1 --out bench/out/incremental-1day
	$(BIN)/python bench/identity_map_bench.py --lakehouse bench/out/incremental/lakehouse
	$(BIN)/python bench/features_bench.py --scale medium
	$(BIN)/python bench/segments_bench.py --scale medium

lint: $(STAMP)
	$(BIN)/ruff check lib tests jobs bench notebooks

# the wheel, and the same package as a zip for spark-submit --py-files
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m pip wheel --quiet --no-deps -w dist .
	$(BIN)/python -c "import pathlib, zipfile; \
	  z = zipfile.ZipFile('dist/seglake.zip', 'w', zipfile.ZIP_DEFLATED); \
	  [z.write(p, p.relative_to('lib')) for p in sorted(pathlib.Path('lib/seglake').rglob('*')) \
	   if p.is_file() and '__pycache__' not in p.parts]; z.close()"

clean:
	rm -rf $(VENV) build dist lakehouse reports demo bench/out
