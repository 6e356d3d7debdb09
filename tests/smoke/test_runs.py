"""Tiny end-to-end runs through the real configs, in-process and as the `exil` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from exil.common.engine import run
from exil.common.journal import Journal, read_journal
from exil.common.run_folder import load_checkpoint
from tests.conftest import ROOT, compose

#: strategies that need their method's model (an explaining encoder-decoder) run in that method's smoke test
# strategies that need their method's model: tests/smoke/test_xal_run.py, tests/smoke/test_alice_run.py
METHOD_STRATEGIES = {"xal", "xal_explanation_only", "jsd_pairs", "random_pairs"}
STRATEGIES = sorted(p.stem for p in (ROOT / "conf" / "strategy").glob("*.yaml") if p.stem not in METHOD_STRATEGIES)


def queries(run_dir: Path) -> list[list[int]]:
    j = Journal(run_dir / "journal.sqlite")
    return [j.queries(r)[0] for r in range(3)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_runs_end_to_end(run_cfg, strategy):
    run_dir = run(run_cfg([f"strategy={strategy}", "loop.threads=1"]))
    s = read_journal(run_dir / "journal.sqlite")
    assert [m["n_labels"] for m in s["metrics"].values()] == [10, 15, 20]
    q = queries(run_dir)
    assert [len(x) for x in q] == [5, 5, 0] and len(set(q[0]) | set(q[1])) == 10
    assert (run_dir / "learning_curve.png").exists()
    assert (run_dir / "csv" / "metrics.csv").read_text().count("test/acc") == 1
    asked = (run_dir / "queries.csv").read_text().splitlines()
    assert len(asked) == 1 + 10 and asked[0] == "round,position,item,score,answer"


def test_same_seed_same_queries_other_seed_other_queries(tmp_path):
    def run_in(d: Path, seed: int) -> Path:
        return run(compose(["loop.rounds=2", "loop.query_size=5", "loop.initial_per_class=1", "trainer.max_epochs=2",
                            "strategy=bald", f"loop.seed={seed}", "loop.threads=1"], d))

    a, b, c = run_in(tmp_path / "a", 3), run_in(tmp_path / "b", 3), run_in(tmp_path / "c", 4)
    assert queries(a) == queries(b)
    assert queries(a) != queries(c)
    assert read_journal(a / "journal.sqlite")["metrics"] == read_journal(b / "journal.sqlite")["metrics"]


def test_active_learning_really_learns(run_cfg):
    """Entropy sampling on digits: accuracy climbs from the 20-label start and beats chance by far."""
    run_dir = run(run_cfg(["experiment=digits_al", "loop.rounds=4", "loop.query_size=20",
                           "loop.initial_per_class=2", "trainer.max_epochs=10"], tiny=False))
    accs = [m["test/acc"] for m in read_journal(run_dir / "journal.sqlite")["metrics"].values()]
    assert accs[-1] > 0.8 and accs[-1] > accs[0] + 0.05, accs


def test_budget_caps_oracle_labels(run_cfg):
    run_dir = run(run_cfg(["loop.rounds=5", "loop.query_size=4", "loop.budget=6", "loop.threads=1"]))
    j = Journal(run_dir / "journal.sqlite")
    assert sum(src == "oracle" for *_, src in j.labelled()) == 6
    assert [len(j.queries(r)[0]) for r in range(3)] == [4, 2, 0]


def test_pool_subsample_limits_candidates(run_cfg):
    """Every queried item lies in that round's seeded 50-item subsample of the unlabelled pool."""
    from exil.common.loop import seed_for

    run_dir = run(run_cfg(["loop.pool_subsample=50", "strategy=entropy", "loop.threads=1", "loop.seed=5"]))
    j = Journal(run_dir / "journal.sqlite")
    labelled = {r: [item for rr, item, _, _ in j.labelled() if rr <= r] for r in range(2)}
    pool = np.arange(1257)  # digits: 1,797 images, 30% held out for test
    for r in range(2):
        unlabelled = np.setdiff1d(pool, labelled[r])
        rng = np.random.default_rng(seed_for(5, r, "subsample"))
        subsample = set(rng.choice(unlabelled, size=50, replace=False).tolist())
        assert set(j.queries(r)[0]) <= subsample


