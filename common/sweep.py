"""Hydra callback: at the end of a ``-m`` sweep, one comparison table and plot over its jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback


class CompareOnMultirunEnd(Callback):
    """``metric`` is compared (``comparison.csv/png``; default: what an Optuna search optimised, else ``test/acc``);
    ``also`` adds tables and plot panels of more metrics."""

    def __init__(self, metric: str | None = None, also: list[str] | None = None):
        self.metric, self.also = metric, list(also or [])

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from exil.common.report import compare_runs, find_runs

        sweep_dir = Path(config.hydra.sweep.dir)
        runs = find_runs([sweep_dir])
        if runs:
            png = compare_runs(runs, sweep_dir, metric=self.metric, also=self.also)
            print(f"comparison plot: {png}")
