"""exil's Python API: what ``exil <overrides>`` does, from a notebook or a script.

    import exil

    cfg = exil.compose(["experiment=digits_al", "loop.rounds=3"])   # the config `exil ...` would run
    run_dir = exil.run(cfg)                                          # trains and asks; returns the run folder
    rows = exil.results(run_dir)                                     # one dict per round: round, n_labels, test/acc, ...
    exil.compare([run_dir, other_dir], "outputs/cmp")                # mean ± std over seeds, table + PNG

``compose`` takes the same overrides as the command line (``config_dir=`` adds your own config folder, as
``exil --config-dir``); ``run`` writes into ``run_dir`` (default: a fresh ``outputs/runs/<date>/<time>`` folder).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Iterable, Sequence

__version__ = "0.2.0"  # the one source of the version (pyproject.toml reads it; CHANGELOG.md says what changed)

__all__ = ["__version__", "compose", "run", "results", "compare"]


def compose(overrides: Sequence[str] = (), run_dir: str | Path | None = None, config_dir: str | Path | None = None):
    """The composed config of ``exil <overrides>`` (Hydra's runtime set as in a real run in ``run_dir``)."""
    from exil.common.engine import compose as _compose

    if run_dir is None:
        run_dir = Path("outputs") / "runs" / _dt.datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    return _compose(list(overrides), Path(run_dir).resolve(), config_dir=config_dir)


def run(cfg) -> Path:
    """Run a composed config to the end (or resume it, with ``loop.resume``); returns its run folder."""
    from exil.common.engine import run as _run

    return _run(cfg)


def results(run_dir: str | Path) -> list[dict]:
    """The run's per-round metrics from its journal: ``[{"round": 0, "n_labels": 20, "test/acc": ...}, ...]``."""
    from exil.common.report import run_rows

    return run_rows(run_dir)[1]


def compare(run_dirs: Iterable[str | Path], out_dir: str | Path, metric: str = "test/acc") -> Path:
    """``exil compare``: mean ± std over seeds per configuration; returns the comparison PNG."""
    from exil.common.report import compare_runs

    return compare_runs(list(run_dirs), out_dir, metric=metric)
