"""Writing a benchmark's rows to a file (shared by the bench_*.py scripts)."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def write(rows: list[dict], out: Path) -> None:
    """The rows as CSV if ``out`` ends in .csv, else as JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        out.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
