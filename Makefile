# Every target installs what it needs from nothing: a venv with torch==2.13.0 first
# (the CPU wheel on this machine; an unpinned torch would pull GBs of CUDA packages).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_ROOT ?= ../shared/data

.PHONY: setup demo test test-fast bench-speed bench-quality bench-bleu clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/textgan train configs/quickstart.yaml --force
	@echo "TensorBoard logs are in runs/quickstart: $(BIN)/tensorboard --logdir runs"

# One worker per core (at most 4), each test file whole on one worker so its shared fixtures run once;
# the 15 slowest tests are listed at the end (CI must stay under 15 minutes).
test: $(STAMP)
	TEXTGAN_DATA_ROOT=$(DATA_ROOT) $(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile --durations=15

# The quick inner loop: every test not marked slow (setup.cfg's `slow` marker).
test-fast: $(STAMP)
	TEXTGAN_DATA_ROOT=$(DATA_ROOT) $(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile -m "not slow"

bench-bleu: $(STAMP)
	$(BIN)/python benchmarks/bleu_speed.py --data-root $(DATA_ROOT)

bench-speed: $(STAMP)
	$(BIN)/python benchmarks/speed.py --data-root $(DATA_ROOT)
	$(BIN)/python benchmarks/mle_bound.py

bench-quality: $(STAMP)
	$(BIN)/python benchmarks/coco_reference.py --data-root $(DATA_ROOT)
	$(BIN)/python benchmarks/quality.py --data-root $(DATA_ROOT)

clean:
	rm -rf $(VENV) runs .pytest_cache
