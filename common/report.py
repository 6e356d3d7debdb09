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

from exil.common.journal import read_journal

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
    # a group whose choice differs (method=baseline,rrr,caipi) brings its whole config: when that is more than
    # a few keys, the choice in the label says it (a strategy's one setting, passes=10, is still shown)
    implied = defaultdict(list)
    for k in differing:
        if _implied_by_choice(k, flat):
            implied[k.split(".")[0]].append(k)
    hidden = {k for keys_ in implied.values() if len(keys_) > 3 for k in keys_}
    differing = [k for k in differing if k not in hidden]
    out = []
    for meta, f in zip(metas, flat):
        extra = " ".join(f"{k.split('.')[-1] if k.startswith('strategy.') else k}={f.get(k)}" for k in differing
                         if f.get(k) is not None)
        out.append(f"{run_label(meta)} {extra}".strip())
    return out


def _implied_by_choice(key: str, flat: list[dict]) -> bool:
    """``key`` lies in a config group (``method.module.l2_grads``) whose choice already tells the runs apart and
    never differs between runs with the same choice: ``method=rrr`` says it, the label need not."""
    group = key.split(".")[0]
    choice = f"choices.{group}"
    if not any(choice in f for f in flat) or len({f.get(choice) for f in flat}) < 2:
        return False
    values: dict[str, set[str]] = defaultdict(set)
    for f in flat:
        values[repr(f.get(choice))].add(repr(f.get(key)))
    return all(len(v) == 1 for v in values.values())


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


def find_runs(folders: Iterable[str | Path]) -> list[Path]:
    """The run folders (those holding a ``journal.sqlite``) at or under ``folders``, each once, sorted."""
    return sorted({j.parent for d in folders for j in Path(d).rglob("journal.sqlite")})


def wide_console() -> Console:
    """A console for tables and paths: the terminal's width on a terminal; piped into a file or a SLURM log (where
    rich would assume 80 columns and wrap labels and paths), as wide as the lines need."""
    import os

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=400)
    return console


def run_report(run_dir: str | Path, console: Console | None = None, loggers: Sequence = ()) -> Path:
    """Print the per-round table of one run, write ``results.csv`` and ``learning_curve.png``; return the PNG path."""
    run_dir = Path(run_dir)
    meta, rows = run_rows(run_dir)
    names = [k for k in MAIN_METRICS if rows and k in rows[0]] + sorted(
        {k for r in rows for k in r} - set(MAIN_METRICS) - {"round", "n_labels"})
    shown = _terminal_columns(names)
    table = Table(title=f"{run_label(meta)} · seed {meta.get('seed')} · {run_dir}")
    for col in ("round", "labels", *shown):
        table.add_column(col.removeprefix("test/"), justify="right")
    for r in rows:
        table.add_row(str(r["round"]), str(r["n_labels"]), *(_fmt(r.get(k)) for k in shown))
    console = console or wide_console()
    console.print(table)
    if len(shown) < len(names):
        console.print(f"  ({len(names) - len(shown)} more columns in {run_dir / 'results.csv'})", highlight=False,
                      soft_wrap=True)
    _write_csv(run_dir / "results.csv", rows, ["round", "n_labels", *names])
    _write_csv(run_dir / "queries.csv", run_queries(run_dir), ["round", "position", "item", "score", "answer"])
    png = learning_curve({run_label(meta): [rows]}, run_dir / "learning_curve.png",
                         title=f"{run_label(meta)} (seed {meta.get('seed')})")
    log_figure(loggers, png)
    return png


#: the columns a run's terminal table shows first (the rest go to results.csv when they would not fit)
TERMINAL_FIRST = ("test/acc", "test/macro_f1", "test/worst_group_acc", "test/wr_input_gradients", "test/wr_gradcam",
                  "test/wr_lime", "n_explanations")
MAX_TERMINAL_COLUMNS = 7


def _terminal_columns(names: list[str]) -> list[str]:
    """What fits a terminal table of 80 columns: every metric if few, else the field's main figures first."""
    if len(names) <= MAX_TERMINAL_COLUMNS:
        return names
    first = [k for k in TERMINAL_FIRST if k in names]
    return (first + [k for k in names if k not in first])[:MAX_TERMINAL_COLUMNS]


