"""A controlled text task for explanation-aware learning: short reviews whose label is decided by **one
verdict phrase** among **distractor phrases** that agree with the label only most of the time, and a
simulated teacher that names the deciding phrase (XAL's controlled task; issue 13).

Each review joins, in random order, one *verdict* (the rationale) and ``distractors`` *aspect remarks*:

* the verdict is drawn from the label's list of :data:`VERDICTS` (``verdicts`` per class, frequencies
  ∝ 1/rank^``zipf``, so some verdicts are rare); it alone decides the label;
* each aspect remark is an aspect (:data:`ASPECTS`, distinct within a review) with a quality of one
  polarity (:data:`QUALITIES`); its polarity is the label's with probability ``agreement`` (independently
  per remark), the other's otherwise. The remarks are therefore correlated with the label but do not
  decide it: with 3 remarks at 0.7, the remarks' majority contradicts the label in 21.6 % of reviews.

e.g. ``"the pacing is clumsy, the cast is superb, a waste of time, the score is flat."`` → ``negative``.

**The teacher** (:class:`RationaleTeacher`, ``oracle.explainer``) answers ``explain_label`` as a careful
annotator (or an LLM told the verdict) would: the gold label's explanation names the verdict
("negative because it says a waste of time"); a wrong label's names the review's most misleading
evidence, an aspect remark of that label's polarity ("positive because it says the cast is superb"),
or, without one, the verdict claimed for the wrong label.

**Why it is a fair test of XAL.** The label says only *that* a review is negative; the explanation says
*which* of its four phrases made it so, information the label alone gives only through many labelled
reviews in which remarks and verdict disagree. If the implementation is right, (i) the generation loss
— the decoder must reproduce the verdict from the encoder's states — pushes the encoder to represent
the verdict rather than the remarks, and (ii) the explanation score flags reviews whose verdict the
model cannot yet name — rare verdicts, and reviews where the remarks and the verdict disagree, on which
a remark-led classifier is confidently wrong and entropy does not look. Nothing favours XAL otherwise:
every arm sees the same reviews, labels, backbone, optimiser and candidate subsample; the phrases are
ordinary English whose polarity a pretrained encoder may already know (remarks and verdicts alike).

Generation is deterministic in ``generate_seed`` (pool and test drawn from separate streams), the same
for every run; items carry ``id``, ``text``, ``label`` and, for the teacher only, ``rationale``,
``distractors`` and their polarities (read through :meth:`RationalePhrasesDataModule.row`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from exil.common.data.text import TextDataModule
from exil.common.errors import ConfigError
from exil.common.oracle.question import OracleContext, Question

CLASSES = ("negative", "positive")
VERDICTS = {
    "negative": ["a waste of time", "a total mess", "avoid this one", "utterly forgettable", "a real chore",
                 "the worst film this year", "a complete dud", "not worth the ticket", "a big letdown",
                 "it lost me early", "skip it", "a tedious slog", "dumb and boring", "a rare misfire",
                 "hard to recommend", "one star", "i hated every second", "painful to sit through",
                 "a cynical cash grab", "thoroughly annoying"],
    "positive": ["worth every minute", "a real triumph", "see it twice", "an instant classic", "a joy to watch",
                 "the best film this year", "an absolute gem", "worth the ticket", "a genuine delight",
                 "it won me over", "a must see", "pure movie magic", "smart and thrilling", "a rare treat",
                 "easy to recommend", "five stars", "i loved every second", "deeply moving",
                 "a crowd pleaser", "thoroughly charming"],
}
ASPECTS = ["the acting", "the plot", "the score", "the dialogue", "the pacing", "the camera work", "the ending",
           "the cast", "the script", "the editing"]
QUALITIES = {"negative": ["is dull", "is clumsy", "is weak", "is flat", "is messy"],
             "positive": ["is superb", "is lovely", "is sharp", "is gripping", "is clever"]}


def generate(n: int, seed: int, verdicts: int = 20, distractors: int = 3, agreement: float = 0.7,
             zipf: float = 1.0) -> list[dict[str, Any]]:
    """``n`` reviews (module docstring), balanced between the classes in random order, as row dicts."""
    if not 1 <= verdicts <= len(VERDICTS["negative"]):
        raise ConfigError(f"dataset.verdicts must be in 1..{len(VERDICTS['negative'])}, got {verdicts}")
    if not 0 <= distractors <= len(ASPECTS):
        raise ConfigError(f"dataset.distractors must be in 0..{len(ASPECTS)}, got {distractors}")
    if not 0.0 <= agreement <= 1.0 or zipf < 0:
        raise ConfigError(f"dataset.agreement must be in [0, 1] and dataset.zipf ≥ 0, got {agreement}, {zipf}")
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, verdicts + 1) ** zipf
    weights /= weights.sum()
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    rows = []
    for i, y in enumerate(labels):
        name, other = CLASSES[y], CLASSES[1 - y]
        verdict = VERDICTS[name][rng.choice(verdicts, p=weights)]
        aspects = rng.choice(len(ASPECTS), size=distractors, replace=False)
        polarity = [name if rng.random() < agreement else other for _ in aspects]
        remarks = [f"{ASPECTS[a]} {QUALITIES[p][rng.integers(len(QUALITIES[p]))]}" for a, p in zip(aspects, polarity)]
        phrases = [verdict, *remarks]
        order = rng.permutation(len(phrases))
        rows.append({"id": f"r{seed}-{i}", "text": ", ".join(phrases[k] for k in order) + ".", "label": name,
                     "rationale": verdict, "distractors": remarks, "distractor_labels": polarity})
    return rows


def split_rows(split: str, n: int, generate_seed: int = 0, **task: Any) -> list[dict[str, Any]]:
    """The ``pool`` or ``test`` reviews of a task: separate streams (seeds ``2·generate_seed`` and ``2·generate_seed + 1``)."""
    if split not in ("pool", "test"):
        raise ValueError(f"split is pool or test, got {split!r}")
    return generate(n, 2 * generate_seed + (split == "test"), **task)


def conflicting(row: dict[str, Any]) -> bool:
    """Whether the majority of a review's remarks has the other polarity than its label (ties: no)."""
    agree = sum(p == row["label"] for p in row["distractor_labels"])
    return agree < len(row["distractor_labels"]) - agree