def test_loggers_tensorboard_and_wandb_offline(run_cfg, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = run(run_cfg(["logger=many", "loop.threads=1"]))
    assert list((run_dir / "wandb").glob("offline-run-*"))
    assert (run_dir / "csv" / "metrics.csv").exists()
    # TensorBoard's HParams tab, read back with TensorBoard's own reader: the run's settings beside its metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    (events,) = (run_dir / "tensorboard").rglob("events.out.tfevents.*")
    acc = EventAccumulator(str(events), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    content = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw)
               for tag, raw in acc.PluginTagToContent("hparams").items()}
    experiment = next(c.experiment for c in content.values() if c.HasField("experiment"))
    session = next(c.session_start_info for c in content.values() if c.HasField("session_start_info"))
    assert {"hp/test/acc", "hp/final/test/acc_auc"} <= {m.name.tag for m in experiment.metric_infos}
    assert session.hparams["loop/seed"].number_value == 0 and session.hparams["strategy/_target_"].string_value
    last_acc = acc.Scalars("hp/test/acc")[-1].value
    from exil.common.journal import read_journal

    rounds = read_journal(run_dir / "journal.sqlite")["metrics"]
    assert abs(last_acc - rounds[max(rounds)]["test/acc"]) < 1e-6


def exil(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "exil.common.cli", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=600)


def test_a_person_labels_at_the_terminal(tmp_path):
    """The terminal oracle through the real command: a bad answer is re-asked, images are saved."""
    answers = "\n".join(["banana", "12"] + [str(i % 10) for i in range(16)]) + "\n"
    p = exil("oracle=terminal", "loop.rounds=2", "loop.query_size=3", "loop.initial_per_class=1",
             "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}", stdin=answers)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("✗") == 2 and "image:" in p.stdout
    assert len(list((tmp_path / "oracle").glob("*.png"))) == 16  # 10 initial labels, then 2 rounds × 3
    j = Journal(tmp_path / "journal.sqlite")
    assert [a["answer"] for a in j.answers()] == [i % 10 for i in range(16)]


@pytest.mark.slow  # CI: tests/smoke/test_research_workflow.py's W&B sweep checks the same folders and comparison
def test_multirun_gives_one_directory_per_job_and_a_comparison(tmp_path):
    p = exil("-m", "strategy=random,entropy", "loop.seed=1,2", "loop.rounds=1", "loop.query_size=5",
             "loop.initial_per_class=1", "trainer.max_epochs=1", "loop.threads=1", f"hydra.sweep.dir={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = sorted(d.name for d in tmp_path.iterdir() if (d / "journal.sqlite").exists())
    assert jobs == ["0", "1", "2", "3"]
    csv = (tmp_path / "comparison.csv").read_text()
    assert "baseline/entropy" in csv and "baseline/random" in csv
    assert (tmp_path / "comparison.png").exists()
    # the same comparison, by hand, over runs found under a folder
    p = exil("compare", str(tmp_path), "--out", str(tmp_path / "again"), "--metric", "test/macro_f1")
    assert p.returncode == 0, p.stderr[-3000:]
    again = (tmp_path / "again" / "comparison.csv").read_text().splitlines()
    assert again[0] == "label,n_labels,mean,std,runs" and len(again) == 1 + 2 * 2


@pytest.mark.slow  # CI fits across processes in tests/smoke/test_multi_process.py (launched, as on a cluster)
def test_ddp_sim_fits_on_two_cpu_processes(run_cfg, tmp_path):
    from torch.multiprocessing.spawn import ProcessExitedException

    try:
        run_dir = run(run_cfg(["trainer=ddp_sim", "loop.rounds=1"]))
    except ProcessExitedException as e:
        # a known teardown race of gloo's worker threads: a spawned worker that finished its fit sometimes aborts
        # at exit ("terminate called without an active exception", about 1 run in 8 on 2 cores). It is not the
        # loop's: the run is tried once more, in a fresh folder, and must then pass.
        if "SIGABRT" not in str(e):
            raise
        from tests.conftest import TINY, compose

        run_dir = run(compose([*TINY, "trainer=ddp_sim", "loop.rounds=1"], tmp_path / "again"))
    accs = [m["test/acc"] for m in read_journal(run_dir / "journal.sqlite")["metrics"].values()]
    assert len(accs) == 2 and all(np.isfinite(accs))
    # the weights trained in the spawned workers came back to the loop's process
    init = load_checkpoint(run_dir / "checkpoints" / "init.pt")["state_dict"]
    end = load_checkpoint(run_dir / "checkpoints" / "round_000_end.pt")["state_dict"]
    assert not torch.equal(init["head.weight"], end["head.weight"])
