"""Every way a person or the system stops a run — Ctrl-C mid-fit, Ctrl-C and Ctrl-D at the terminal teacher's
prompt, SIGTERM (what SLURM sends before a kill) — ends the same way, seen through a real terminal (a pty):
one line naming the exact ``exil loop.resume=<run dir>`` command, no traceback, exit status 130 (an
interrupt) or 143 (SIGTERM); and that command finishes the run."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sqlite3
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

LONG_FIT = ["loop.rounds=1", "loop.query_size=5", "loop.initial_per_class=1", "trainer.max_epochs=100",
            "loop.threads=1", "logger=csv"]
TERMINAL = ["oracle=terminal", "loop.rounds=1", "loop.query_size=2", "loop.initial_per_class=1",
            "trainer.max_epochs=1", "loop.threads=1", "logger=csv"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """``exil`` in a pseudo-terminal: its session's controlling terminal, so ^C and ^D act as a person's keys."""

    def __init__(self, args: list[str]):
        env = {**os.environ, "WANDB_MODE": "offline", "COLUMNS": "400"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exil
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "exil.common.cli", *args], env)
        self.out = ""

    def read(self, timeout: float = 0.2) -> str:
        while select.select([self.fd], [], [], timeout)[0]:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            self.out += chunk.decode(errors="replace")
            timeout = 0.05
        return self.out

    def wait_for(self, what, timeout: float = 240) -> None:
        t0 = time.monotonic()
        while not what():
            self.read()
            assert time.monotonic() - t0 < timeout, f"timed out; the terminal showed:\n{self.text()[-3000:]}"

    def key(self, data: bytes) -> None:
        os.write(self.fd, data)

    def exit_status(self, timeout: float = 120) -> int:
        t0 = time.monotonic()
        while True:
            self.read()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.read(0.2)
                return os.waitstatus_to_exitcode(status)
            assert time.monotonic() - t0 < timeout, f"exil did not stop:\n{self.text()[-3000:]}"

    def text(self) -> str:
        return ANSI.sub("", self.out).replace("\r", "")


def stages(run_dir: Path, stage: str) -> int:
    try:
        db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM stages WHERE stage = ?", (stage,)).fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0


def said_once_and_resumable(term: Terminal, status: int, how: str, run_dir: Path, expected: int) -> None:
    text = term.text()
    assert status == expected, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    assert lines[-1] == (f"stopped ({how}); every answer given so far is in the journal. Continue with: "
                         f"exil loop.resume={run_dir.resolve()}"), lines[-5:]


def test_ctrl_c_mid_fit_then_the_printed_command_finishes_the_run(tmp_path):
    run_dir = tmp_path / "run"
    term = Terminal([*LONG_FIT, f"hydra.run.dir={run_dir}"])
    term.wait_for(lambda: stages(run_dir, "initial") == 1)
    time.sleep(1)  # inside round 0's fit (100 epochs of 512 items)
    term.key(b"\x03")
    said_once_and_resumable(term, term.exit_status(), "Ctrl-C", run_dir, 130)
    assert stages(run_dir, "fit") == 0
    done = Terminal([f"loop.resume={run_dir}", "trainer.max_epochs=100"])  # the same value: allowed
    assert done.exit_status(600) == 0, done.text()[-3000:]
    assert stages(run_dir, "evaluate") == 2


def test_sigterm_mid_fit_says_how_to_resume_with_143(tmp_path):
    run_dir = tmp_path / "run"
    term = Terminal([*LONG_FIT, f"hydra.run.dir={run_dir}"])
    term.wait_for(lambda: stages(run_dir, "initial") == 1)
    time.sleep(1)
    os.kill(term.pid, signal.SIGTERM)
    said_once_and_resumable(term, term.exit_status(), "SIGTERM", run_dir, 143)


def test_ctrl_d_and_ctrl_c_at_the_teacher_s_prompt(tmp_path):
    for key, how in ((b"\x04", "input ended (Ctrl-D)"), (b"\x03", "Ctrl-C")):
        run_dir = tmp_path / how[:5]
        term = Terminal([*TERMINAL, f"hydra.run.dir={run_dir}"])
        term.wait_for(lambda t=term: t.text().rstrip().endswith(">"))  # "label? [0 … 9] >"
        term.key(b"1\n")  # one answer, journaled
        term.wait_for(lambda t=term: t.text().count("label? [") >= 2 and t.text().rstrip().endswith(">"))
        term.key(key)
        said_once_and_resumable(term, term.exit_status(), how, run_dir, 130)
