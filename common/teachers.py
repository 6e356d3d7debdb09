"""``exil teachers <run>``: who answered what, and how fast — from a run's journal, read-only.

One row per teacher and question kind: the answers they gave (their own opinions in a team run, answers
settled by them alone or with others, reviews and revisions), the median and total seconds the questions were
on their screen, and — in a team run — how often their labels matched the settled label. A run without named
teachers has one teacher, ``(you)``; a simulated teacher's seconds are its cost model's.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from exil.common.errors import ExilError


def teacher_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """One dict per (teacher, kind): ``teacher, kind, answers, median_s, total_s, matched`` (``matched``: the
    share of their team opinions equal to the settled answer; None outside team runs)."""
    path = Path(run_dir) / "journal.sqlite"
    if not path.is_file():
        raise ExilError(f"{run_dir} holds no journal.sqlite: give the folder of a run")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cols = {r[1] for r in db.execute("PRAGMA table_info(answers)")}
        if "teacher" not in cols:
            raise ExilError(f"{path} is from before exil recorded who answered: nothing to list")
        settled = {(r, q, k): a for r, q, k, a in db.execute("SELECT round, question, key, answer FROM answers")}
        seen: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"seconds": [], "matched": []})
        has_opinions = db.execute("SELECT name FROM sqlite_master WHERE name = 'opinions'").fetchone()
        opinions = db.execute("SELECT round, question, key, teacher, answer, seconds FROM opinions").fetchall() \
            if has_opinions else []
        for r, q, k, t, a, s in opinions:
            row = seen[(t, q)]
            row["seconds"].append(s)
            if (r, q, k) in settled:
                row["matched"].append(json.loads(a) == json.loads(settled[(r, q, k)]))
        spent = defaultdict(float)  # the opinions' seconds of each question (a review's row includes them)
        for r, q, k, _, _, sec in opinions:
            spent[(r, q, k)] += sec or 0.0
        for table in ("answers", "revisions"):
            for r, q, k, t, sec in db.execute(f"SELECT round, question, key, teacher, seconds FROM {table}"):
                if t is not None and "+" in t:
                    continue  # settled by agreement: its teachers' opinions are counted above
                if table == "answers" and sec is not None and (r, q, k) in spent:
                    sec = sec - spent[(r, q, k)]  # a reviewer's own time
                seen[(t or "(you)", q)]["seconds"].append(sec)
    finally:
        db.close()
    out = []
    for (t, q), row in sorted(seen.items()):
        secs = [s for s in row["seconds"] if s is not None]
        out.append({"teacher": t, "kind": q, "answers": len(row["seconds"]),
                    "median_s": float(np.median(secs)) if secs else None, "total_s": float(sum(secs)) if secs else None,
                    "matched": float(np.mean(row["matched"])) if row["matched"] else None})
    return out


def print_teachers(run_dir: str | Path) -> None:
    from rich.table import Table

    from exil.common.report import wide_console

    rows = teacher_rows(run_dir)
    table = Table(title=f"teachers of {Path(run_dir).resolve()}", title_justify="left")
    for name in ("teacher", "kind", "answers", "median s", "total s", "matched the settled answer"):
        table.add_column(name, justify="left" if name in ("teacher", "kind") else "right")
    for r in rows:
        table.add_row(r["teacher"], r["kind"], str(r["answers"]),
                      "–" if r["median_s"] is None else f"{r['median_s']:.1f}",
                      "–" if r["total_s"] is None else f"{r['total_s']:.0f}",
                      "–" if r["matched"] is None else f"{r['matched']:.0%}")
    wide_console().print(table)
