"""Real runs answered in a real browser: an ``exil`` process with ``oracle=web`` (or ``web_explanations``) on
embedded or generated data, driven by Playwright in Debian's headless Chromium. Skipped, with the reason,
where no Chromium is installed (``apt-get install chromium``; ``.ci/run`` installs it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (os.environ.get("EXIL_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                             "/usr/bin/chromium") if p and Path(p).exists()), None)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium here (apt-get install chromium chromium-driver, or set EXIL_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    """Where the screenshots of the views go: the test's folder (or $EXIL_SCREENSHOTS, for the README)."""
    folder = Path(os.environ.get("EXIL_SCREENSHOTS") or tmp_path / "screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Run:
    """An ``exil`` process answered through its page; ``journal()`` reads what it holds."""

    def __init__(self, args: list[str], run_dir: Path):
        self.args, self.dir = args, run_dir
        self.proc: subprocess.Popen | None = None
        self.log = run_dir.parent / f"{run_dir.name}.log"

    def start(self, resume: bool = False) -> "Run":
        env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "EXIL_TRACEBACK": "1"}
        args = [f"loop.resume={self.dir}"] if resume else [*self.args, f"hydra.run.dir={self.dir}"]
        (self.dir / "oracle" / "web.json").unlink(missing_ok=True) if not resume else None
        self.proc = subprocess.Popen([sys.executable, "-m", "exil.common.cli", *args], cwd=ROOT, env=env,
                                     stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not (self.dir / "oracle" / "web.json").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"exil did not start its page:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        info = json.loads((self.dir / "oracle" / "web.json").read_text())
        self.port, self.token = info["port"], info["token"]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout: float = 180) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"exil did not finish:\n{self.log.read_text()[-3000:]}") from None
        assert code == 0, self.log.read_text()[-3000:]
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def journal(self, sql: str) -> list[tuple]:
        db = sqlite3.connect(f"file:{self.dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def answers(self, kind: str) -> list[tuple]:
        """(round, key, newest answer as JSON) of one kind, in the order first answered."""
        return [(r, k, json.loads(a)) for r, k, a in self.journal(
            "SELECT round, key, COALESCE((SELECT r.answer FROM revisions r WHERE r.round = a.round AND "
            "r.question = a.question AND r.key = a.key ORDER BY r.seq DESC LIMIT 1), a.answer) FROM answers a "
            f"WHERE question = '{kind}' ORDER BY t")]


@pytest.fixture
def exil_run(tmp_path):
    runs: list[Run] = []

    def make(args: list[str], name: str = "run") -> Run:
        run = Run(args, tmp_path / name)
        runs.append(run)
        return run.start()

    yield make
    for r in runs:
        r.stop()


#: the page drops clicks and keys this soon after a new question appears (app.js GUARD_MS, plus a margin)
GUARD_MS = 350


def wait_question(page, kind: str, other_than: str | None = None, timeout: float = 120_000) -> str:
    """Wait until a question of ``kind`` (whose id differs from ``other_than``) is shown; return its id."""
    sel = f'#question[data-kind="{kind}"]'
    page.wait_for_function(
        """([sel, other]) => { const q = document.querySelector(sel);
               return q && q.dataset.id && q.dataset.id !== other && q.querySelector('button, textarea, canvas'); }""",
        arg=[sel, other_than or ""], timeout=timeout)
    page.wait_for_timeout(GUARD_MS)  # as a person does: look before answering (the page ignores faster input)
    return page.get_attribute("#question", "data-id")


def open_page(browser, run: Run, width: int = 1280, height: int = 860):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(run.url)
    page.errors = errors
    return page


class Labeller:
    """A person answering label questions by key press: ``labeller(page, key)`` waits for a question other
    than the last, checks it was not answered before (none may come back), presses ``key`` and waits for
    the page to move on; ``answered`` maps question ids to the keys pressed."""

    def __init__(self):
        self.answered: dict[str, int] = {}
        self.last: str | None = None

    def __call__(self, page, key: int, timeout: float = 120_000) -> str:
        qid = wait_question(page, "label", other_than=self.last, timeout=timeout)
        assert qid not in self.answered, f"{qid} was answered already and is shown again"
        page.keyboard.press(str(key))
        page.wait_for_function("id => document.querySelector('#question').dataset.id !== id", arg=qid,
                               timeout=60_000)
        self.answered[qid], self.last = key, qid
        return qid
