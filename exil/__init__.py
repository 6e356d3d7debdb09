"""exil's Python API: what ``exil <overrides>`` does, from a notebook or a script.

    import exil

    cfg = exil.compose(["experiment=digits_al", "loop.rounds=3"])   # the config `exil ...` would run
    run_dir = exil.run(cfg)                                          # trains and asks; returns the run folder
    rows = exil.results(run_dir)                                     # one dict per round: round, n_labels, test/acc, ...
    cmp = exil.compare([run_dir, other_dir])                         # mean ± std over seeds, table + PNG
    cmp.rows, cmp.png, cmp.frame()                                   # the rows, the plot, a pandas DataFrame

``compose`` takes the same overrides as the command line (``config_dir=`` adds your own config folder, as
``exil --config-dir``); ``run`` writes into ``run_dir`` (default: a fresh ``outputs/runs/<date>/<time>`` folder).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from exil.common.report import Compared as Comparison

__version__ = "0.2.0"  # the one source of the version (pyproject.toml reads it; CHANGELOG.md says what changed)

__all__ = ["__version__", "compose", "run", "results", "compare", "Comparison"]


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


def __getattr__(name: str):
    """``exil.Comparison``: what :func:`compare` returns (:class:`exil.common.report.Compared`), imported when asked
    for (``import exil`` stays light: ``exil --version`` loads no torch)."""
    if name == "Comparison":
        from exil.common.report import Compared

        return Compared
    raise AttributeError(f"module 'exil' has no attribute {name!r}")


def compare(run_dirs: Iterable[str | Path], out_dir: str | Path | None = None, metric: str | None = None,
            x: str | None = None) -> "Comparison":
    """``exil compare``: mean ± std of ``metric`` over seeds for each configuration of the runs found under
    ``run_dirs`` (run folders or folders holding them, e.g. a sweep's). Writes ``comparison.csv`` and
    ``comparison.png`` into ``out_dir`` (default: the first folder given) and returns them with the rows.
    ``metric``: default the metric an Optuna search optimised, where the runs are a search's, else ``test/acc``."""
    import csv

    from exil.common.report import comparison, find_runs

    given = [Path(d) for d in ([run_dirs] if isinstance(run_dirs, (str, Path)) else run_dirs)]
    out = Path(out_dir) if out_dir is not None else given[0]
    done = comparison(find_runs(given), out, metric=metric, x=x)
    with open(done.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if done.x is not None:
            v = float(r[done.x])
            r[done.x] = int(v) if v.is_integer() else v  # labels, rounds; seconds of teacher time may be fractions
        r["runs"] = int(r["runs"])
        r["mean"], r["std"] = float(r["mean"]), float(r["std"])
        if "best" in r:
            r["best"] = r["best"] == "True"
    done.rows = rows
    return done
