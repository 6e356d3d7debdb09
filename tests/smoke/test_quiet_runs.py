"""What a run prints is the run's: no warning of a library about a setting exil itself passes (W&B's
``anonymous``), none from matplotlib while a comparison is drawn."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def exil(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    env.pop("WANDB_SILENT", None)  # the tests' conftest silences W&B: here its messages must be seen
    return subprocess.run([sys.executable, "-m", "exil.common.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_wandb_run_prints_no_anonymous_setting_warning(tmp_path):
    p = exil("logger=wandb", "loop.rounds=1", "loop.query_size=5", "loop.initial_per_class=1",
             "trainer.max_epochs=1", "loop.threads=1", f"hydra.run.dir={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "wandb: Tracking run with wandb" in p.stderr  # W&B's own lines are there (not silenced) ...
    assert "anonymous" not in p.stderr.lower() + p.stdout.lower(), p.stderr[-3000:]  # ... but not that one
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))


def rows(shift: float, rounds: int = 3) -> list[dict]:
    return [{"round": r, "n_labels": 10 * (r + 1), "test/acc": 0.5 + shift + 0.05 * r} for r in range(rounds)]


def test_a_comparison_plot_of_long_labels_and_an_empty_panel_warns_nothing(tmp_path):
    """The two matplotlib warnings ``exil compare`` printed: ``Tight layout not applied`` (labels of runs that
    differ in many keys, the legend beside the plot) and ``No artists with labels found to put in legend`` (a
    panel of a metric no run has, e.g. the sweep callback's ``also``); the legend is still in the picture."""
    import warnings

    from PIL import Image

    from exil.common.report import learning_curve

    long = {f"rrr/entropy dataset=decoy_digits loop.threads=1 method.hooks.wrong_reason=['input_gradients', 'lime'] "
            f"loop.query_size={q}": [rows(0.01 * q), rows(0.01 * q + 0.02)] for q in (5, 10, 20)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = learning_curve(long, tmp_path / "long.png", title="test/acc vs labels")
        learning_curve({"baseline/entropy": [rows(0)], "rrr/entropy": [rows(0.1)]}, tmp_path / "empty.png",
                       also=["test/worst_group_acc"])
    width, _ = Image.open(png).size
    assert width > 1.5 * 6 * 120  # the 6-inch plot at 120 dpi and, beside it, the legend of long labels


def test_runs_on_two_datasets_are_two_configurations_not_seeds_of_one():
    from exil.common.report import comparison_labels

    def meta(dataset: str, seed: int, k: int) -> dict:
        return {"seed": seed, "config": {"choices": {"method": "baseline", "strategy": "entropy", "dataset": dataset},
                                         "loop": {"seed": seed}, "dataset": {f"key{i}": k + i for i in range(5)}}}

    labels = comparison_labels([meta("digits", 0, 0), meta("digits", 1, 0), meta("decoy_digits", 0, 10)])
    assert labels == ["baseline/entropy dataset=digits"] * 2 + ["baseline/entropy dataset=decoy_digits"]
