# The two commands of the README:
#   make course   set everything up, then run the whole course (tailrec run)
#   make test     set everything up, then lint and run every test, nbval included
# Both create .venv on first use. Set TAILREC_DATA_DIR to use a MovieLens copy
# you already have; otherwise it is downloaded into data/ once.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch 2.13.0 is installed first, explicitly, so that pip
# never resolves the bare name to a multi-gigabyte GPU build. Override it for
# a GPU machine, e.g. make course TORCH_SPEC="torch==2.13.0 --index-url ...".
TORCH_SPEC ?= torch==2.13.0
RUN_ARGS ?=
# e.g. make lab LAB_ARGS="--no-browser --ip=127.0.0.1" (add --allow-root when running as root)
LAB_ARGS ?=

.PHONY: setup course course-small test lint unit nbval lab clean gpu-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev,lab]"
	touch $@

course: setup
	$(BIN)/tailrec run $(RUN_ARGS)

course-small: setup
	$(BIN)/tailrec run --small $(RUN_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: setup
	$(BIN)/python -m pytest tests

# nbval re-executes the committed notebooks in full and compares the cells marked
# NBVAL_CHECK_OUTPUT. A fresh embedding cache makes the encoder see the same
# batches as the run that produced the committed outputs.
nbval: setup
	rm -rf notebooks/outputs
	TAILREC_CACHE_DIR=$$(mktemp -d) $(BIN)/python -m pytest --nbval-lax --nbval-current-env notebooks

test: lint unit nbval

lab: setup
	$(BIN)/jupyter lab notebooks $(LAB_ARGS)

clean:
	rm -rf $(VENV) runs notebooks/outputs .pytest_cache .ruff_cache

# The speed benchmark's GPU check: one command, a few minutes on one GPU.
# Needs a CUDA build of torch in .venv: make clean, then make gpu-check TORCH_SPEC="torch==2.13.0 --index-url ..."
gpu-check: setup
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no GPU visible to torch: run make clean, then make gpu-check TORCH_SPEC=\"torch==2.13.0 --index-url <CUDA wheel index>\"')"
	$(BIN)/python -m tailrec.bench speed --out bench/gpu --parts encoding scoring training scale
