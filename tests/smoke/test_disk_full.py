"""A full disk is one line naming the file that could not be written and the command that goes on; after room
is freed the run resumes and no answer is lost or asked twice (issue 24). The run folder is a small tmpfs
(mounting one needs root, as CI runs; elsewhere these tests are skipped), filled to leave a chosen room."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from exil.common.cli import _guard
from exil.common.engine import run
from tests.conftest import ROOT, compose

ARGS = ["loop.rounds=2", "loop.query_size=4", "loop.initial_per_class=1", "trainer.max_epochs=1", "logger=csv",
        "loop.threads=1", "print_config=false"]


@pytest.fixture
def disk(tmp_path):
    """A 6 MB tmpfs; ``fill(room)`` leaves ``room`` bytes free, ``free()`` removes the filler."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    class Disk:
        path = where

        @staticmethod
        def fill(room: int) -> None:
            st = os.statvfs(where)
            with open(where / "filler", "wb") as f:
                f.write(b"\0" * max(st.f_bavail * st.f_frsize - room, 0))

        @staticmethod
        def free() -> None:
            (where / "filler").unlink()

    yield Disk
    subprocess.run(["umount", "-l", str(where)], check=False)


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return " ".join(err[err.index("error:"):].split())


def answers(run_dir: Path) -> list[tuple]:
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        return db.execute("SELECT round, question, key FROM answers ORDER BY round, key").fetchall()
    finally:
        db.close()


def test_a_full_journal_is_one_line_and_the_run_resumes_once_room_is_freed(disk, capsys):
    d = disk.path / "run"
    disk.fill(350 << 10)  # the run starts, and its journal fills up in round 0
    code = _guard(run, compose(ARGS, d))
    said = one_line(capsys)
    assert code == 2
    assert said.startswith(f"error: the disk is full: {d}/journal.sqlite could not be written ("), said
    assert f"Free space there; then continue with: exil loop.resume={d} (every answer saved so far is kept)" in said
    before = answers(d)
    assert before
    disk.free()
    assert _guard(run, compose([f"loop.resume={d}"], d)) == 0, capsys.readouterr().err
    after = answers(d)
    assert set(before) <= set(after) and len(after) == len(set(after)) == 10 + 2 * 4


def test_a_journal_full_before_the_run_started_says_start_again_and_that_works(disk, capsys):
    d = disk.path / "run"
    disk.fill(150 << 10)  # room for the journal's file, not for the run's config in it
    assert _guard(run, compose(ARGS, d)) == 2
    said = one_line(capsys)
    assert said.startswith(f"error: the disk is full: {d}/journal.sqlite could not be written ("), said
    assert said.endswith("Free space there; then start the run again with the same command"), said
    disk.free()
    assert _guard(run, compose(ARGS, d)) == 0, capsys.readouterr().err
    assert len(answers(d)) == 10 + 2 * 4


def test_a_full_disk_at_a_checkpoint_names_the_checkpoint(disk, capsys):
    d = disk.path / "run"
    disk.fill(2700 << 10)  # room for the initial weights and one more checkpoint (1.2 MB each), not a third
    code = _guard(run, compose([*ARGS, "backbone.hidden=[512,512]"], d))
    said = one_line(capsys)
    assert code == 2
    assert re.match(rf"error: the disk is full: {re.escape(str(d))}/checkpoints/round_000_(fit|end)\.tmp could not "
                    r"be written \(\d+\.\d KB left on its disk\)", said), said
    assert f"exil loop.resume={d}" in said
    assert not list((d / "checkpoints").glob("*.tmp"))  # the partial file gave its room back
    disk.free()
    assert _guard(run, compose([f"loop.resume={d}"], d)) == 0, capsys.readouterr().err
    assert len(answers(d)) == 10 + 2 * 4


def test_no_room_before_the_run_starts_is_one_line_from_the_command_line(disk):
    disk.fill(0)
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "exil.common.cli", f"hydra.run.dir={disk.path}/run", *ARGS],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert [ln for ln in p.stderr.splitlines() if ln.strip()] == [
        f"error: the disk is full: {disk.path}/run could not be written (0 bytes left on its disk). Free space "
        "there; then start the run again with the same command"]
