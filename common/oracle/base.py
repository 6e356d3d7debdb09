"""The oracle protocol: one interface, several kinds of question.

A :class:`Question` names its ``kind`` (``label``, ``correct_explanation``,
``contrast_classes``, ``explain_label``, ``choose_exemplars``), a ``key`` unique
within its round and kind (the pool index for item questions), and a ``payload``
of what to show the teacher (the model's prediction, an explanation, ...).

An :class:`Oracle` answers the kinds it lists in ``kinds``. It never talks to the
journal: :class:`~common.oracle.asker.Asker` does, and validates every answer with
the validator registered for the question's kind (:func:`validator`); an invalid
answer is reported back to the oracle (:meth:`Oracle.reject`) and asked again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


class InvalidAnswer(ValueError):
    """An answer that does not fit its question; the message says what would."""


@dataclass
class Question:
    kind: str
    key: str
    item: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class OracleContext:
    """What an oracle may look at: the data (ground truth for simulated oracles), class names, a folder for files it shows."""

    datamodule: Any
    class_names: list[str]
    out_dir: Path
    round: int = 0


class Oracle(ABC):
    """Answers questions. Subclasses set ``kinds`` and implement :meth:`answer`."""

    kinds: tuple[str, ...] = ("label",)
    #: how many invalid answers in a row are re-asked before the run stops with an error
    max_attempts: int = 3
    #: answers cost nothing and are reproducible (simulated): the asker may commit many in one transaction
    cheap: bool = False

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def answer(self, question: Question, ctx: OracleContext) -> Any: ...

    def reject(self, question: Question, answer: Any, reason: str) -> None:
        """Called when ``answer`` was invalid, before the question is asked again."""

    def prefetch(self, questions: list[Question], ctx: OracleContext) -> None:
        """Called by :meth:`Asker.many <common.oracle.asker.Asker.many>` with the questions it is about to ask
        one by one. An oracle whose answers come from a slow service may fetch them all here, concurrently,
        into a cache of its own; the answers are still validated and journaled one at a time. Default: nothing."""


_VALIDATORS: dict[str, Callable[[Question, Any, OracleContext], Any]] = {}


def validator(kind: str):
    """Register ``fn(question, answer, ctx) -> normalised answer`` (raising InvalidAnswer) for a question kind."""

    def register(fn):
        _VALIDATORS[kind] = fn
        return fn

    return register


def validate(question: Question, answer: Any, ctx: OracleContext) -> Any:
    if question.kind not in _VALIDATORS:
        raise KeyError(f"no validator for question kind {question.kind!r}; known: {sorted(_VALIDATORS)}")
    return _VALIDATORS[question.kind](question, answer, ctx)


@validator("label")
def validate_label(question: Question, answer: Any, ctx: OracleContext) -> int:
    """A class index in 0..C−1, or a class name (case-insensitive)."""
    names = [n.lower() for n in ctx.class_names]
    if isinstance(answer, str):
        s = answer.strip()
        if s.lower() in names and not s.isdigit():
            return names.index(s.lower())
        try:
            answer = int(s)
        except ValueError:
            raise InvalidAnswer(f"{s!r} is not a class; answer a number 0..{len(names) - 1} or one of: "
                                f"{', '.join(ctx.class_names)}") from None
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(names):
        raise InvalidAnswer(f"{answer!r} is not a class; answer a number 0..{len(names) - 1}")
    return int(answer)
