"""``exil teachers <run>``: who answered what, and how fast — from a run's journal, read-only.

One row per teacher and question kind: the answers they gave (their own opinions in a team run, answers
settled by them alone or with others, and revisions), the disagreements they settled as the reviewer, the median
and total seconds the questions were on their screen (reviews included), and — in a team run — how often their
answer matched the settled one: its label where the kind gives one (:meth:`QuestionKind.label_of`), else the
whole answer, over the questions somebody else settled or all agreed on (never against their own review). A run
without named teachers has one teacher, ``(you)``; a simulated teacher's seconds are its cost model's.
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
    """One dict per (teacher, kind): ``teacher, kind, answers, reviews, median_s, total_s, matched``
    (``matched``: the share of their team opinions that match the settled answer; None outside team runs)."""
    path = Path(run_dir) / "journal.sqlite"
    if not path.is_file():
        raise ExilError(f"{run_dir} holds no journal.sqlite: give the folder of a run")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cols = {r[1] for r in db.execute("PRAGMA table_info(answers)")}
        if "teacher" not in cols:
            raise ExilError(f"{path} is from before exil recorded who answered: nothing to list")
        settled = {(r, q, k): (a, t) for r, q, k, a, t in
                   db.execute("SELECT round, question, key, answer, teacher FROM answers")}
        seen: dict[tuple[str, str], dict[str, Any]] = defaultdict(
            lambda: {"answers": 0, "reviews": 0, "seconds": [], "matched": []})
        has_opinions = db.execute("SELECT name FROM sqlite_master WHERE name = 'opinions'").fetchone()
        opinions = db.execute("SELECT round, question, key, teacher, answer, seconds FROM opinions").fetchall() \
            if has_opinions else []
        for r, q, k, t, a, s in opinions:
            row = seen[(t, q)]
            row["answers"] += 1
            row["seconds"].append(s)
            final, by = settled.get((r, q, k), (None, None))
            if final is not None and by != t:  # not against a settlement of their own
                same = _label_of(q)
                row["matched"].append(same(json.loads(a)) == same(json.loads(final)))
        spent = defaultdict(float)  # the opinions' seconds of each question (a review's row includes them)
        for r, q, k, _, _, sec in opinions:
            spent[(r, q, k)] += sec or 0.0
        for table in ("answers", "revisions"):
            for r, q, k, t, sec in db.execute(f"SELECT round, question, key, teacher, seconds FROM {table}"):
                if t is not None and "+" in t:
                    continue  # settled by agreement: its teachers' opinions are counted above
                row = seen[(t or "(you)", q)]
                if table == "answers" and (r, q, k) in spent:
                    row["reviews"] += 1  # a disagreement this teacher settled
                    sec = None if sec is None else sec - spent[(r, q, k)]  # the reviewer's own time
                else:
                    row["answers"] += 1
                row["seconds"].append(sec)
    finally:
        db.close()
    out = []
    for (t, q), row in sorted(seen.items()):
        secs = [s for s in row["seconds"] if s is not None]
        out.append({"teacher": t, "kind": q, "answers": row["answers"], "reviews": row["reviews"],
                    "median_s": float(np.median(secs)) if secs else None, "total_s": float(sum(secs)) if secs else None,
                    "matched": float(np.mean(row["matched"])) if row["matched"] else None})
    return out


def _label_of(kind: str):
    """What two answers of ``kind`` must share to match: their label where the kind gives one, else everything."""
    from exil.common.oracle.kinds import kind_of

    try:
        label_of = kind_of(kind).label_of
    except ExilError:  # a kind whose package is not loaded here
        return lambda answer: answer
    return lambda answer: answer if label_of(answer) is None else label_of(answer)


def print_teachers(run_dir: str | Path) -> None:
    from rich.table import Table

    from exil.common.report import wide_console

    rows = teacher_rows(run_dir)
    table = Table(title=f"teachers of {Path(run_dir).resolve()}", title_justify="left")
    for name in ("teacher", "kind", "answers", "disagreements settled", "median s", "total s",
                 "matched the settled answer"):
        table.add_column(name, justify="left" if name in ("teacher", "kind") else "right")
    for r in rows:
        table.add_row(r["teacher"], r["kind"], str(r["answers"]), str(r["reviews"]) if r["reviews"] else "–",
                      "–" if r["median_s"] is None else f"{r['median_s']:.1f}",
                      "–" if r["total_s"] is None else f"{r['total_s']:.0f}",
                      "–" if r["matched"] is None else f"{r['matched']:.0%}")
    wide_console().print(table)
