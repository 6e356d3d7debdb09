"""The ``label`` question: "which class is this item?"

The payload may carry the model's class ``probs``, why the item was chosen (``strategy``, ``score``, or
``why`` for the initial set) and ``skippable`` (the method can leave an item unlabelled: the person may
answer "skip" / don't know, and the item is not asked again). A valid answer is a class index in 0..C−1 or a
class name (case-insensitive); a skip is journaled as ``null``. :meth:`Label.validate` spells out exactly what
is read as a label (:func:`parse_label`, also used for the label of an ``explain_label`` answer).
"""

from __future__ import annotations

import numbers
import re
import reprlib
from typing import Any, Sequence

import numpy as np

from exil.common.oracle.kinds import COMMON_VIEWS, QuestionKind, register
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question

SKIP_WORDS = ("skip", "?", "don't know", "dont know")


@register
class Label(QuestionKind):
    name = "label"
    view = COMMON_VIEWS / "label.js"

    def validate(self, question: Question, answer: Any, ctx: OracleContext) -> int | None:
        """The class index in ``0..C-1`` the answer names, or ``None`` (a skip) where the payload is ``skippable``.

        What is read as a label:

        * an ``int`` in ``0..C-1`` (or another integer type, e.g. a NumPy integer) — never ``True``/``False``
          (JSON ``true`` is not class 1) and never a float, even an integral one: ``2.0`` is refused (no view
          sends floats, and a float usually means something computed — a mean, a probability — went astray);
        * a string, surrounding whitespace ignored (``" 3 "`` is 3), that is either ASCII digits ``0-9`` only
          (leading zeros allowed: ``"03"`` is 3) — read as the index even where a class is named by digits,
          as the default names ``"0"``, ``"1"``, … are — or a class name, case-insensitive (``"DOG"``).
          Everything else is refused: signs (``"+1"``, ``"-0"``), ``"0x1"``, ``"1_0"``, ``"1.0"``, ``"1e0"``,
          and non-ASCII digits (Arabic-Indic ``"٣"``, fullwidth ``"３"``, superscript ``"²"``), which Python's
          ``int()`` would accept or choke on; nobody means a class by them, and a person sees ASCII numbers;
        * a skip — ``None``, one of :data:`SKIP_WORDS` (case-insensitive), ``{"skip": true}`` or
          ``{"label": null}`` — only where the method allows it; otherwise it is refused;
        * ``{"label": x}`` (optionally with ``"skip": false``) is read as ``x``; ``{}``, ``{"skip": false}``
          alone, a ``skip`` that is not a bool, or a skip together with a label are refused.

        A refusal (:class:`InvalidAnswer`) says what is valid and quotes at most a short prefix of the answer.
        """
        skippable = bool(question.payload.get("skippable"))
        if isinstance(answer, dict) and answer and set(answer) <= {"label", "skip"}:
            skip = answer.get("skip", False)
            if not isinstance(skip, bool):
                raise InvalidAnswer(f"'skip' is true or false, not {brief(skip)}")
            if skip and answer.get("label") is not None:
                raise InvalidAnswer("answer either a label or skip, not both")
            if not skip and "label" not in answer:
                raise InvalidAnswer(f"the answer has no label; answer {label_hint(ctx.class_names)}")
            answer = None if skip else answer["label"]
        if answer is None or (isinstance(answer, str) and answer.strip().lower() in SKIP_WORDS):
            if skippable:
                return None
            raise InvalidAnswer(f"this item needs a label (the method cannot skip it); answer "
                                f"{label_hint(ctx.class_names)}")
        return parse_label(answer, ctx.class_names)

    def simulate(self, question: Question, ctx: OracleContext, teacher: Any) -> int:
        return teacher.label(question, ctx)

    def terminal(self, question: Question, ctx: OracleContext, term: Any) -> Any:
        term.show(question, ctx)
        classes = ", ".join(f"{i}={n}" for i, n in enumerate(ctx.class_names))
        skip = " or 'skip'" if question.payload.get("skippable") else ""
        return term.ask(f"label? [{classes}]{skip} > ")

    def web(self, question: Question, ctx: OracleContext, media: Any) -> dict[str, Any]:
        from exil.common.web.media import item_view

        p = question.payload
        out = {"item": item_view(ctx, question.item, media), "classes": list(ctx.class_names),
               "skippable": bool(p.get("skippable")), "why": why_asked(p, ctx)}
        if p.get("probs") is not None:
            out["predictions"] = top_predictions(p["probs"], ctx.class_names)
        return out

    def summary(self, answer: Any, ctx: OracleContext) -> str:
        return "skipped" if answer is None else ctx.class_names[int(answer)]

    def label_of(self, answer: Any) -> Any:
        return answer


