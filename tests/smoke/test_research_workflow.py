"""The research workflow read back from what the loggers wrote: one W&B run per multirun job (named, grouped,
tagged, finished), per-round metrics on the label axis, per-epoch fit metrics, query tables, images; a
label-free method's rounds on their own steps; a comparison that counts each seed once and reads at 80 columns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.wandb_records import summary

TINY = ["loop.rounds=1", "loop.query_size=5", "loop.initial_per_class=1", "trainer.max_epochs=2", "loop.threads=1"]


def exil(*args: str, cwd: Path = ROOT, columns: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", PYTHONPATH=str(ROOT))
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "exil.common.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def tb_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (run_dir / "tensorboard").rglob("events.out.tfevents.*")
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_a_sweep_gives_one_wandb_run_per_job(tmp_path):
    p = exil("-m", "logger=many", "strategy=random,entropy", "dataset.min_epoch_size=16,32", "tags=[paper,cpu]",
             *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert p.returncode == 0, p.stderr[-3000:]
    files = sorted((tmp_path / "sweep").glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 4  # not one run reused by every job
    runs = [summary(f) for f in files]
    names = sorted(r["run"].display_name for r in runs)
    assert names == sorted(f"dataset.min_epoch_size={m},strategy={k}" for m in (16, 32) for k in ("entropy", "random")), \
        names
    for r in runs:
        run = r["run"]
        assert run.run_group.startswith("default/") and run.job_type == "baseline" and list(run.tags) == ["paper", "cpu"]
        assert r["config"]["dataset"]["min_epoch_size"] in (16, 32) and r["config"]["strategy"]["_target_"]
        rounds = [h for h in r["history"] if "test/acc" in h]
        assert [(h["round"], h["n_labels"]) for h in rounds] == [(0, 10), (1, 15)]
        assert all(h["n_questions"] == h["n_labels"] for h in rounds)
        epochs = [h for h in r["history"] if "fit/train/loss" in h]
        assert [h["fit/epoch"] for h in epochs] == [0, 1, 2, 3] and all(h["fit/lr"] > 0 for h in epochs)
        assert any("queries/nrows" in h and h["queries/nrows"] == 5 for h in r["history"])
        assert any("learning_curve/filenames" in h for h in r["history"])
        assert ("test/acc", "n_labels") in r["metrics"] and ("fit/*", "fit/epoch") in r["metrics"]
    # the same content in TensorBoard and the CSV
    job = tmp_path / "sweep" / "0"
    scalars = tb_scalars(job)
    assert [s for s, _ in scalars["test/acc"]] == [10, 15] and len(scalars["fit/train/loss"]) == 4
    assert "n_questions" in (job / "csv" / "metrics.csv").read_text().splitlines()[0]
    # one folder per job, and the sweep's comparison; then the same comparison by hand, over the runs found
    assert sorted(d.name for d in (tmp_path / "sweep").iterdir() if (d / "journal.sqlite").exists()) == ["0", "1", "2", "3"]
    csv = (tmp_path / "sweep" / "comparison.csv").read_text()
    assert "baseline/entropy" in csv and "baseline/random" in csv and (tmp_path / "sweep" / "comparison.png").exists()
    # (printed at 80 columns, as into a file or a SLURM log: every label stays whole)
    p = exil("compare", str(tmp_path / "sweep"), "--out", str(tmp_path / "again"), "--metric", "test/macro_f1",
             columns=80)
    assert p.returncode == 0, p.stderr[-3000:]
    again = (tmp_path / "again" / "comparison.csv").read_text().splitlines()
    assert again[0] == "label,n_labels,mean,std,runs" and len(again) == 1 + 4 * 2
    assert "A = baseline/" in p.stdout and "D = baseline/" in p.stdout and "…" not in p.stdout
    assert "dataset.min_epoch_size=32" in p.stdout

    # a job repeated with the same config and seed is not a new seed; at 80 columns nothing is cut
    shutil.copytree(job, tmp_path / "sweep" / "0again")
    p = exil("compare", str(tmp_path / "sweep"), "--out", str(tmp_path / "cmp"), columns=80)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "(n=2)" not in p.stdout and "repeat another run's config and seed" in p.stdout  # one seed each, still
    assert "…" not in p.stdout


@pytest.mark.slow  # CI: the W&B sweep's comparison is printed at 80 columns
def test_a_long_comparison_at_80_columns_keeps_every_label_whole(tmp_path):
    p = exil("-m", "strategy=random", "dataset.min_epoch_size=16,32", "dataset.batch_size=8,16", *TINY,
             f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert p.returncode == 0, p.stderr[-3000:]
    p = exil("compare", str(tmp_path / "sweep"), "--out", str(tmp_path / "cmp"), columns=80)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    assert "A = baseline/random" in out and "D = baseline/random" in out and "…" not in out
    assert "dataset.min_epoch_size=32" in out and "dataset.batch_size=16" in out


def test_a_label_free_method_logs_each_round_on_its_own_step(tmp_path):
    run_dir = tmp_path / "run"
    p = exil("experiment=exbl_decoy_fashion_mnist", "dataset=decoy_digits", "dataset.pool_size=300",
             "trainer.max_epochs=1", "loop.threads=1", "method.hooks.metric_items=50", "logger=tensorboard",
             f"hydra.run.dir={run_dir}")
    assert p.returncode == 0, p.stderr[-3000:]
    steps = [s for s, _ in tb_scalars(run_dir)["test/acc"]]
    assert len(steps) == 2 and steps[0] < steps[1]  # the questions asked, not the same 300 labels twice


@pytest.mark.slow  # CI: the resumed study's test runs a search end to end and checks Optuna's values
def test_a_three_trial_optuna_search_optimises_the_area_under_the_learning_curve(tmp_path):
    import yaml

    from exil.common.engine import optimized_value

    sweep = tmp_path / "search"
    p = exil("-m", "hparams_search=digits_optuna", "hydra.sweeper.n_trials=3", *TINY, f"hydra.sweep.dir={sweep}")
    assert p.returncode == 0, p.stderr[-3000:]
    trials = sorted(d for d in sweep.iterdir() if (d / "journal.sqlite").exists())
    assert len(trials) == 3
    values = [optimized_value(d, "test/acc_auc") for d in trials]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    # what each trial returned reached Optuna: its best value is the best trial's own area under the curve
    assert result["best_value"] == max(values)
    # (trainer.max_epochs is fixed by the command line here, which wins over the search space)
    assert set(result["best_params"]) == {"method.module.optimizer.lr", "strategy"}
    lrs = {o for d in trials for o in yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
           if o.startswith("method.module.optimizer.lr=")}
    assert len(lrs) == 3  # three different trials


def test_an_optuna_study_in_a_database_is_resumed_by_the_next_invocation_and_compared_ranked(tmp_path):
    """``hydra.sweeper.storage=sqlite:///...``: a second invocation with the same study runs only its own new
    trials (new parameters, not the first invocation's again), the study holds both invocations' trials, the same
    folder again is refused in one line, and ``exil compare`` over both folders ranks all four trials by the metric
    the search optimised, each labelled by what it varied, the best marked."""
    import optuna
    import yaml

    from exil.common.report import area_under_curve, run_rows

    db = f"sqlite:///{tmp_path / 'study.db'}"
    search = ["-m", "hparams_search=digits_optuna", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={db}",
              "hydra.sweeper.study_name=resumed", *TINY, "trainer.max_epochs=1"]
    for folder in ("first", "second"):
        p = exil(*search, f"hydra.sweep.dir={tmp_path / folder}")
        assert p.returncode == 0, p.stderr[-3000:]
    study = optuna.load_study(study_name="resumed", storage=db)
    assert [(t.number, t.state.name) for t in study.trials] == [(n, "COMPLETE") for n in range(4)]
    runs = [tmp_path / f / str(j) for f in ("first", "second") for j in (0, 1)]
    assert sorted(tmp_path.glob("*/*/journal.sqlite")) == [d / "journal.sqlite" for d in runs]  # 2 + 2, no more
    lrs = [next(float(o.split("=")[1]) for o in yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
                if o.startswith("method.module.optimizer.lr=")) for d in runs]
    assert lrs == [t.params["method.module.optimizer.lr"] for t in study.trials] and len(set(lrs)) == 4
    values = [area_under_curve(run_rows(d)[1], "test/acc") for d in runs]
    assert [t.value for t in study.trials] == pytest.approx(values)
    second = yaml.safe_load((tmp_path / "second" / "optimization_results.yaml").read_text())
    assert second["best_value"] == pytest.approx(max(values))  # the study's best, over both invocations

    p = exil(*search, f"hydra.sweep.dir={tmp_path / 'first'}")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr[-2000:]
    assert "already holds the runs of an earlier invocation" in p.stderr
    assert len(optuna.load_study(study_name="resumed", storage=db).trials) == 4  # refused before any trial

    p = exil("compare", str(tmp_path / "first"), str(tmp_path / "second"), "--out", str(tmp_path / "cmp"),
             columns=200)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "test/acc_auc, the metric the search optimised (maximize)" in p.stdout
    rows = [line for line in p.stdout.splitlines() if "lr=" in line]
    assert len(rows) == 4 and all("strategy=" in r for r in rows)
    best = runs[values.index(max(values))]
    assert "★" in rows[0] and f"{best.parent.name}/{best.name}" in rows[0]  # ranked: the best first, marked
    assert sum("★" in r for r in rows) == 1


def test_a_missing_launcher_plugin_names_the_extra(tmp_path):
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None:
        import pytest

        pytest.skip("the submitit launcher is installed here")
    p = exil("-m", "hydra/launcher=slurm", *TINY, f"hydra.sweep.dir={tmp_path}")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: hydra/launcher=slurm needs Hydra's slurm launcher plugin, which is not installed: "
        "pip install 'exil[launchers]'"]


def test_resume_refuses_overrides_that_change_the_run_and_keeps_its_config_file_true(tmp_path):
    import yaml

    run_dir = tmp_path / "run"
    p = exil(*TINY, "logger=csv", f"hydra.run.dir={run_dir}")
    assert p.returncode == 0, p.stderr[-3000:]
    before = (run_dir / ".hydra" / "config.yaml").read_text()
    p = exil(f"loop.resume={run_dir}", "loop.rounds=8", "strategy=random")
    assert p.returncode == 2 and "loop.rounds=8, strategy=random would change what it computes and are refused" \
        in " ".join(p.stderr.split()), p.stderr
    # a different logger is safe: applied, said, and the run's config file still says what the run used
    p = exil(f"loop.resume={run_dir}", "logger=tensorboard")
    assert p.returncode == 0 and "applied: logger=tensorboard" in p.stdout, p.stderr[-3000:]
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))  # the journal's history, replayed
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert cfg["loop"]["rounds"] == 1 and cfg["strategy"] == yaml.safe_load(before)["strategy"]
    assert yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) == [*TINY, "logger=csv"]


def test_debug_modes_and_the_printed_config(tmp_path, capsys):
    import csv

    from exil.common.engine import compose, run

    for mode in ("fdr", "limit", "profiler"):
        assert (run(compose([f"debug={mode}", "loop.threads=1", "logger=csv"], tmp_path / mode)) / "journal.sqlite").exists()
    out = capsys.readouterr().out
    assert "config" in out and "├── dataset" in out and "_target_: exil.common.data.digits.DigitsDataModule" in out
    run(compose(["debug=overfit", "loop.threads=1", "logger=csv", "print_config=false"], tmp_path / "overfit"))
    assert "├── dataset" not in capsys.readouterr().out
    with open(tmp_path / "overfit" / "csv" / "metrics.csv") as f:
        losses = [float(r["fit/train/loss"]) for r in csv.DictReader(f) if r.get("fit/train/loss")]
    assert len(losses) == 150 and losses[-1] < 0.5 * losses[0]  # the same few batches are learnt by heart


@pytest.mark.slow  # the basic launcher's sweep gives one W&B run per job in CI; this repeats it with joblib's reused workers
def test_the_joblib_launcher_also_gives_one_wandb_run_per_job(tmp_path):
    """Jobs run two at a time in reused worker processes: each still opens and finishes its own run."""
    p = exil("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "logger=wandb", "loop.seed=1,2,3,4", *TINY,
             f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert p.returncode == 0, p.stderr[-3000:]
    files = sorted((tmp_path / "sweep").glob("*/wandb/offline-run-*/run-*.wandb"))
    assert sorted(summary(f)["run"].display_name for f in files) == [f"loop.seed={s}" for s in (1, 2, 3, 4)]
