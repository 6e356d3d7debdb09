"""The ``label`` question: "which class is this item?"

The payload may carry the model's class ``probs``, why the item was chosen (``strategy``, ``score``, or
``why`` for the initial set) and ``skippable`` (the method can leave an item unlabelled: the person may
answer "skip" / don't know, and the item is not asked again). A valid answer is a class index in 0..C−1 or a
class name (case-insensitive); a skip is journaled as ``null``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.oracle.base import InvalidAnswer, OracleContext, Question
from common.oracle.kinds import COMMON_VIEWS, QuestionKind, register

SKIP_WORDS = ("skip", "?", "don't know", "dont know")


@register
class Label(QuestionKind):
    name = "label"
    view = COMMON_VIEWS / "label.js"

    def validate(self, question: Question, answer: Any, ctx: OracleContext) -> int | None:
        names = [n.lower() for n in ctx.class_names]
        skippable = bool(question.payload.get("skippable"))
        if isinstance(answer, dict) and set(answer) <= {"label", "skip"}:
            answer = None if answer.get("skip") else answer.get("label")
        if answer is None or (isinstance(answer, str) and answer.strip().lower() in SKIP_WORDS):
            if skippable:
                return None
            raise InvalidAnswer("this item needs a label (the method cannot skip it); answer a number "
                                f"0..{len(names) - 1} or one of: {', '.join(ctx.class_names)}")
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

    def simulate(self, question: Question, ctx: OracleContext, teacher: Any) -> int:
        return teacher.label(question, ctx)

    def terminal(self, question: Question, ctx: OracleContext, term: Any) -> Any:
        term.show(question, ctx)
        classes = ", ".join(f"{i}={n}" for i, n in enumerate(ctx.class_names))
        skip = " or 'skip'" if question.payload.get("skippable") else ""
        return term.ask(f"label? [{classes}]{skip} > ")

    def web(self, question: Question, ctx: OracleContext, media: Any) -> dict[str, Any]:
        from common.web.media import item_view

        p = question.payload
        out = {"item": item_view(ctx, question.item, media), "classes": list(ctx.class_names),
               "skippable": bool(p.get("skippable")), "why": why_asked(p, ctx)}
        if p.get("probs") is not None:
            probs = np.asarray(p["probs"], dtype=float)
            order = np.argsort(-probs)[:5]
            out["predictions"] = [{"class": int(c), "name": ctx.class_names[c], "p": float(probs[c])} for c in order]
        return out

    def summary(self, answer: Any, ctx: OracleContext) -> str:
        return "skipped" if answer is None else ctx.class_names[int(answer)]


def why_asked(payload: dict[str, Any], ctx: OracleContext) -> str:
    """One line on why the loop asks about this item."""
    if payload.get("why"):
        return str(payload["why"])
    strategy = payload.get("strategy") or ctx.strategy
    score = payload.get("score")
    if strategy and score is not None and np.isfinite(score):
        return f"chosen by {strategy}: score {score:.3g} (higher = asked first)"
    return f"chosen by {strategy}" if strategy else ""