def top_predictions(probs: Sequence[float], class_names: Sequence[str], k: int = 5) -> list[dict[str, Any]]:
    """The model's ``k`` likeliest classes, for a view: ``[{"class", "name", "p"}]``, most probable first."""
    probs = np.asarray(probs, dtype=float)
    return [{"class": int(c), "name": class_names[c], "p": float(probs[c])} for c in np.argsort(-probs)[:k]]


def why_asked(payload: dict[str, Any], ctx: OracleContext) -> str:
    """One line on why the loop asks about this item."""
    if payload.get("why"):
        return str(payload["why"])
    strategy = payload.get("strategy") or ctx.strategy
    score = payload.get("score")
    if strategy and score is not None and np.isfinite(score):
        return f"chosen by {strategy}: score {score:.3g} (higher = asked first)"
    return f"chosen by {strategy}" if strategy else ""


#: ASCII digits only: ``str.isdigit`` and ``int()`` also take other scripts' digits (and ``int()`` signs, ``_``)
_DIGITS = re.compile(r"[0-9]+")


def parse_label(answer: Any, class_names: Sequence[str]) -> int:
    """The class index ``answer`` names (:meth:`Label.validate` says what is read as one; no skips here);
    raises :class:`InvalidAnswer`."""
    names = [str(n).strip().lower() for n in class_names]
    if isinstance(answer, str):
        s = answer.strip()
        if _DIGITS.fullmatch(s):
            digits = s.lstrip("0") or "0"
            # more digits than any index has: out of range (and int() refuses over 4300 digits)
            answer = int(digits) if len(digits) <= 18 else len(names)
        elif s.lower() in names:
            return names.index(s.lower())
        else:
            raise InvalidAnswer(f"{brief(s)} is not a class; answer {label_hint(class_names)}")
    if isinstance(answer, bool) or not isinstance(answer, numbers.Integral):
        whole = " (a whole number, not a float)" if isinstance(answer, float) else ""
        raise InvalidAnswer(f"{brief(answer)} is not a class; answer {label_hint(class_names)}{whole}")
    if not 0 <= answer < len(names):
        raise InvalidAnswer(f"{brief(answer)} is not a class; answer a number 0..{len(names) - 1}")
    return int(answer)


def label_hint(class_names: Sequence[str]) -> str:
    """``a number 0..C-1 or one of: <names>`` (the names cut short where there are many)."""
    return f"a number 0..{len(class_names) - 1} or one of: {class_list(class_names)}"


def class_list(names: Sequence[Any], limit: int = 300) -> str:
    """``names`` joined by commas, cut at about ``limit`` characters (with how many there are)."""
    text = ", ".join(map(str, names))
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(", ", 1)[0] + f", … ({len(names)} in all)"


class _Brief(reprlib.Repr):
    """``repr`` cut short: an answer quoted in a refusal is never echoed whole (it may be a megabyte)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 2, 40, 40, 40
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = self.maxdeque = 4

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # repr() of an int with over 4300 digits raises
            return f"<an integer of about {int(x.bit_length() * 0.30103)} digits>"
        return super().repr_int(x, level)


_brief = _Brief()


def brief(value: Any, limit: int = 80) -> str:
    """A short ``repr`` of ``value`` (at most about ``limit`` characters), for messages."""
    try:
        text = _brief.repr(value)
    except Exception:  # a repr that fails: say what it is
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 1] + "…"
