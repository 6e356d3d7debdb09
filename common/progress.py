"""The live progress bar of a run: one step per round, its description the stage just finished."""

from __future__ import annotations

import contextlib


class RoundProgress:
    """A rich progress bar over rounds whose description shows the current stage."""

    def __init__(self, console, rounds: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.task = self.progress.add_task("rounds", total=rounds + 1)
        self.console = console

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    @contextlib.contextmanager
    def paused(self):
        """The live bar stops drawing (and releases stdout) while a person at the terminal is asked."""
        self.progress.stop()
        try:
            yield
        finally:
            self.progress.start()

    def __call__(self, round: int, stage: str, seconds: float) -> None:
        self.progress.update(self.task, description=f"round {round} · {stage} done ({seconds:.1f}s)")
        if stage == "evaluate":
            self.progress.update(self.task, completed=round + 1)