def compare_runs(run_dirs: Iterable[str | Path], out_dir: str | Path, metric: str = "test/acc",
                 console: Console | None = None, x: str | None = None, also: Sequence[str] = ()) -> Path:
    """Mean ± std of ``metric`` per label count for each run label; writes ``comparison.csv`` and ``comparison.png``.
    ``x``: the axis (:data:`X_AXES`; default: labels, or rounds for methods that ask no labels). ``also``: more
    metrics, each with its own table and ``comparison_<metric>.csv``, and a panel of the PNG beside ``metric``'s.
    Runs on data with a confounder also get ``explanations.png``: the same test items explained by the first run
    of each label (:mod:`exil.common.explain.sheet`)."""
    dirs = [Path(d) for d in run_dirs if (Path(d) / "journal.sqlite").exists()]
    runs = [(d, *run_rows(d)) for d in dirs]
    runs = [(d, meta, rows) for d, meta, rows in runs if rows]
    console = console or wide_console()
    runs, repeats = _distinct(runs)
    labels = comparison_labels([meta for _, meta, _ in runs])
    groups: dict[str, list[list[dict]]] = defaultdict(list)
    first: dict[str, tuple[int, Path]] = {}
    for label, (d, meta, rows) in zip(labels, runs):
        groups[label].append(rows)
        seed = int(meta.get("seed") or 0)
        if label not in first or seed < first[label][0]:
            first[label] = (seed, d)
    if not groups:
        from exil.common.errors import ExilError

        if dirs:
            raise ExilError(f"none of the {len(dirs)} run(s) found has an evaluated round yet (a run's first row comes "
                            f"when its round 0 is evaluated): compare again later ({', '.join(map(str, dirs[:3]))})")
        raise ExilError(f"no run folders (with a journal.sqlite) found to compare; give the folders of runs or of a "
                        f"sweep ({out_dir})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = x or x_axis(groups)
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; choose one of: {', '.join(X_AXES)}")
    metrics = [metric, *[m for m in also if m != metric]]
    names = sorted(groups)
    # at 80 columns full labels would be cut to "dataset.mi…": long ones become A, B, ... with a legend below
    short = sum(len(n) + 8 for n in names) + 8 > console.width
    heads = {n: (chr(ord("A") + i) if short and i < 26 else n) for i, n in enumerate(names)}
    for m in metrics:
        if not any(m in r for runs_ in groups.values() for rows in runs_ for r in rows):
            continue
        _comparison_table(groups, m, x, heads, out_dir / ("comparison.csv" if m == metric else
                                                           f"comparison_{m.replace('/', '_')}.csv"), console)
    if short:
        for label in names:
            console.print(f"  {heads[label]} = {label}", highlight=False, soft_wrap=True)
    if repeats:
        console.print(f"note: {repeats} run(s) repeat another run's config and seed exactly; each seed is counted "
                      "once", highlight=False)
    _explanation_sheet({label: d for label, (_, d) in sorted(first.items())}, out_dir / "explanations.png", console)
    return learning_curve(groups, out_dir / "comparison.png", metric=metric, title=f"{metric} vs {X_AXES[x]}", x=x,
                          also=[m for m in metrics[1:]])


def _comparison_table(groups: dict[str, list[list[dict]]], metric: str, x: str, heads: dict[str, str], path: Path,
                      console: Console) -> None:
    """One metric's mean ± std table (printed) and CSV."""
    summary = {label: _mean_std(runs, metric, x) for label, runs in sorted(groups.items())}
    axis = sorted({n for s in summary.values() for n in s})
    table = Table(title=f"{metric}: mean ± std over seeds · {path.parent}")
    table.add_column(X_AXES[x], justify="right")
    for label in summary:
        table.add_column(f"{heads[label]} (n={len(groups[label])})", justify="right", overflow="fold")
    csv_rows = []
    for n in axis:
        cells = []
        for label in summary:
            m = summary[label].get(n)
            cells.append("" if m is None else f"{m[0]:.4f}" if m[2] == 1 else f"{m[0]:.4f} ± {m[1]:.4f}")
            if m is not None:
                csv_rows.append({"label": label, x: n, "mean": m[0], "std": m[1], "runs": m[2]})
        table.add_row(str(n), *cells)
    console.print(table)
    _write_csv(path, csv_rows, ["label", x, "mean", "std", "runs"])


def _explanation_sheet(first_runs: dict[str, Path], path: Path, console: Console) -> None:
    """``explanations.png`` from each label's first run, where the runs saved example maps."""
    from exil.common.explain.sheet import explanation_sheet, last_examples

    rows = {label: last_examples(d) for label, d in first_runs.items()}
    rows = {label: p for label, p in rows.items() if p is not None}
    if rows:
        console.print(f"explanation sheet: {explanation_sheet(rows, path)}", highlight=False, soft_wrap=True)


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


def _distinct(runs: list[tuple[Path, dict, list[dict]]]) -> tuple[list[tuple[Path, dict, list[dict]]], int]:
    """Runs ``(folder, meta, rows)`` with distinct (config, seed): a run repeated with the same config and seed is
    the same sample of the seed distribution, not a new one (kept: the first found)."""
    import json

    seen, out = set(), []
    for run in runs:
        key = json.dumps(run[1].get("config", {}), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(run)
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
                   x: str | None = None, also: Sequence[str] = ()) -> Path:
    """Plot ``metric`` (and each of ``also``, a panel each) vs number of labels (or ``x``), one line per label
    (mean with a ±std band over runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = x or x_axis(groups)
    panels = [metric, *also]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 + 4.2 * (len(panels) - 1), 4), dpi=120, squeeze=False)
    for ax, m in zip(axes[0], panels):
        for label, runs in sorted(groups.items()):
            s = _mean_std(runs, m, x)
            if not s:
                continue
            n = np.array(sorted(s))
            mean = np.array([s[k][0] for k in n])
            sd = np.array([s[k][1] for k in n])
            ax.plot(n, mean, marker="o", ms=3, label=f"{label} (n={len(runs)})")
            if len(runs) > 1:
                ax.fill_between(n, mean - sd, mean + sd, alpha=0.2)
        ax.set_xlabel("round (this method asks no labels)" if x == "round" else X_AXES[x])
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    last = axes[0, -1]
    if len(groups) > 1:  # outside the axes, on the right: it never covers a curve, and is never clipped
        last.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        last.legend(fontsize=8)
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
