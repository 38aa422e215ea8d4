# One-stop entry points. Every target sets up its own virtual environment,
# so `make demo` and `make test` work on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU build of PyTorch (a local file on the project's machines); GPU users
# install their CUDA build of torch first (see README) and it is kept.
TORCH  ?= torch==2.13.0

.PHONY: setup test demo bench bench-deps bench-quick docs asan clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,data,docs]"
	touch $@

test: setup
	$(PY) -m pytest -q -ra tests

demo: setup
	$(PY) -m snntorch_sparse.demo

# SpikingJelly is a benchmark baseline only: its wheel pulls torchvision and a CUDA
# torch, so it is installed without dependencies plus the one its neuron module imports.
bench-deps: setup
	$(PY) -c "import spikingjelly.activation_based.neuron" 2>/dev/null || \
	  ( $(PY) -m pip install -q loguru && $(PY) -m pip install -q --no-deps "spikingjelly==2.0.0" )

bench: bench-deps
	$(PY) -m snntorch_sparse.bench

bench-quick: bench-deps
	$(PY) -m snntorch_sparse.bench --quick

# Executes the example notebooks in small mode, so every example page shows its outputs.
docs: setup
	SNNTORCH_SPARSE_DOCS_EXECUTE=force SNNTORCH_SPARSE_NB_SIZE=small OMP_NUM_THREADS=1 \
	  $(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

asan: setup
	bash tests/asan/run_asan.sh

clean:
	rm -rf $(VENV) build docs/_build *.egg-info
