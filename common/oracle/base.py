"""The oracle protocol: one interface, several kinds of question.

A :class:`Question` names its ``kind`` (``label``, ``correct_explanation``,
``contrast_classes``, ``explain_label``, ``choose_exemplars``), a ``key`` unique
within its round and kind (the pool index for item questions), and a ``payload``
of what to show the teacher (the model's prediction, an explanation, ...).

An :class:`Oracle` answers the kinds it lists in ``kinds``. It never talks to the
journal: :class:`~exil.common.oracle.asker.Asker` does, and validates every answer with
the question's kind (:mod:`exil.common.oracle.kinds`); an invalid answer is reported back
to the oracle (:meth:`Oracle.reject`) and asked again.

A **live** oracle (``live = True``: the web page) is not asked question by question:
the asker *offers* it a round's questions at once (:meth:`Oracle.offer`) and the
teacher's answers come back, in any order, through the asker's ``submit``, which
validates and commits each before the teacher is told it was saved.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ContextManager

from exil.common.errors import ConfigError
from exil.common.oracle.kinds import kind_of
from exil.common.oracle.question import OracleContext, Question


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

    def seconds(self, kind: str, measured: float | None) -> float | None:
        """What an answer of ``kind`` cost the teacher, in seconds of a person's time (None: not a person's time,
        e.g. an LLM). ``measured``: the wall time the answer took here. A person at the terminal costs what was
        measured; a simulated teacher costs what its cost model says (:mod:`exil.common.oracle.cost`); the web
        page sends its own measure with each answer."""
        return None

    #: answers come from ground truth (simulated, or a router whose labels do): the initial set may then be
    #: stratified by class; a person's is drawn at random, since nobody told the loop the classes yet
    labels_from_truth: bool = False
    #: answers arrive on their own, in any order (a web page): see :meth:`offer`
    live: bool = False

    def offer(self, round: int, questions: list[Question], ctx: OracleContext, desk: Any,
              answered: list[tuple[Question, Any]] = ()) -> None:
        """A live oracle's turn: show ``questions`` (all unanswered) to the teacher; each answer goes to
        ``desk.submit(round, question, raw, revise)``, which validates and journals it. ``answered``: the round's
        questions answered before (in an earlier session of a resumed run), with their answers, which the
        teacher may still see and revise."""
        raise NotImplementedError(f"{self.name} is not a live oracle")

    def start(self, ctx: OracleContext) -> None:
        """The run begins (a web oracle starts its server and prints its address). Default: nothing."""

    def settle(self, round: int, desk: Any) -> None:
        """The round's questions are all answered: a live oracle may give the teacher a moment to revise them
        before they are used (default: none)."""

    def status(self, info: dict[str, Any]) -> None:
        """What the loop is doing (``round``, ``stage``, ``labels``, ``budget``, ``curve``), for a teacher's view."""

    def attach_display(self, paused: Callable[[], ContextManager]) -> None:
        """``paused()`` suspends the console's live display (progress bar) while a person is asked."""

    def close(self) -> None:
        """The run is over (or stopped): release what the oracle holds (a server)."""

    def prefetch(self, questions: list[Question], ctx: OracleContext) -> None:
        """Called by :meth:`Asker.many <exil.common.oracle.asker.Asker.many>` with the questions it is about to ask
        one by one. An oracle whose answers come from a slow service may fetch them all here, concurrently,
        into a cache of its own; the answers are still validated and journaled one at a time. Default: nothing."""


#: the simulated teacher's settings (a router hands an experiment's to its simulated routes)
SIMULATED_SETTINGS = frozenset({"noise", "latency", "seed", "relevance_field", "irrelevant_field",
                                "exemplar_threshold", "explainer", "cost"})
#: settings of the machine teachers (simulated, LLM) that an experiment may set for its default teacher;
#: a person's oracle (web, terminal) accepts and ignores them, so ``experiment=X oracle=web`` just works
MACHINE_TEACHER_SETTINGS = SIMULATED_SETTINGS | {"task", "template", "verbalizer", "client", "labels", "system"}


def check_ignored(oracle: str, settings: dict[str, Any]) -> None:
    """Refuse ``settings`` that are not machine-teacher settings (which a person's oracle ignores)."""
    unknown = sorted(set(settings) - MACHINE_TEACHER_SETTINGS)
    if unknown:
        raise ConfigError(f"oracle {oracle} has no setting {', '.join(unknown)}")


def validate(question: Question, answer: Any, ctx: OracleContext) -> Any:
    """The canonical answer to ``question`` (raises :class:`InvalidAnswer`), by the question's kind."""
    return kind_of(question.kind).validate(question, answer, ctx)
