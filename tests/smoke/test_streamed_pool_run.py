"""A tiny run through the real configs on a converted pool (dataset=memmap / dataset=litdata): it labels
what it should, asks valid pool indices, and asks exactly what the same run on the source dataset asks
(the converted pool serves the same items in the same order)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from exil.common.data.convert import main as convert
from exil.common.engine import run
from exil.common.journal import Journal, read_journal
from tests.conftest import ROOT, TINY, compose

SEED = 3
POOL = 300
RUN = ["strategy=entropy", "loop.threads=1", f"loop.seed={SEED}"]


def queries(run_dir) -> list[list[int]]:
    j = Journal(run_dir / "journal.sqlite")
    return [j.queries(r)[0] for r in range(3)]


@pytest.mark.parametrize("fmt", ["memmap", "litdata"])
def test_a_run_on_the_converted_pool_asks_what_the_source_run_asks(tmp_path, fmt):
    out = tmp_path / "pool"
    convert(["digits", "--out", str(out), "--format", fmt, "--set", f"pool_size={POOL}", "--set", f"seed={SEED}"])
    streamed = run(compose([*TINY, *RUN, f"dataset={fmt}", f"dataset.root={out}"], tmp_path / "streamed"))
    s = read_journal(streamed / "journal.sqlite")
    assert [m["n_labels"] for m in s["metrics"].values()] == [10, 15, 20]
    q = queries(streamed)
    assert [len(x) for x in q] == [5, 5, 0] and len(set(q[0]) | set(q[1])) == 10
    labelled = [item for _, item, _, _ in Journal(streamed / "journal.sqlite").labelled()]
    assert len(labelled) == len(set(labelled)) == 20 and all(0 <= i < POOL for i in labelled)

    original = run(compose([*TINY, *RUN, "dataset=digits", f"dataset.pool_size={POOL}"], tmp_path / "original"))
    assert q == queries(original)
    assert s["metrics"] == read_journal(original / "journal.sqlite")["metrics"]


@pytest.mark.slow  # the command line around convert + run; CI runs both pool formats in process
def test_the_exil_command_converts_and_runs_a_memmap_pool(tmp_path):
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    out = tmp_path / "digits_memmap"

    def exil(*args):
        return subprocess.run([sys.executable, "-m", "exil.common.cli", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)

    p = exil("data", "convert", "digits", "--out", str(out), "--set", "pool_size=200")
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"dataset=memmap dataset.root={out}" in p.stdout
    p = exil("dataset=memmap", f"dataset.root={out}", "loop.rounds=1", "loop.query_size=5", "loop.initial_per_class=1",
             "trainer.max_epochs=1", "loop.threads=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(Journal(tmp_path / "run" / "journal.sqlite").queries(0)[0]) == 5
    p = exil("dataset=memmap", f"dataset.root={tmp_path / 'nothing'}", f"hydra.run.dir={tmp_path / 'run2'}")
    assert p.returncode == 2 and "exil data convert" in p.stderr, p.stderr[-3000:]