class RationalePhrasesDataModule(TextDataModule):
    """The generated reviews as a :class:`~exil.common.data.text.TextDataModule` (module docstring).

    Args:
        pool_items: reviews in the pool. test_items: reviews in the test set.
        verdicts: verdict phrases per class (≤ 20). distractors: aspect remarks per review.
        agreement: probability that a remark has the label's polarity. zipf: verdict frequency exponent.
        generate_seed: the seed of the reviews (fixed: every run sees the same task).
        **kwargs: :class:`TextDataModule` arguments (tokenizer, max_length, batch sizes, …).
    """

    def __init__(self, pool_items: int = 2000, test_items: int = 1000, verdicts: int = 20, distractors: int = 3,
                 agreement: float = 0.7, zipf: float = 1.0, generate_seed: int = 0, **kwargs: Any):
        super().__init__(train_file="pool", test_file="test", text_fields=("text",), label_field="label",
                         label_names=list(CLASSES), id_field="id", **kwargs)
        self.sizes = {"pool": pool_items, "test": test_items}
        self.task = dict(verdicts=verdicts, distractors=distractors, agreement=agreement, zipf=zipf)
        self.generate_seed = generate_seed
        generate(1, generate_seed, **self.task)  # a bad setting stops here, before anything is built

    def _read(self, name: str) -> list[dict[str, Any]]:
        rows = split_rows(name, self.sizes[name], self.generate_seed, **self.task)
        for i, r in enumerate(rows):
            r["_row"] = i
        return rows

    def row(self, idx: int, split: str = "pool") -> dict[str, Any]:
        """The generated row of a pool (or test) item: its text, label, verdict and remarks (teachers only)."""
        self.setup()
        return self._rows[split][int((self.pool if split == "pool" else self.test)[int(idx)]["row"])]


def explanations(row: dict[str, Any], class_names: Sequence[str]) -> list[str]:
    """The teacher's explanation of every class for one generated review (module docstring)."""
    out = []
    for name in class_names:
        if name == row["label"]:
            phrase = row["rationale"]
        else:
            misleading = [d for d, p in zip(row["distractors"], row["distractor_labels"]) if p == name]
            phrase = misleading[0] if misleading else row["rationale"]
        out.append(f"{name} because it says {phrase}")
    return out


class RationaleTeacher:
    """Simulated ``explain_label`` teacher of :class:`RationalePhrasesDataModule`: names the deciding verdict
    for the gold label and the most misleading remark for the other (module docstring)."""

    def explain(self, question: Question, ctx: OracleContext) -> dict[str, Any]:
        row = ctx.datamodule.row(question.item)
        label = int(question.payload["label"])
        if list(ctx.class_names)[label] != row["label"]:
            raise ConfigError("the rationale teacher explains the reviews' true labels; use it with a noise-free "
                              "label oracle (oracle.noise=0)")
        return {"label": label, "explanations": explanations(row, list(ctx.class_names))}
