"""A real person at the terminal.

For each question the item is shown — text printed, an image saved as a PNG
(``<run dir>/oracle/round_RRR_item_N.png``, path printed) — with the model's
prediction and top classes; the person types an answer. The Asker validates it;
an invalid answer prints what would be valid and the question is asked again.
What each kind shows and asks is the kind's own ``terminal`` view (:mod:`exil.common.oracle.kinds`):

* ``label``: a class number or name (``skip`` where the method allows it).
* ``relevance``: the image is saved with a numbered ``grid`` × ``grid`` overlay; the person types
  the numbers of the cells that hold what matters for the label (``all`` / ``none`` allowed), which
  become the relevant mask.
* ``correct_explanation`` (CAIPI): the image is saved with the explanation's components highlighted
  and numbered by their ids (for text, the components are printed); the person types the ids of
  those that do not matter for the label (``none`` if the model is right for the right reasons).
* ``choose_exemplars`` (eXBL): every candidate's explanation is saved as an overlay on its image in
  one numbered contact sheet; the person types the good one's number, then the bad one's.
* ``contrast_classes`` (ALICE): example images of the two classes are saved side by side in one
  sheet; the person types how they would tell the classes apart, in one sentence.
* ``explain_label`` (XAL): the text and its label are printed; the person types why the text has that
  label, then, for every other class, why someone might (wrongly) give it that one.

Text is printed as it is (no console markup, so ``[0=cat, 1=dog]`` hints survive) with the run's live
progress display paused while the person reads and types (:meth:`attach_display`). End of input (Ctrl-D)
stops the run with a message that it can be resumed; every answer given so far is in the journal.
``input_fn``/``print_fn`` are injectable so the same code is driven by tests.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager

import numpy as np
import torch

from exil.common.abilities import HasTexts
from exil.common.errors import RunStopped
from exil.common.oracle.base import Oracle, check_ignored
from exil.common.oracle.kinds import kind_of, registered
from exil.common.oracle.question import OracleContext, Question
from exil.common.oracle.sheets import save_image


class TerminalOracle(Oracle):
    """A person at the terminal (module docstring); machine-teacher settings an experiment sets are ignored."""

    def __init__(self, max_attempts: int = 20, top: int = 3, grid: int = 4, input_fn: Callable[[str], str] = input,
                 print_fn: Callable[..., None] = print, **ignored: Any):
        check_ignored("terminal", ignored)
        self.max_attempts, self.top, self.grid = max_attempts, top, grid
        self.input_fn, self.print_fn = input_fn, print_fn
        self._paused: Callable[[], ContextManager] = contextlib.nullcontext

    @property
    def kinds(self) -> tuple[str, ...]:
        return registered()

    def attach_display(self, paused: Callable[[], ContextManager]) -> None:
        self._paused = paused

    def seconds(self, kind: str, measured: float | None) -> float | None:
        """A person at the terminal: the time from the question shown until its (valid) answer."""
        return measured

    def answer(self, question: Question, ctx: OracleContext) -> Any:
        with self._paused():
            return kind_of(question.kind).terminal(question, ctx, self)

    def say(self, text: str) -> None:
        self.print_fn(text)

    def ask(self, prompt: str) -> str:
        try:
            return self.input_fn(prompt)
        except EOFError:
            self.print_fn("")
            raise RunStopped("input ended (Ctrl-D)", 130) from None

    def show(self, question: Question, ctx: OracleContext) -> None:
        stage = "initial set" if ctx.round < 0 else f"round {ctx.round}"
        self.say(f"\n── {stage} · {question.kind} · item {question.key} ──")
        item = ctx.datamodule.pool_item(question.item) if question.item is not None else {}
        if isinstance(ctx.datamodule, HasTexts) and question.item is not None:
            for n, part in enumerate(ctx.datamodule.text_of(question.item)):
                self.say(f"{'text' if n == 0 else 'text b'}: {part}")
        elif "x" in item and torch.is_tensor(item["x"]) and item["x"].dim() in (2, 3):
            name = "initial" if ctx.round < 0 else f"round_{ctx.round:03d}"
            path = save_image(item["x"], ctx.out_dir / f"{name}_item_{question.key}.png")
            self.say(f"image: {path}")
        probs = question.payload.get("probs")
        if probs is not None:
            order = np.argsort(probs)[::-1][: self.top]
            self.say("model: " + ", ".join(f"{ctx.class_names[c]} ({probs[c]:.2f})" for c in order))

    def reject(self, question: Question, answer: Any, reason: str) -> None:
        self.print_fn(f"✗ {reason}")
