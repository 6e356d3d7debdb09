"""What a person sees at the end: a results table in the terminal, a CSV and a learning-curve PNG.

One run: :func:`run_report` reads the run's journal. Several runs (a ``-m`` sweep or
``exil compare DIR ...``): :func:`compare_runs` groups runs by their label (method and
strategy, e.g. ``baseline/entropy``) and reports mean ± std over seeds at each number
of labels.
"""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from common.journal import read_journal

MAIN_METRICS = ("test/acc", "test/macro_f1")


def run_label(meta: dict) -> str:
    """``method/strategy`` from the Hydra choices stored with a run (``baseline/entropy``)."""
    ch = meta.get("config", {}).get("choices", {})
    return f"{ch.get('method', '?')}/{ch.get('strategy', '?')}"


#: config keys that tell seeds apart (averaged over) or repeat what the label already says
_NOT_GROUPED = ("loop.seed", "dataset.seed", "oracle.seed", "choices.", "strategy._target_", "method.name",
                "logger.", "experiment_name")


def comparison_labels(metas: list[dict]) -> list[str]:
    """``method/strategy`` plus every config value that differs between runs (seeds aside), so that a
    sweep over e.g. ``loop.query_size=5,20`` is compared, not averaged as if it were seeds."""
    flat = [_flatten(m.get("config", {})) for m in metas]
    keys = sorted({k for f in flat for k in f})
    differing = [k for k in keys if not k.startswith(_NOT_GROUPED) and len({repr(f.get(k)) for f in flat}) > 1]
    out = []
    for meta, f in zip(metas, flat):
        extra = " ".join(f"{k.split('.')[-1] if k.startswith('strategy.') else k}={f.get(k)}" for k in differing
                         if f.get(k) is not None)
        out.append(f"{run_label(meta)} {extra}".strip())
    return out


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_rows(run_dir: str | Path) -> tuple[dict, list[dict]]:
    j = read_journal(Path(run_dir) / "journal.sqlite")
    rows = [{"round": r, **m} for r, m in sorted(j["metrics"].items())]
    return j["meta"], rows


def run_queries(run_dir: str | Path) -> list[dict]:
    """What was asked each round and what the teacher answered (label questions)."""
    db = sqlite3.connect(f"file:{Path(run_dir) / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT q.round, q.position, q.item, q.score, a.answer FROM queries q LEFT JOIN answers a "
            "ON a.round = q.round AND a.question = 'label' AND a.key = CAST(q.item AS TEXT) "
            "ORDER BY q.round, q.position").fetchall()
    finally:
        db.close()
    return [dict(zip(("round", "position", "item", "score", "answer"), r)) for r in rows]


def run_report(run_dir: str | Path, console: Console | None = None, loggers: Sequence = ()) -> Path:
    """Print the per-round table of one run, write ``results.csv`` and ``learning_curve.png``; return the PNG path."""
    run_dir = Path(run_dir)
    meta, rows = run_rows(run_dir)
    names = [k for k in MAIN_METRICS if rows and k in rows[0]] + sorted(
        {k for r in rows for k in r} - set(MAIN_METRICS) - {"round", "n_labels"})
    table = Table(title=f"{run_label(meta)} · seed {meta.get('seed')} · {run_dir}")
    for col in ("round", "labels", *names):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["round"]), str(r["n_labels"]), *(_fmt(r.get(k)) for k in names))
    (console or Console()).print(table)
    _write_csv(run_dir / "results.csv", rows, ["round", "n_labels", *names])
    _write_csv(run_dir / "queries.csv", run_queries(run_dir), ["round", "position", "item", "score", "answer"])
    png = learning_curve({run_label(meta): [rows]}, run_dir / "learning_curve.png",
                         title=f"{run_label(meta)} (seed {meta.get('seed')})")
    log_figure(loggers, png)
    return png


