"""Run many exil configurations (in parallel processes) and summarise them as mean ± std tables.

Each run is ``exil.common.engine.run`` on the composed real config (exactly what ``exil <overrides>`` does)
in its own folder under ``out``; a finished run is not run again (its journal says so), so a
reproduction that was stopped goes on where it was.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

os.environ.setdefault("WANDB_MODE", "offline")


def arguments(description: str, seeds: int, extra: Callable[[argparse.ArgumentParser], None] | None = None
              ) -> argparse.Namespace:
    """The reproductions' common options (``extra`` adds a script's own)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default=None, help="where the runs go (default outputs/reproduce/<name>)")
    p.add_argument("--seeds", type=int, default=seeds)
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="runs in parallel")
    p.add_argument("--quick", action="store_true", help="a much smaller version, to check the pipeline")
    p.add_argument("--data-dir", default=None, help="paths.data_dir (default: the repository's data/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an exil override for every run, e.g. --set trainer=gpu (repeatable)")
    if extra is not None:
        extra(p)
    return p.parse_args()


def arm_options(arms: Sequence[str], table: str = "the table") -> Callable[[argparse.ArgumentParser], None]:
    """``--arms`` (a subset of ``arms``) and ``--table-only``: the ``extra`` of :func:`arguments` for a
    reproduction whose rows are arms."""
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--arms", nargs="*", choices=list(arms), default=None, help="only these arms")
        p.add_argument("--table-only", action="store_true", help=f"print {table} of the finished runs")
    return add


def finished(run_dir: Path) -> bool:
    """Whether a run of :func:`run_all` finished (its journal says so)."""
    from exil.common.journal import read_journal

    db = Path(run_dir) / "journal.sqlite"
    return db.exists() and bool(read_journal(db)["meta"].get("finished"))


def _run_one(args: tuple[list[str], str]) -> str:
    overrides, run_dir = args
    from exil.common.engine import compose, run

    path = Path(run_dir)
    db = path / "journal.sqlite"
    if finished(path):
        return run_dir
    import shutil

    shutil.rmtree(path, ignore_errors=True)  # an unfinished run from before: start it over
    import torch

    torch.set_num_threads(1)
    run(compose(overrides, path))
    from exil.common.journal import Journal

    j = Journal(db)
    j.set_meta("finished", True)
    j.close()
    return run_dir


def run_all(jobs: Sequence[tuple[str, list[str]]], out: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Run ``(name, overrides)`` jobs, ``args.jobs`` at a time, each with ``args.set`` appended (the
    command line's ``--set``, e.g. ``trainer=gpu``); returns {name: run dir}."""
    data_dir = Path(args.data_dir or "data").resolve()
    todo = [([*ov, f"paths.data_dir={data_dir}", "logger=csv", *args.set], str(out / name)) for name, ov in jobs]
    parallel = args.jobs
    if parallel <= 1:
        for t in todo:
            _run_one(t)
    else:
        with ProcessPoolExecutor(parallel) as pool:
            list(pool.map(_run_one, todo))
    return {name: out / name for name, _ in jobs}


def metrics(run_dir: Path, round: int | None = None) -> dict[str, float]:
    from exil.common.journal import read_journal

    m = read_journal(run_dir / "journal.sqlite")["metrics"]
    return m[max(m) if round is None else round]


def mean_std(values: Sequence[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def save_figure(fig, path: Path) -> None:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
