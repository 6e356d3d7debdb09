"""What a person sees at the end: a results table in the terminal, a CSV and a learning-curve PNG.

One run: :func:`run_report` reads the run's journal. Several runs (a ``-m`` sweep or
``exil compare DIR ...``): :func:`compare_runs` groups runs by their label (method and
strategy, e.g. ``baseline/entropy``, and every config value that differs) and reports mean ± std over seeds at
each number of labels. Runs of an Optuna search (:func:`optuna_search`) are compared by the metric it optimised,
labelled by the parameters it varied, and ranked, the best marked.
"""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from exil.common.journal import read_journal

MAIN_METRICS = ("test/acc", "test/macro_f1")


def run_label(meta: dict) -> str:
    """``method/strategy`` from the Hydra choices stored with a run (``baseline/entropy``)."""
    ch = meta.get("config", {}).get("choices", {})
    return f"{ch.get('method', '?')}/{ch.get('strategy', '?')}"


#: config keys that tell seeds apart (averaged over)
_SEEDS = ("loop.seed", "dataset.seed", "oracle.seed")
#: config keys that tell seeds apart, repeat what the label already says, or name a run without changing it
#: (``tags``: runs tagged differently are the same configuration)
_NOT_GROUPED = (*_SEEDS, "choices.", "strategy._target_", "method.name", "logger.", "experiment_name", "tags")


def comparison_labels(metas: list[dict], searched: Sequence[str] = ()) -> list[str]:
    """``method/strategy`` plus every config value that differs between runs (seeds and tags aside), so that a
    sweep over e.g. ``loop.query_size=5,20`` is compared, not averaged as if it were seeds. ``searched``: the keys
    an Optuna search varied (``method.module.optimizer.lr``, ``strategy``): each run is labelled by all of them,
    short (``lr=0.00138 strategy=entropy``), before any other value that differs."""
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
    if searched:
        return _search_labels(metas, flat, [p for p in searched if not p.startswith(_SEEDS)], differing)
    # ... and says it in the label (dataset=decoy_digits), unless run_label does (method/strategy): runs on two
    # datasets are never averaged as seeds of one configuration
    said = [f"choices.{g}" for g, keys_ in implied.items() if len(keys_) > 3 and g not in ("method", "strategy")]
    out = []
    for meta, f in zip(metas, flat):
        extra = " ".join(f"{_label_key(k)}={f.get(k)}" for k in (*said, *differing) if f.get(k) is not None)
        out.append(f"{run_label(meta)} {extra}".strip())
    return out


def _label_key(key: str) -> str:
    """How a differing key reads in a label: a group's choice by the group (``dataset``), a strategy's setting by
    its own name (``passes``), anything else in full."""
    if key.startswith("choices."):
        return key.removeprefix("choices.")
    return key.split(".")[-1] if key.startswith("strategy.") else key


def _search_labels(metas: list[dict], flat: list[dict], searched: list[str], differing: list[str]) -> list[str]:
    """Labels of an Optuna search's trials: the method (and strategy, unless searched), then every searched key
    by its shortest unambiguous name and its value to 3 significant digits (more where two trials would read
    alike), then any other value that differs."""
    # a searched config group (strategy) is its choice; its keys (strategy._target_) are then said by it
    where = {p: p if any(p in f for f in flat) else f"choices.{p}" for p in searched}
    groups = tuple(f"{p}." for p in searched if where[p].startswith("choices."))
    rest = [k for k in differing if k not in where.values() and not (groups and k.startswith(groups))]
    names = _short_names(searched)
    configs = [repr([f.get(k) for k in (*where.values(), *rest)]) for f in flat]
    for digits in (3, 4, 6, 10, 17):
        out = []
        for meta, f in zip(metas, flat):
            ch = meta.get("config", {}).get("choices", {})
            head = "/".join(str(ch.get(g, "?")) for g in ("method", "strategy") if g not in searched)
            parts = [f"{names[p]}={_compact(f.get(where[p]), digits)}" for p in searched if where[p] in f]
            parts += [f"{k.split('.')[-1] if k.startswith('strategy.') else k}={f.get(k)}" for k in rest
                      if f.get(k) is not None]
            out.append(" ".join([head, *parts]).strip())
        if len(set(out)) == len(set(configs)):  # no two configurations read alike
            break
    return out


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """``method.module.optimizer.lr`` -> ``lr``: the last part of each dotted key, more where two would clash."""
    out = {}
    for k in keys:
        parts = k.split(".")
        n = 1
        while n < len(parts) and sum(o.split(".")[-n:] == parts[-n:] for o in keys) > 1:
            n += 1
        out[k] = ".".join(parts[-n:])
    return out