def compare_runs(run_dirs: Iterable[str | Path], out_dir: str | Path, metric: str = "test/acc",
                 console: Console | None = None, x: str | None = None) -> Path:
    """Mean ± std of ``metric`` per label count for each run label; writes ``comparison.csv`` and ``comparison.png``.
    ``x``: the axis (:data:`X_AXES`; default: labels, or rounds for methods that ask no labels)."""
    runs = [run_rows(d) for d in run_dirs if (Path(d) / "journal.sqlite").exists()]
    runs = [(meta, rows) for meta, rows in runs if rows]
    console = console or Console()
    runs, repeats = _distinct(runs)
    labels = comparison_labels([meta for meta, _ in runs])
    groups: dict[str, list[list[dict]]] = defaultdict(list)
    for label, (_, rows) in zip(labels, runs):
        groups[label].append(rows)
    if not groups:
        raise FileNotFoundError(f"no run journals under {out_dir}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = x or x_axis(groups)
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; choose one of: {', '.join(X_AXES)}")
    summary = {label: _mean_std(runs, metric, x) for label, runs in sorted(groups.items())}
    labels_axis = sorted({n for s in summary.values() for n in s})
    # at 80 columns full labels would be cut to "dataset.mi…": long ones become A, B, ... with a legend below
    names = sorted(groups)
    short = sum(len(n) + 8 for n in names) + 8 > console.width
    heads = {n: (chr(ord("A") + i) if short and i < 26 else n) for i, n in enumerate(names)}
    table = Table(title=f"{metric}: mean ± std over seeds · {out_dir}")
    table.add_column(X_AXES[x], justify="right")
    for label in names:
        table.add_column(f"{heads[label]} (n={len(groups[label])})", justify="right", overflow="fold")
    csv_rows = []
    for n in labels_axis:
        cells = []
        for label in summary:
            m = summary[label].get(n)
            cells.append("" if m is None else f"{m[0]:.4f} ± {m[1]:.4f}")
            if m is not None:
                csv_rows.append({"label": label, x: n, "mean": m[0], "std": m[1], "runs": m[2]})
        table.add_row(str(n), *cells)
    console.print(table)
    if short:
        for label in names:
            console.print(f"  {heads[label]} = {label}", highlight=False, soft_wrap=True)
    if repeats:
        console.print(f"note: {repeats} run(s) repeat another run's config and seed exactly; each seed is counted "
                      "once", highlight=False)
    _write_csv(out_dir / "comparison.csv", csv_rows, ["label", x, "mean", "std", "runs"])
    return learning_curve(groups, out_dir / "comparison.png", metric=metric, title=f"{metric} vs {X_AXES[x]}", x=x)


def area_under_curve(rows: list[dict], metric: str) -> float:
    """The area under ``metric``'s learning curve divided by the width of its x range (the mean height by the
    trapezoidal rule): one number that rewards learning early, in the metric's units. x is the label count,
    or the round for a method that asks no labels; a single round gives its own value."""
    x_key = x_axis({"run": [rows]})
    pts = sorted((float(r[x_key]), float(r[metric])) for r in rows if metric in r)
    if not pts:
        return float("nan")
    x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    if len(x) == 1 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def _distinct(runs: list[tuple[dict, list[dict]]]) -> tuple[list[tuple[dict, list[dict]]], int]:
    """Runs with distinct (config, seed): a run repeated with the same config and seed is the same sample of
    the seed distribution, not a new one (kept: the first found)."""
    import json

    seen, out = set(), []
    for meta, rows in runs:
        key = json.dumps(meta.get("config", {}), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append((meta, rows))
    return out, len(runs) - len(out)


#: the x-axes a comparison can be drawn on, and their names on a plot
X_AXES = {"n_labels": "labels", "round": "round", "n_explanations": "explanations given"}


def x_axis(groups: dict[str, list[list[dict]]]) -> str:
    """``n_labels``, unless no run's label count changes between rounds (eXBL, ALICE ask no labels): ``round``."""
    for runs in groups.values():
        for rows in runs:
            if len({r["n_labels"] for r in rows}) > 1:
                return "n_labels"
    return "round"



def learning_curve(groups: dict[str, list[list[dict]]], path: Path, metric: str = "test/acc", title: str = "",
                   x: str | None = None) -> Path:
    """Plot ``metric`` vs number of labels (or ``x``), one line per label (mean with a ±std band over runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = x or x_axis(groups)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, runs in sorted(groups.items()):
        s = _mean_std(runs, metric, x)
        if not s:
            continue
        n = np.array(sorted(s))
        m = np.array([s[k][0] for k in n])
        sd = np.array([s[k][1] for k in n])
        ax.plot(n, m, marker="o", ms=3, label=f"{label} (n={len(runs)})")
        if len(runs) > 1:
            ax.fill_between(n, m - sd, m + sd, alpha=0.2)
    ax.set_xlabel("round (this method asks no labels)" if x == "round" else X_AXES[x])
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(groups) > 1:  # outside the axes, on the right: it never covers a curve, and is never clipped
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def log_figure(loggers: Sequence, png: Path) -> None:
    """Send the learning curve to loggers that take images (W&B, TensorBoard)."""
    for lg in loggers:
        kind = type(lg).__name__
        if kind == "WandbLogger":
            lg.log_image(key="learning_curve", images=[str(png)])
        elif kind == "TensorBoardLogger":
            import matplotlib.image as mpimg

            lg.experiment.add_image("learning_curve", mpimg.imread(png)[..., :3], dataformats="HWC")


def _mean_std(runs: list[list[dict]], metric: str, x: str = "n_labels") -> dict[int, tuple[float, float, int]]:
    by_n: dict[int, list[float]] = defaultdict(list)
    for rows in runs:
        for r in rows:
            if metric in r and x in r:
                by_n[int(r[x])].append(float(r[metric]))
    return {n: (float(np.mean(v)), float(np.std(v)), len(v)) for n, v in by_n.items()}


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
