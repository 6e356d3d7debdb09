"""The ``explain_label`` question (XAL): free-text explanations of an item's label, one per class.

A question's payload holds the item's ``label`` (the teacher's, asked first) and its ``text``; the
answer gives, for **every** class, an explanation of why the item would have that label: the gold
label's is the reasonable explanation, the others are the unreasonable ones XAL's ranking loss scores
below it. Answers are ``{"label": y, "explanations": [e_0, …, e_{C−1}]}`` (in class order; a dict keyed by
class name or index is accepted and normalised); an empty or missing explanation is an invalid answer
and is asked again.

Teachers that answer it: an :class:`ExplanationBank` (explanations written beforehand, e.g. by an LLM or
by people: JSONL rows ``{"id", "label", "explanation"}``), the simulated lexicon teacher
(:mod:`exil.common.oracle.lexicon`), an LLM (:mod:`exil.common.oracle.llm`) and a person at the terminal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exil.common.errors import ConfigError, ExilError
from exil.common.oracle.kinds import COMMON_VIEWS, QuestionKind, register
from exil.common.oracle.label import class_list, parse_label
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question


@register
class ExplainLabel(QuestionKind):
    name = "explain_label"
    view = COMMON_VIEWS / "explain_label.js"

    def validate(self, question: Question, answer: Any, ctx: OracleContext) -> dict[str, Any]:
        """``{"label": y, "explanations": [e_0, …, e_{C−1}]}``, each explanation a non-empty string of at most
        :data:`MAX_CHARS` characters, stripped. The label is the answer's ``"label"`` if it has one, else the
        question's, read as :func:`~exil.common.oracle.label.parse_label` reads a ``label`` answer (no skip)."""
        names = list(ctx.class_names)
        given = answer.get("explanations") if isinstance(answer, dict) else answer
        if isinstance(given, dict):
            lookup = {str(k).lower(): v for k, v in given.items()}
            given = [lookup.get(n.lower(), lookup.get(str(c))) for c, n in enumerate(names)]
        if not isinstance(given, (list, tuple)) or len(given) != len(names):
            raise InvalidAnswer(f"give one explanation for each of the {len(names)} classes ({class_list(names)})")
        empty = [names[c] for c, e in enumerate(given) if not isinstance(e, str) or not e.strip()]
        if empty:
            raise InvalidAnswer(f"the explanations of {class_list(empty)} are empty; every class needs one")
        too_long = [names[c] for c, e in enumerate(given) if len(e) > MAX_CHARS]
        if too_long:
            raise InvalidAnswer(f"the explanations of {class_list(too_long)} are longer than {MAX_CHARS} characters")
        label = answer.get("label", question.payload.get("label")) if isinstance(answer, dict) else \
            question.payload.get("label")
        if label is None:
            raise InvalidAnswer(f"the answer names no label in 0..{len(names) - 1}")
        try:
            label = parse_label(label, names)
        except InvalidAnswer as e:
            raise InvalidAnswer(f"the answer's label: {e}") from None
        return {"label": label, "explanations": [e.strip() for e in given]}

    def simulate(self, question: Question, ctx: OracleContext, teacher: Any) -> Any:
        return explain_label(teacher.explainer, question, ctx)

    def terminal(self, question: Question, ctx: OracleContext, term: Any) -> Any:
        label, names = int(question.payload["label"]), list(ctx.class_names)
        term.say(f"\n── {'initial set' if ctx.round < 0 else f'round {ctx.round}'} · explain_label · "
                 f"item {question.key} ──")
        for n, part in enumerate(question.payload.get("text") or ctx.datamodule.text_of(question.item)):
            term.say(f"{'text' if n == 0 else 'text b'}: {part}")
        term.say(f"label: {names[label]}")
        out = [""] * len(names)
        out[label] = term.ask(f"Why is it {names[label]}? > ")
        for c in (c for c in range(len(names)) if c != label):
            out[c] = term.ask(f"Why might someone (wrongly) say {names[c]}? > ")
        return {"label": label, "explanations": out}

    def web(self, question: Question, ctx: OracleContext, media: Any) -> dict[str, Any]:
        label = int(question.payload["label"])
        text = list(question.payload.get("text") or ctx.datamodule.text_of(question.item))
        out = {"text": text, "label": label, "classes": list(ctx.class_names), "max_chars": MAX_CHARS}
        if question.payload.get("model_explanation"):  # what the model itself generates for the item now
            out["model_explanation"] = str(question.payload["model_explanation"])
        return out

    agreement_measure = "token_f1"

    def agreement(self, a: Any, b: Any) -> float:
        """Token F1 of the two teachers' explanations of the gold label (lower-cased words, as SQuAD's F1), 0 when
        they explained different labels."""
        if a["label"] != b["label"]:
            return 0.0
        return token_f1(a["explanations"][a["label"]], b["explanations"][b["label"]])

    def summary(self, answer: Any, ctx: OracleContext) -> str:
        gold = answer["explanations"][answer["label"]]
        return f"{ctx.class_names[answer['label']]}: {gold[:60]}{'…' if len(gold) > 60 else ''}"


