"""The ``contrast_classes`` question of ALICE (Liang, Zou & Yu 2020, section 3.2): "How would you
differentiate P and Q?"

The key is the class pair ``"P-Q"`` (class indices, the smaller first) and the payload names the two
classes and shows ``examples`` (pool items of each). The answer is one sentence in natural language,
e.g. "Ring-billed gull has a bill with a black ring near the tip while California gull has a red spot
near the tip of lower mandible"; the method parses it. A valid answer is a non-empty string of at most
``MAX_CHARS`` characters (an empty line at a terminal is re-asked).

The simulated expert (:func:`simulated_contrast`) answers from the dataset: an explanation bank
written for its class pairs, or a sentence generated from CUB's class-level attribute annotations
(:mod:`common.data.cub`) — a simulation of an expert, never a real one.
"""

from __future__ import annotations

from typing import Any, Sequence

from common.errors import ExilError
from common.oracle.base import InvalidAnswer, OracleContext, Question, validator

MAX_CHARS = 2000


def contrast_question(p: int, q: int, class_names: Sequence[str], examples: dict[int, list[int]] | None = None
                      ) -> Question:
    """The question for the class pair (p, q), with pool items of each class to show the expert."""
    p, q = sorted((int(p), int(q)))
    if p == q:
        raise ValueError(f"a contrast needs two different classes, got {p} twice")
    return Question("contrast_classes", key=f"{p}-{q}", payload={
        "classes": [p, q], "names": [class_names[p], class_names[q]],
        "examples": {int(c): [int(i) for i in v] for c, v in (examples or {}).items()}})


def pair_of(question: Question) -> tuple[int, int]:
    p, q = question.payload["classes"]
    return int(p), int(q)


@validator("contrast_classes")
def validate_contrast(question: Question, answer: Any, ctx: OracleContext) -> str:
    """A sentence: a non-empty string of at most ``MAX_CHARS`` characters, stripped."""
    if not isinstance(answer, str) or not answer.strip():
        raise InvalidAnswer("answer with a sentence that says how the two classes differ, e.g. "
                            "'P has a red bill while Q has a yellow bill'")
    if len(answer) > MAX_CHARS:
        raise InvalidAnswer(f"the explanation has {len(answer)} characters; at most {MAX_CHARS} are kept")
    return " ".join(answer.split())


def simulated_contrast(question: Question, ctx: OracleContext) -> str:
    """The dataset's simulated expert sentence for the question's pair (module docstring)."""
    explain = getattr(ctx.datamodule, "contrast_explanation", None)
    if explain is None:
        raise ExilError(f"the simulated expert needs explanations of class pairs, and "
                        f"{type(ctx.datamodule).__name__} has none: use a dataset with parts "
                        "(fashion_parts, cub) or oracle=terminal")
    return explain(*pair_of(question))
