"""Nonsense is refused in one line (exit status 2) before any work: no journal is made, nothing trains."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from exil.common.cli import _guard
from exil.common.engine import run
from tests.conftest import ROOT, compose

BAD = {
    "loop.query_size=-5": "loop.query_size=-5: must be a whole number ≥ 0",
    "loop.query_size=0": "loop.query_size=0: method=baseline asks labels each round",
    "loop.budget=-3": "loop.budget=-3: must be a whole number ≥ 0 or null",
    "loop.rounds=-1": "loop.rounds=-1: must be a whole number ≥ 0",
    "dataset.pool_size=100000": "dataset.pool_size=100000, but DigitsDataModule's pool holds 1257 items",
    "dataset.pool_size=0": "dataset.pool_size must be a whole number ≥ 1, got 0",
    "loop.pool_subsample=0": "loop.pool_subsample=0: must be a whole number ≥ 1 or null",
    "loop.seed=abc": "loop.seed: Value 'abc' of type 'str' could not be converted to Integer",
    "+foo=1": "unknown top-level key foo: nothing reads it",
    "+strateg=x": "unknown top-level key strateg (did you mean strategy?)",
    "strategy=jsd_pairs": "strategy=jsd_pairs needs ALICE's morphing module (method=alice)",
    "method=xal": "method=xal needs a text dataset",
    "trainer=ddp_multi_cpu": "trainer.strategy=ddp (trainer=ddp_multi / ddp_multi_cpu) runs in processes a launcher "
                             "started: `torchrun --nproc-per-node=N",
    "loop.embeddings=bf16": "loop.embeddings='bf16': valid choices are auto, float32, float16, disk",
    # one validation pass over every group's values, before the initial set is asked (issue 24)
    "trainer.max_epochs=abc": "trainer.max_epochs=abc: must be a whole number or null",
    "dataset.test_size=1.5": "dataset.test_size=1.5: must be a fraction in (0, 1) or a whole number of items ≥ 1",
    "oracle.latency=-1": "oracle.latency=-1: must be seconds ≥ 0",
    "oracle.noise=abc": "oracle.noise=abc: must be a number",
    "method.module.optimizer.lr=-0.1": "method.module.optimizer.lr=-0.1: must be a learning rate > 0",
    "trainer.accelerator=gpu": "trainer.accelerator=gpu, but this machine has no GPU that PyTorch can use",
    "loop.device=cuda": "loop.device=cuda, but this machine has no GPU that PyTorch can use",
    "strategy=xal": "strategy=xal needs a model that explains its predictions (method=xal), and method=baseline "
                    "is Classifier; choices that work: method=xal",
}


@pytest.mark.parametrize("override", sorted(BAD))
def test_refused_before_any_work(tmp_path, capsys, override):
    run_dir = tmp_path / "run"
    code = _guard(run, compose([override, "loop.rounds=1" if "rounds" not in override else "loop.query_size=5"],
                               run_dir))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and err.startswith("error:") and BAD[override] in err, err
    assert not (run_dir / "journal.sqlite").exists()


def test_alice_with_an_item_strategy_names_the_pair_strategies(tmp_path, capsys):
    code = _guard(run, compose(["method=alice", "backbone=small_cnn", "strategy=entropy", "loop.query_size=0",
                                "loop.rounds=1", "loop.reset_each_round=false"],
                               tmp_path / "run"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "method=alice needs a pair strategy" in err, err
    assert "choices that work: strategy=jsd_pairs, strategy=random_pairs" in err
    assert "a dataset with part locations for its grounding" in err and "dataset=fashion_parts" in err
    assert not (tmp_path / "run" / "journal.sqlite").exists()


def test_a_method_that_changes_its_model_is_refused_a_reset_before_round_0(tmp_path, capsys):
    code = _guard(run, compose(["dataset=decoy_digits", "method=exbl", "backbone=small_cnn", "loop.query_size=0",
                                "loop.rounds=1"], tmp_path / "run"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "method=exbl changes its model between rounds" in err, err
    assert "loop.reset_each_round=false" in err and not (tmp_path / "run" / "journal.sqlite").exists()


def test_a_value_of_a_users_own_target_is_checked_against_its_signature(tmp_path, capsys):
    """The check reads any target's annotations, not a list of exil's keys: a Literal of Lightning's Trainer."""
    code = _guard(run, compose(["loop.rounds=1", "trainer.max_epochs=1", "+trainer.precision=13"], tmp_path / "run"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and err.startswith("error: trainer.precision=13: must be one of"), err
    assert not (tmp_path / "run" / "journal.sqlite").exists()


def test_the_command_line_exits_2_with_one_line(tmp_path):
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "exil.common.cli", "loop.rounds=-1", f"hydra.run.dir={tmp_path}/r"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert [ln for ln in p.stderr.splitlines() if ln.strip()] == ["error: loop.rounds=-1: must be a whole number ≥ 0"]


def test_a_run_folder_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "exil.common.cli", f"hydra.run.dir={tmp_path}/f/run"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert [ln for ln in p.stderr.splitlines() if ln.strip()] == [
        f"error: hydra.run.dir={tmp_path}/f/run is inside {tmp_path}/f, which is a file: give a folder (a new one is "
        "made)"]


def test_a_run_whose_pool_runs_out_says_it_stopped_early(tmp_path, capsys):
    run_dir = run(compose(["dataset.pool_size=40", "loop.rounds=10", "loop.query_size=10", "loop.initial_per_class=1",
                           "trainer.max_epochs=1", "logger=csv", "loop.threads=1"], tmp_path / "run"))
    out = " ".join(capsys.readouterr().out.split())
    assert "the run stopped after round 3 of 10: the pool has no unlabelled item left to ask" in out
    assert (run_dir / "journal.sqlite").exists()


def test_a_launched_process_with_a_one_process_trainer_is_refused(tmp_path, capsys, monkeypatch):
    """torchrun started this process as one of 2, but trainer=cpu would run a loop in each, on one run folder."""
    from lightning.fabric.plugins.environments import TorchElasticEnvironment

    monkeypatch.setattr(TorchElasticEnvironment, "detect", staticmethod(lambda: True))
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = _guard(run, compose(["loop.rounds=1"], tmp_path / "run"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "one of 2 that a launcher started, but trainer.strategy=auto" in err, err
    assert "use trainer=ddp_multi (GPUs) or trainer=ddp_multi_cpu" in err
    assert not (tmp_path / "run" / "journal.sqlite").exists()


def test_an_optuna_database_that_cannot_work_here_is_refused_in_one_line(tmp_path):
    """hydra-optuna-sweeper pins Optuna 2.10, whose database storage fails under SQLAlchemy 2 with a bare
    AssertionError mid-sweep: the command line says so before anything runs (where the pair would work, the
    setting goes through)."""
    import optuna
    import sqlalchemy

    from exil.common.cli import missing_plugin

    said = missing_plugin(["-m", "hparams_search=digits_optuna", f"hydra.sweeper.storage=sqlite:///{tmp_path}/s.db"])
    broken = int(sqlalchemy.__version__.split(".")[0]) >= 2 and int(optuna.__version__.split(".")[0]) < 3
    if broken:
        assert said is not None and "hydra.sweeper.storage=sqlite:///" in said and "sqlalchemy<2" in said
        with pytest.raises(AssertionError):  # what the user would otherwise get
            optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/direct.db")
    else:
        assert said is None


def test_a_text_dataset_with_an_image_model_is_refused_naming_what_reads_text(tmp_path, capsys):
    """dataset=rotten_tomatoes (token ids) with the default method and MLP used to fail mid-fit with "mat1 and mat2
    must have the same dtype"; it is refused before anything runs, naming the methods that read text."""
    from tests.text_fixtures import rotten_tomatoes, tokenizer_folder

    rotten_tomatoes(tmp_path / "data", n=40)
    cfg = compose(["dataset=rotten_tomatoes", f"paths.data_dir={tmp_path / 'data'}",
                   f"dataset.tokenizer=file:{tokenizer_folder(tmp_path)}", "loop.rounds=1"], tmp_path / "run")
    code = _guard(run, cfg)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "dataset=rotten_tomatoes needs a model that reads text" in err, err
    assert "method=text_baseline" in err and not (tmp_path / "run" / "journal.sqlite").exists()


def test_your_own_texts_with_the_default_model_are_refused_before_any_tokenizer_is_needed(tmp_path, capsys):
    """dataset=hf_text with the default method asked first to fetch MiniLM's tokenizer (its setup ran before the
    composition was checked); the refusal now comes first and names experiment=own_text."""
    code = _guard(run, compose(["dataset=hf_text", f"dataset.path={tmp_path / 'texts.csv'}", "loop.rounds=1"],
                               tmp_path / "run"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "dataset=hf_text needs a model that reads text (experiment=own_text" in err, err


def test_a_teacher_time_budget_stops_the_run_at_equal_human_cost(tmp_path, capsys):
    """loop.budget_seconds with the simulated teacher's cost model (oracle.cost): 10 initial labels at 6 s cost
    60 s, so 90 s afford 5 more labels (one round of 5), then the run stops, saying why; the seconds are in the
    journal and results.csv."""
    import csv
    import sqlite3

    d = tmp_path / "run"
    code = _guard(run, compose(["loop.rounds=4", "loop.query_size=5", "loop.initial_per_class=1",
                                "trainer.max_epochs=1", "loop.budget_seconds=90", "oracle.cost={label: 6}",
                                "loop.threads=1", "print_config=false"], d))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0, err
    db = sqlite3.connect(d / "journal.sqlite")
    spent, n = db.execute("SELECT SUM(seconds), COUNT(*) FROM answers").fetchone()
    db.close()
    assert (spent, n) == (90.0, 15)
    with open(d / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["teacher/seconds"]) for r in rows] == [60.0, 90.0]
    assert all(float(r["teacher/seconds_per_label"]) == 6.0 for r in rows)


def test_a_sweep_s_echo_of_its_overrides_repeats_no_credential(tmp_path):
    """Hydra's launcher logs every job's overrides to the console (a SLURM log, W&B's output.log): a password in a
    URL is redacted there as in the saved config. (The job itself then stops at a bad loop value, at once.)"""
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "exil.common.cli", "-m", "oracle=llm",
                        "oracle.client.base_url='http://bob:s3cret@127.0.0.1:9/v1?api_key=k3y'", "loop.rounds=-1",
                        f"hydra.sweep.dir={tmp_path}/sweep"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    out = p.stdout + p.stderr
    assert "#0 : oracle=llm" in out and "[redacted]" in out, out[-2000:]
    assert "s3cret" not in out and "k3y" not in out
    assert not [f for f in (tmp_path / "sweep").rglob("*") if f.is_file() and b"s3cret" in f.read_bytes()]
