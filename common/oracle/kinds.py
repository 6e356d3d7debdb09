"""Question kinds as objects: one per kind, registered by whoever defines the kind.

A :class:`QuestionKind` owns everything about one kind of question:

* :meth:`~QuestionKind.validate` — the one validator every teacher's answers go through (simulated,
  terminal, web, LLM): it returns the canonical answer the journal stores, or raises
  :class:`~exil.common.oracle.question.InvalidAnswer` with what would be valid;
* :meth:`~QuestionKind.simulate` — the simulated teacher's answer, from ground truth;
* :meth:`~QuestionKind.terminal` — how a person answers it at the terminal;
* :meth:`~QuestionKind.web` and ``view`` — what the web page shows (a JSON payload) and the ES module
  that draws it (served at ``/views/<kind>.js``); :meth:`~QuestionKind.preview` gives live feedback while
  a person composes an answer (ALICE: the parts the parser recognises);
* :meth:`~QuestionKind.summary` — one line for the list of answers given.

``common`` registers ``label``, ``relevance`` and ``explain_label``; a method package registers its own
(``exil.caipi.questions``: ``correct_explanation``, ``exil.exbl.questions``: ``choose_exemplars``,
``exil.alice.questions``: ``contrast_classes``) when its hooks are imported, so a new method adds a question
without touching common's oracles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from exil.common.errors import ExilError

if TYPE_CHECKING:
    from exil.common.oracle.question import OracleContext, Question


#: the view modules of common's own kinds
COMMON_VIEWS = Path(__file__).resolve().parents[1] / "web" / "static" / "views"


class QuestionKind:
    """One kind of question (module docstring). Subclasses set ``name`` and ``view`` and implement
    :meth:`validate`; the other views are optional (a teacher that needs a missing one says so)."""

    name: str = ""
    #: the ES module that draws the kind's web view (``export function render(root, question, api)``)
    view: Path | None = None

    def validate(self, question: "Question", answer: Any, ctx: "OracleContext") -> Any:
        raise NotImplementedError

    def simulate(self, question: "Question", ctx: "OracleContext", teacher: Any) -> Any:
        """The simulated teacher's raw answer; ``teacher`` is the :class:`~exil.common.oracle.simulated.SimulatedOracle`
        (its settings and ground-truth access)."""
        raise ExilError(f"the simulated teacher cannot answer {self.name!r} questions")

    def terminal(self, question: "Question", ctx: "OracleContext", term: Any) -> Any:
        """A person's raw answer at the terminal; ``term`` is the :class:`~exil.common.oracle.terminal.TerminalOracle`
        (``term.show``, ``term.say``, ``term.ask``)."""
        raise ExilError(f"the terminal cannot ask {self.name!r} questions")

    def web(self, question: "Question", ctx: "OracleContext", media: Any) -> dict[str, Any]:
        """The JSON payload of the web view; ``media`` turns images into URLs (:class:`exil.common.web.media.Media`)."""
        raise ExilError(f"the web page cannot show {self.name!r} questions")

    def preview(self, question: "Question", data: Any, ctx: "OracleContext") -> dict[str, Any]:
        """Live feedback on an answer being composed (default: none)."""
        return {}

    def summary(self, answer: Any, ctx: "OracleContext") -> str:
        """One short line that says what the answer was."""
        text = str(answer)
        return text if len(text) <= 80 else text[:77] + "…"

    def label_of(self, answer: Any) -> Any:
        """The class label an answer gives (``None``: the kind gives none). Teachers whose answers to one question
        give different labels disagree: the question goes to the reviewer, and its labels count in ``team/label_*``."""
        return None

    #: the name of :meth:`agreement`'s measure in the metrics (``team/<kind>_<measure>``)
    agreement_measure: str = "agreement"

    def agreement(self, a: Any, b: Any, method: Any = None) -> float:
        """How much two teachers' answers to the same question agree, in [0, 1] (default: 1 when identical).
        ``method``: the run's round hooks, for a kind whose answers mean what the method reads in them (ALICE:
        the parts its parser finds in a sentence)."""
        return float(a == b)


_KINDS: dict[str, QuestionKind] = {}


def register(kind: QuestionKind | type[QuestionKind]) -> Any:
    """Register a kind (an instance, or a class — then used as a decorator and instantiated once)."""
    obj = kind() if isinstance(kind, type) else kind
    if not obj.name:
        raise ValueError(f"{type(obj).__name__} has no name")
    _KINDS[obj.name] = obj
    return kind


def kind_of(name: str) -> QuestionKind:
    if name not in _KINDS:
        raise ExilError(f"no question kind {name!r} is registered; known: {', '.join(sorted(_KINDS))} (a method's "
                        "kinds register when its package is imported)")
    return _KINDS[name]


def registered() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))
