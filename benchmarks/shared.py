"""Helpers shared by the bench_*.py scripts: paired timing, printing a table and writing it to a file."""

from __future__ import annotations

import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_pair(base: Callable[[], Any], other: Callable[[], Any], repeats: int, device: torch.device,
               warmup: bool = True) -> tuple[float, float, list[Any]]:
    """Median seconds of ``base()`` and ``other()`` over ``repeats`` runs, run alternately (so that load
    from other processes hits both alike), after one discarded warm-up run of each if ``warmup``;
    and their last results."""
    times: dict[int, list[float]] = {0: [], 1: []}
    results: list[Any] = [None, None]
    for rep in range(repeats + int(warmup)):
        for j, fn in enumerate((base, other)):
            sync(device)
            start = time.perf_counter()
            results[j] = fn()
            sync(device)
            if rep or not warmup:
                times[j].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1]), results


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


def print_table(rows: list[dict], title: str, columns: list[tuple[str, str, str | None]]) -> None:
    """Print ``rows`` with rich (plain ``a | b`` lines without it). ``columns``: (header, row key, number
    format or None for text); numbers are right-aligned and None is shown as a dash."""
    def cell(r: dict, key: str, spec: str | None) -> str:
        v = r[key]
        return "—" if v is None else (format(v, spec) if spec else str(v))

    cells = [[cell(r, key, spec) for _, key, spec in columns] for r in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for c in cells:
            print(" | ".join(c))
        return
    table = Table(title=title)
    for header, _, spec in columns:
        table.add_column(header, justify="right" if spec else "left")
    for c in cells:
        table.add_row(*c)
    Console(width=200).print(table)
