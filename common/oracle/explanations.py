"""The ``explain_label`` question (XAL): free-text explanations of an item's label, one per class.

A question's payload holds the item's ``text`` and its ``label``: either given (another teacher labelled
the item, e.g. the data's labels through ``oracle=web_explanations``) or ``None`` — then the one teacher
labels and explains the item in the same question, so a person reads each text once. The answer gives the
label and, for **every** class, an explanation of why the item would have that label: the gold label's is
the reasonable explanation, the others are the unreasonable ones XAL's ranking loss scores below it. Answers
are ``{"label": y, "explanations": [e_0, …, e_{C−1}]}`` (in class order; a dict keyed by class name or index
is accepted and normalised); an empty or missing explanation is an invalid answer and is asked again.

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
            raise InvalidAnswer(f"choose the item's label ({class_list(names)}) as well as explaining every class")
        try:
            label = parse_label(label, names)
        except InvalidAnswer as e:
            raise InvalidAnswer(f"the answer's label: {e}") from None
        return {"label": label, "explanations": [e.strip() for e in given]}

    def simulate(self, question: Question, ctx: OracleContext, teacher: Any) -> Any:
        if question.payload.get("label") is None:  # the simulated teacher labels the item as it labels any
            question = with_label(question, teacher.label(label_question(question), ctx))
        return explain_label(teacher.explainer, question, ctx)

    def terminal(self, question: Question, ctx: OracleContext, term: Any) -> Any:
        names = list(ctx.class_names)
        term.say(f"\n── {'initial set' if ctx.round < 0 else f'round {ctx.round}'} · explain_label · "
                 f"item {question.key} ──")
        for n, part in enumerate(question.payload.get("text") or ctx.datamodule.text_of(question.item)):
            term.say(f"{'text' if n == 0 else 'text b'}: {part}")
        if question.payload.get("label") is None:
            classes = ", ".join(f"{i}={n}" for i, n in enumerate(names))
            while True:
                try:
                    label = parse_label(term.ask(f"label? [{classes}] > "), names)
                    break
                except InvalidAnswer as e:
                    term.say(f"  ✗ {e}")
        else:
            label = int(question.payload["label"])
            term.say(f"label: {names[label]}")
        out = [""] * len(names)
        out[label] = term.ask(f"Why is it {names[label]}? > ")
        for c in (c for c in range(len(names)) if c != label):
            out[c] = term.ask(f"Why might someone (wrongly) say {names[c]}? > ")
        return {"label": label, "explanations": out}

    def web(self, question: Question, ctx: OracleContext, media: Any) -> dict[str, Any]:
        """The text, its label (``None``: the person chooses it here), every class and, where the payload has them,
        the model's prediction, its own explanation and why the item was asked."""
        from exil.common.oracle.label import top_predictions, why_asked

        p = question.payload
        text = list(p.get("text") or ctx.datamodule.text_of(question.item))
        out = {"text": text, "label": None if p.get("label") is None else int(p["label"]),
               "classes": list(ctx.class_names), "max_chars": MAX_CHARS, "why": why_asked(p, ctx)}
        if p.get("probs") is not None:
            out["predictions"] = top_predictions(p["probs"], ctx.class_names)
        if p.get("model_explanation") is not None:  # what the model itself generates for the item now ("": nothing)
            out["model_explanation"] = str(p["model_explanation"])
        return out

    def label_of(self, answer: Any) -> Any:
        return answer["label"]

    agreement_measure = "token_f1"

    def agreement(self, a: Any, b: Any, method: Any = None) -> float:
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


def explanation_question(item: int, label: int | None, text: tuple[str, ...], model_explanation: str | None = None,
                         **shown: Any) -> Question:
    """The ``explain_label`` question for a pool item: with its (already answered) ``label``, or ``None`` to ask
    the label in the same question. ``model_explanation``: the explanation the model generates for it now;
    ``shown``: more of what a person is shown (the model's ``probs``, the ``strategy`` / ``score`` / ``why`` of
    :func:`~exil.common.oracle.label.why_asked`)."""
    payload: dict[str, Any] = {"label": None if label is None else int(label), "text": list(text),
                               **{k: v for k, v in shown.items() if v is not None}}
    if model_explanation is not None:  # "" when the model writes nothing yet: a person is told so
        payload["model_explanation"] = model_explanation
    return Question("explain_label", key=str(int(item)), item=int(item), payload=payload)


def label_question(question: Question) -> Question:
    """The ``label`` question of the item an ``explain_label`` question is about (same key: a simulated teacher's
    noise draws the same label either way)."""
    return Question("label", key=question.key, item=question.item,
                    payload={k: v for k, v in question.payload.items() if k in ("probs", "why", "strategy", "score")})


def with_label(question: Question, label: int) -> Question:
    """The question with its label filled in (for a teacher that explains a label another step chose)."""
    return Question(question.kind, key=question.key, item=question.item,
                    payload={**question.payload, "label": int(label)})


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
