"""The ``contrast_classes`` question of ALICE (Liang, Zou & Yu 2020, section 3.2): "How would you
differentiate P and Q?"

The key is the class pair ``"P-Q"`` (class indices, the smaller first) and the payload names the two
classes and shows ``examples`` (pool items of each). The answer is one sentence in natural language,
e.g. "Ring-billed gull has a bill with a black ring near the tip while California gull has a red spot
near the tip of lower mandible"; the method parses it. A valid answer is a non-empty string of at most
``MAX_CHARS`` characters (an empty line at a terminal is re-asked).

The simulated expert (:func:`simulated_contrast`) answers from the dataset: an explanation bank
written for its class pairs, or a sentence generated from CUB's class-level attribute annotations
(:mod:`exil.common.data.cub`) — a simulation of an expert, never a real one.

Views: at the terminal, a sheet of example images of both classes and a prompt; on the web page the
examples side by side and a text box under which the parts the semantic parser recognises appear as the
person types (the question carries the parser's ``lexicon``), with a warning when none is recognised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from exil.common.errors import ExilError
from exil.common.oracle.kinds import QuestionKind, register
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question

MAX_CHARS = 2000


def contrast_question(p: int, q: int, class_names: Sequence[str], examples: dict[int, list[int]] | None = None,
                      lexicon: dict[str, str] | None = None) -> Question:
    """The question for the class pair (p, q), with pool items of each class to show the expert and the parser's
    ``lexicon`` (phrase → part) for the live preview of what a sentence will be parsed into."""
    p, q = sorted((int(p), int(q)))
    if p == q:
        raise ValueError(f"a contrast needs two different classes, got {p} twice")
    return Question("contrast_classes", key=f"{p}-{q}", payload={
        "classes": [p, q], "names": [class_names[p], class_names[q]],
        "examples": {int(c): [int(i) for i in v] for c, v in (examples or {}).items()},
        "lexicon": dict(lexicon or {})})


def pair_of(question: Question) -> tuple[int, int]:
    p, q = question.payload["classes"]
    return int(p), int(q)


@register
class ContrastClasses(QuestionKind):
    name = "contrast_classes"
    view = Path(__file__).parent / "views" / "contrast_classes.js"

    def validate(self, question: Question, answer: Any, ctx: OracleContext) -> str:
        """A sentence: a non-empty string of at most ``MAX_CHARS`` characters, stripped."""
        if isinstance(answer, dict) and set(answer) == {"text"}:
            answer = answer["text"]
        if not isinstance(answer, str) or not answer.strip():
            raise InvalidAnswer("answer with a sentence that says how the two classes differ, e.g. "
                                "'P has a red bill while Q has a yellow bill'")
        if len(answer) > MAX_CHARS:
            raise InvalidAnswer(f"the explanation has {len(answer)} characters; at most {MAX_CHARS} are kept")
        return " ".join(answer.split())

    def simulate(self, question: Question, ctx: OracleContext, teacher: Any) -> str:
        return simulated_contrast(question, ctx)

    def terminal(self, question: Question, ctx: OracleContext, term: Any) -> Any:
        from exil.common.oracle.sheets import save_rows

        (p, q), names = question.payload["classes"], question.payload["names"]
        term.say(f"\n── round {ctx.round} · contrast_classes · {names[0]} vs {names[1]} ──")
        examples = question.payload.get("examples") or {}
        rows = [(n, [ctx.datamodule.pool_item(i)["x"] for i in examples.get(c, [])])
                for c, n in ((p, names[0]), (q, names[1]))]
        if any(images for _, images in rows):
            path = save_rows(rows, ctx.out_dir / f"round_{ctx.round:03d}_contrast_{question.key}.png")
            term.say(f"examples: {path} (top row {names[0]}, bottom row {names[1]})")
        return term.ask(f"How would you differentiate {names[0]} and {names[1]}? > ")

    def web(self, question: Question, ctx: OracleContext, media: Any) -> dict[str, Any]:
        (p, q), names = question.payload["classes"], question.payload["names"]
        examples = question.payload.get("examples") or {}
        sides = [{"class": c, "name": n,
                  "images": [media.image(ctx.datamodule.pool_item(i)["x"]) for i in examples.get(c, [])]}
                 for c, n in ((p, names[0]), (q, names[1]))]
        return {"classes": sides, "max_chars": MAX_CHARS,
                "parts": sorted(set(question.payload.get("lexicon", {}).values()))}

    def preview(self, question: Question, data: Any, ctx: OracleContext) -> dict[str, Any]:
        """The parts the method's parser finds in the sentence typed so far."""
        from exil.alice.parser import SemanticParser

        text = data.get("text", "") if isinstance(data, dict) else str(data or "")
        lexicon = question.payload.get("lexicon") or {}
        return {"parts": sorted(SemanticParser(dict(lexicon)).parse(text[:MAX_CHARS])) if lexicon else []}

    agreement_measure = "parts_jaccard"

    def agreement(self, a: Any, b: Any, method: Any = None) -> float:
        """The Jaccard index of the parts the run's parser (``method.parser``; without a run, one over every lexicon
        exil ships) finds in the two sentences — what the method learns from them (both none: 1)."""
        from exil.alice.parser import SemanticParser

        parser = getattr(method, "parser", None)
        if parser is None:
            from exil.alice.parser import BIRD_PARTS, GARMENT_PARTS

            parser = SemanticParser({**BIRD_PARTS, **GARMENT_PARTS})
        x, y = set(parser.parse(str(a))), set(parser.parse(str(b)))
        return 1.0 if not x | y else len(x & y) / len(x | y)


def simulated_contrast(question: Question, ctx: OracleContext) -> str:
    """The dataset's simulated expert sentence for the question's pair (module docstring)."""
    explain = getattr(ctx.datamodule, "contrast_explanation", None)
    if explain is None:
        raise ExilError(f"the simulated expert needs explanations of class pairs, and "
                        f"{type(ctx.datamodule).__name__} has none: use a dataset with parts "
                        "(fashion_parts, cub) or oracle=terminal")
    return explain(*pair_of(question))