def _compact(value, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


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


def compare_runs(run_dirs: Iterable[str | Path], out_dir: str | Path, metric: str | None = None,
                 console: Console | None = None, x: str | None = None, also: Sequence[str] = ()) -> Path:
    """Mean ± std of ``metric`` per label count for each run label; writes ``comparison.csv`` and ``comparison.png``
    and returns the PNG's path (:func:`comparison` says more). ``metric``: default the metric an Optuna search
    optimised, where the runs are a search's (:func:`optuna_search`), else ``test/acc``. ``x``: the axis
    (:data:`X_AXES`; default: labels, or rounds for methods that ask no labels). ``also``: more metrics, each with
    its own table and ``comparison_<metric>.csv``, and a panel of the PNG beside ``metric``'s. Runs on data with a
    confounder also get ``explanations.png``: the same test items explained by the first run of each label
    (:mod:`exil.common.explain.sheet`)."""
    return comparison(run_dirs, out_dir, metric=metric, console=console, x=x, also=also).png


@dataclass
class Compared:
    """What :func:`comparison` wrote: the metric compared (resolved), its x axis (None for a metric with one value
    per run, ``test/acc_auc``), ``comparison.csv`` and ``.png``, the best label (where there is a direction: an
    Optuna search's) and the ranking (one dict per configuration, best first; empty unless ranked)."""

    metric: str
    x: str | None
    csv: Path
    png: Path
    best: str | None = None
    ranking: list[dict] = field(default_factory=list)
    #: one dict per (configuration, x) with the mean and std over seeds (filled by :func:`exil.compare`)
    rows: list[dict] = field(default_factory=list)

    def frame(self):
        """The rows as a pandas DataFrame (label, x, mean, std, runs)."""
        import pandas as pd

        return pd.DataFrame(self.rows)


def comparison(run_dirs: Iterable[str | Path], out_dir: str | Path, metric: str | None = None,
               console: Console | None = None, x: str | None = None, also: Sequence[str] = ()) -> Compared:
    """:func:`compare_runs`, returning what it wrote. A metric recorded each round (``test/acc``) is a table per
    label count; one with a value per run only (``test/acc_auc``, the area under ``test/acc``'s curve) is a ranking
    of the configurations, in ``comparison.csv``, plotted as the curves it sums. The runs of an Optuna search are
    also ranked by the final value of ``metric`` (``trials.csv`` where ``metric`` is per round), each labelled by
    the parameters the search varied, the best by the search's direction marked ★."""
    from exil.common.errors import ExilError

    dirs = [Path(d) for d in run_dirs if (Path(d) / "journal.sqlite").exists()]
    runs = [(d, *run_rows(d)) for d in dirs]
    runs = [(d, meta, rows) for d, meta, rows in runs if rows]
    console = console or wide_console()
    runs, repeats = _distinct(runs)
    metas = [meta for _, meta, _ in runs]
    search = optuna_search([d for d, _, _ in runs], metas)
    metric = metric or (search.metric if search else None) or "test/acc"
    labels = comparison_labels(metas, searched=search.params if search else ())
    groups: dict[str, list[list[dict]]] = defaultdict(list)
    folders: dict[str, list[Path]] = defaultdict(list)
    first: dict[str, tuple[int, Path]] = {}
    for label, (d, meta, rows) in zip(labels, runs):
        groups[label].append(rows)
        folders[label].append(d)
        seed = int(meta.get("seed") or 0)
        if label not in first or seed < first[label][0]:
            first[label] = (seed, d)
    if not groups:
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
    per_round = any(metric in r for runs_ in groups.values() for rows in runs_ for r in rows)
    finals = {label: [v for rows in runs_ if (v := final_value(rows, metric)) is not None]
              for label, runs_ in groups.items()}
    finals = {label: v for label, v in finals.items() if v}
    if not finals:
        known = sorted({k for runs_ in groups.values() for rows in runs_ for r in rows for k in r}
                       - {"round", "n_labels"})
        raise ExilError(f"no run has the metric {metric}; theirs: {', '.join(known)} (and each test/...'s area under "
                        "its curve, test/..._auc)")
    best = None
    if search is not None and search.direction:  # the search's best trial, by what it optimised
        optimised = finals if metric == (search.metric or metric) else {
            label: v for label, runs_ in groups.items()
            if (v := [f for rows in runs_ if (f := final_value(rows, search.metric)) is not None])}
        pick = min if search.direction == "minimize" else max
        best = pick(optimised, key=lambda label: float(np.mean(optimised[label]))) if optimised else None
    curve = metric if per_round else metric.removesuffix("_auc")
    names = sorted(groups)
    # at 80 columns full labels would be cut to "dataset.mi…": long ones become A, B, ... with a legend below
    short = sum(len(n) + 8 for n in names) + 8 > console.width
    heads = {n: (chr(ord("A") + i) if short and i < 26 else n) for i, n in enumerate(names)}
    legend = dict(heads)
    if best is not None:
        heads[best] += " ★"
    ranking: list[dict] = []
    if search is not None or not per_round:
        ranking = _ranking_table(finals, folders, metric, search, best, out_dir / ("trials.csv" if per_round else
                                                                                    "comparison.csv"), console)
    metrics = [metric, *[m for m in also if m != metric]] if per_round else list(also)
    for m in metrics:
        if not any(m in r for runs_ in groups.values() for rows in runs_ for r in rows):
            continue
        _comparison_table(groups, m, x, heads, out_dir / ("comparison.csv" if m == metric else
                                                           f"comparison_{m.replace('/', '_')}.csv"), console)
    if short and per_round:
        for label in names:
            mark = " ★ best" if label == best else ""
            console.print(f"  {legend[label]} = {label}{mark}", highlight=False, soft_wrap=True)
    if repeats:
        console.print(f"note: {repeats} run(s) repeat another run's config and seed exactly; each seed is counted "
                      "once", highlight=False)
    _explanation_sheet({label: d for label, (_, d) in sorted(first.items())}, out_dir / "explanations.png", console)
    title = f"{metric} vs {X_AXES[x]}" if per_round else f"{curve} vs {X_AXES[x]} ({metric}: the area under it)"
    drawn = [m for m in metrics if m != curve and any(m in r for runs_ in groups.values() for rows in runs_ for r in rows)]
    png = learning_curve(groups, out_dir / "comparison.png", metric=curve, title=title, x=x, also=drawn, best=best)
    return Compared(metric, x if per_round else None, out_dir / "comparison.csv", png, best, ranking)


@dataclass
class Search:
    """An Optuna search the runs came from: the sweep folders holding its ``optimization_results.yaml``, the keys
    it varied (in its order), its direction (None for several objectives: no single best) and the metric its
    jobs returned (their config's ``optimized_metric``; None where they differ)."""

    folders: list[Path]
    params: list[str]
    direction: str | None
    metric: str | None


def optuna_search(run_dirs: Sequence[Path], metas: Sequence[dict] = ()) -> Search | None:
    """The Optuna search whose trials ``run_dirs`` are (a sweep folder beside them holds Hydra's
    ``optimization_results.yaml``), or None. The direction is the sweep's (``hydra.sweeper.direction`` in a
    trial's ``.hydra/hydra.yaml``; ``maximize`` where that file is gone)."""
    import yaml

    dirs = [Path(d) for d in run_dirs]
    found = sorted({d.parent for d in dirs if (d.parent / "optimization_results.yaml").is_file()})
    if not found:
        return None
    params: list[str] = []
    direction: str | None = "maximize"
    for folder in found:
        try:
            result = yaml.safe_load((folder / "optimization_results.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            result = {}
        solutions = result.get("solutions") or []
        if solutions:
            direction = None
        best = result.get("best_params") or (solutions[0].get("params") if solutions else None) or {}
        params += [p for p in best if p not in params]
    for d in dirs:
        if d.parent in found and (d / ".hydra" / "hydra.yaml").is_file():
            try:
                sweeper = (yaml.safe_load((d / ".hydra" / "hydra.yaml").read_text()) or {})["hydra"]["sweeper"]
            except (OSError, yaml.YAMLError, KeyError, TypeError):
                continue
            said = sweeper.get("direction") if isinstance(sweeper, dict) else None
            said = said[0] if isinstance(said, list) and len(said) == 1 else said
            if isinstance(said, str):
                direction = said.lower()
            elif isinstance(said, list):
                direction = None
            break
    metrics = {m.get("config", {}).get("optimized_metric") for d, m in zip(dirs, metas) if d.parent in found}
    metric = next(iter(metrics)) if len(metrics) == 1 else None
    return Search(found, params, direction, metric)


def final_value(rows: list[dict], metric: str) -> float | None:
    """A run's one value of ``metric``: its last round's, or for ``<m>_auc`` the area under ``<m>``'s learning curve
    (:func:`area_under_curve`) — what a search's job returns (``exil.common.engine.optimized_value``)."""
    have = [r for r in rows if metric in r]
    if have:
        return float(have[-1][metric])
    if metric.endswith("_auc") and any(metric.removesuffix("_auc") in r for r in rows):
        return area_under_curve(rows, metric.removesuffix("_auc"))
    return None


def _ranking_table(finals: dict[str, list[float]], folders: dict[str, list[Path]], metric: str,
                   search: Search | None, best: str | None, path: Path, console: Console) -> list[dict]:
    """The configurations ranked by ``metric``'s final value (mean ± std over seeds), best first, ★ on the best;
    printed and written to ``path``. Returns the rows."""
    import os

    optimised = search is not None and search.direction is not None and metric == (search.metric or metric)
    descending = not (optimised and search.direction == "minimize")
    order = sorted(finals, key=lambda label: float(np.mean(finals[label])), reverse=descending)
    every = [d for label in order for d in folders[label]]
    root = Path(os.path.commonpath([str(d) for d in every])) if len(every) > 1 else every[0].parent
    what = (f"the metric the search optimised ({search.direction})" if optimised else
            f"each run's last value (★: the search's best by {search.metric})" if search and best else
            "each run's last value" if not metric.endswith("_auc") else "the area under each run's curve")
    table = Table(title=f"{metric}, {what}: mean ± std over seeds · {path.parent}",
                  caption=f"run folders in {root}" if len(every) > 1 else None)
    table.add_column("")
    table.add_column("trial" if search else "configuration", overflow="fold")
    table.add_column("run folder", overflow="fold")
    table.add_column(metric, justify="right")
    table.add_column("n", justify="right")
    rows = []
    for label in order:
        values = finals[label]
        mean, std = float(np.mean(values)), float(np.std(values))
        where = [str(d.relative_to(root)) if len(every) > 1 else str(d) for d in folders[label]]
        table.add_row("★" if label == best else "", label, ", ".join(where),
                      f"{mean:.4f}" if len(values) == 1 else f"{mean:.4f} ± {std:.4f}", str(len(values)))
        rows.append({"label": label, "mean": mean, "std": std, "runs": len(values), "best": label == best,
                     "folders": " ".join(str(d) for d in folders[label])})
    console.print(table)
    _write_csv(path, rows, ["label", "mean", "std", "runs", "best", "folders"])
    return rows


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
    """Runs ``(folder, meta, rows)`` with distinct (config, seed), tags aside: a run repeated with the same config and
    seed is the same sample of the seed distribution, not a new one (kept: the first found)."""
    import json

    seen, out = set(), []
    for run in runs:  # tags name a run without changing it
        config = {k: v for k, v in run[1].get("config", {}).items() if k != "tags"}
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(run)
    return out, len(runs) - len(out)


#: the x-axes a comparison can be drawn on, and their names on a plot
X_AXES = {"n_labels": "labels", "round": "round", "n_explanations": "explanations given",
          "teacher/seconds": "seconds of teacher time"}  # the last: methods compared at equal human cost


def x_axis(groups: dict[str, list[list[dict]]]) -> str:
    """``n_labels``, unless no run's label count changes between rounds (eXBL, ALICE ask no labels): ``round``."""
    for runs in groups.values():
        for rows in runs:
            if len({r["n_labels"] for r in rows}) > 1:
                return "n_labels"
    return "round"



def learning_curve(groups: dict[str, list[list[dict]]], path: Path, metric: str = "test/acc", title: str = "",
                   x: str | None = None, also: Sequence[str] = (), best: str | None = None) -> Path:
    """Plot ``metric`` (and each of ``also``, a panel each) vs number of labels (or ``x``), one line per label
    (mean with a ±std band over runs); ``best``: the label marked ★ best in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = x or x_axis(groups)
    panels = [metric, *also]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 + 4.2 * (len(panels) - 1), 4), dpi=120, squeeze=False)
    colors = {label: f"C{i % 10}" for i, label in enumerate(sorted(groups))}  # a label's colour in every panel
    lines: dict[str, Any] = {}  # each label's first curve: the legend's entry, whichever panels it is drawn in
    for ax, m in zip(axes[0], panels):
        for label, runs in sorted(groups.items()):
            s = _mean_std(runs, m, x)
            if not s:
                continue
            n = np.array(sorted(s))
            mean = np.array([s[k][0] for k in n])
            sd = np.array([s[k][1] for k in n])
            mark = " ★ best" if label == best else ""
            line, = ax.plot(n, mean, marker="o", ms=3, color=colors[label], label=f"{label} (n={len(runs)}){mark}",
                            lw=2.5 if mark else None)
            lines.setdefault(label, line)
            if len(runs) > 1:
                ax.fill_between(n, mean - sd, mean + sd, color=colors[label], alpha=0.2)
        ax.set_xlabel("round (this method asks no labels)" if x == "round" else X_AXES[x])
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    last = axes[0, -1]
    handles = [lines[label] for label in colors if label in lines]
    outside = []
    if handles and len(groups) > 1:  # outside the axes, on the right: it never covers a curve
        legend = last.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
        legend.set_in_layout(False)  # tight_layout arranges the axes alone (long labels left it no room to do so) ...
        outside.append(legend)
    elif handles:
        last.legend(handles=handles, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", bbox_extra_artists=outside or None)  # ... and the picture takes it in
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
