"""What a run prints is the run's: no warning of a library about a setting exil itself passes (W&B's
``anonymous``), none from matplotlib while plots are drawn."""

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