MAX_CHARS = 2000


def token_f1(a: str, b: str) -> float:
    """F1 of the multiset overlap of two texts' lower-cased word tokens (1 for two empty texts)."""
    import re
    from collections import Counter

    x, y = Counter(re.findall(r"\w+", a.lower())), Counter(re.findall(r"\w+", b.lower()))
    if not x and not y:
        return 1.0
    common = sum((x & y).values())
    if common == 0:
        return 0.0
    p, r = common / sum(x.values()), common / sum(y.values())
    return 2 * p * r / (p + r)


def explanation_question(item: int, label: int, text: tuple[str, ...], model_explanation: str | None = None
                         ) -> Question:
    """The ``explain_label`` question for a pool item with its (already answered) label; ``model_explanation``:
    the explanation the model generates for it now, shown to a person."""
    payload: dict[str, Any] = {"label": int(label), "text": list(text)}
    if model_explanation:
        payload["model_explanation"] = model_explanation
    return Question("explain_label", key=str(int(item)), item=int(item), payload=payload)


class ExplanationBank:
    """Explanations written beforehand: JSONL rows ``{"id": item id, "label": class name, "explanation": text}``,
    one row per (item, class) — the item ids are the dataset's (``dataset.id_field``, else the row in its file).

    Args:
        path: the JSONL file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"explanation bank {self.path} does not exist")
        self.bank: dict[tuple[str, str], str] = {}
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                try:
                    self.bank[(str(row["id"]), str(row["label"]).lower())] = str(row["explanation"])
                except KeyError as e:
                    raise ConfigError(f"{self.path}:{n}: a row needs id, label and explanation (missing {e})") from None

    def explain(self, question: Question, ctx: OracleContext) -> dict[str, Any]:
        item_id = ctx.datamodule.item_id(question.item)
        out = []
        for name in ctx.class_names:
            if (item_id, name.lower()) not in self.bank:
                raise ExilError(f"explanation bank {self.path} has no explanation of label {name!r} for item id {item_id}")
            out.append(self.bank[(item_id, name.lower())])
        return {"label": question.payload["label"], "explanations": out}


def explain_label(explainer: Any, question: Question, ctx: OracleContext) -> dict[str, Any]:
    """The simulated oracle's ``explain_label`` answer, from its configured explainer."""
    if explainer is None:
        raise ConfigError("explain_label questions need oracle.explainer: a simulated lexicon teacher "
                          "(exil.common.oracle.lexicon.LexiconTeacher) or an explanation bank "
                          "(exil.common.oracle.explanations.ExplanationBank); or use oracle=llm")
    return explainer.explain(question, ctx)
