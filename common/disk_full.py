"""A full disk, named in one line: which file could not be written, how much room is left, and how to go on.

A run writes its journal (SQLite), checkpoints (``torch.save``), tables, plots and logs into its run folder; when
the disk fills up each of them fails its own way — ``sqlite3.OperationalError: database or disk is full``,
``RuntimeError: basic_ios::clear: iostream error`` from a checkpoint, ``OSError: [Errno 28]`` from a plain write.
:func:`disk_full` recognises all three (anywhere in an exception's chain) and says the same thing for each. What
was journaled before stays: the journal's transactions are whole or absent, a checkpoint is written to a ``.tmp``
file and renamed only when complete, so ``exil loop.resume=<run>`` after freeing space loses no answer.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

#: what a failed ``torch.save`` says when its stream cannot be written (it carries no errno)
_STREAM_FAILED = ("iostream error", "file write failed", "PytorchStreamWriter failed")

#: below this much free room a failed write is taken for a full disk
LOW_ROOM = 1 << 20


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the disk holding ``path`` (its nearest existing folder), or None."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            try:
                return shutil.disk_usage(q).free
            except OSError:
                return None
    return None


#: what Hydra's ``.hydra/`` files of a new run take, with room to spare: less than this before a run starts is full
START_ROOM = 64 << 10


def looks_full(path: str | Path, below: int = LOW_ROOM) -> bool:
    room = free_bytes(path)
    return room is not None and room < below


def stream_failed(e: BaseException) -> bool:
    """Whether ``e`` is ``torch.save`` failing to write its stream (the failure may be the context of another:
    closing the half-written archive then fails with ``unexpected pos``)."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, RuntimeError) and any(s in str(seen) for s in _STREAM_FAILED):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def disk_full(e: BaseException, run_dir: str | Path | None) -> str | None:
    """One line for a full disk anywhere in ``e``'s chain (None: not a full disk): the file, the room left, and
    the command that continues the run. The first write that failed is named (the end of the chain: cleaning up
    after it, a later write may fail too)."""
    seen: BaseException | None = e
    file = None
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            file = seen.filename or run_dir
        elif isinstance(seen, sqlite3.OperationalError) and "disk is full" in str(seen):
            file = Path(run_dir) / "journal.sqlite" if run_dir else "the journal"
        elif isinstance(seen, RuntimeError) and stream_failed(seen) and run_dir is not None and looks_full(run_dir):
            file = file or Path(run_dir) / "checkpoints"
        seen = seen.__cause__ or seen.__context__
    return message(file, run_dir) if file is not None else None


def message(file: str | Path, run_dir: str | Path | None) -> str:
    room = free_bytes(file)
    left = f"{_size(room)} left" if room is not None else "no room left"
    then = (f"; then continue with: exil loop.resume={run_dir} (every answer saved so far is kept)"
            if run_dir is not None and _resumable(Path(run_dir) / "journal.sqlite") else
            "; then start the run again with the same command")
    return f"the disk is full: {file} could not be written ({left} on its disk). Free space there{then}"


def _resumable(journal: Path) -> bool:
    """Whether the journal holds a run to resume (one full before it stored its config is started again:
    :func:`exil.common.journal.never_started`)."""
    from exil.common.journal import never_started

    return journal.exists() and not never_started(journal)


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
