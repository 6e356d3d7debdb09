"""How well teachers agree on the questions several of them answered (``oracle.overlap``), per question kind.

* labels (``label`` questions, and the label of any answer that gives one: XAL's ``explain_label``,
  :meth:`~exil.common.oracle.kinds.QuestionKind.label_of`): Cohen's κ when two teachers answered
  (scikit-learn's :func:`~sklearn.metrics.cohen_kappa_score`, ``κ = (p_o − p_e) / (1 − p_e)`` with ``p_e``
  from each teacher's own label frequencies), Fleiss' κ when more
  did (statsmodels' :func:`~statsmodels.stats.inter_rater.fleiss_kappa`), over the questions answered by every
  teacher of the round's pairs; and the share of those questions on which they all gave the same label.
* any other kind: the mean over questions of the mean pairwise agreement its question kind defines
  (:meth:`~exil.common.oracle.kinds.QuestionKind.agreement`): ``team/relevance_iou`` (IoU of the ``relevant``
  masks), ``team/correct_explanation_jaccard`` (CAIPI: Jaccard of the marked segments),
  ``team/explain_label_token_f1`` (XAL: token F1 of the gold label's explanations),
  ``team/contrast_classes_parts_jaccard`` (ALICE: Jaccard of the parts the run's parser finds in the two
  sentences), else identical answers (``team/<kind>_agreement``).

Skipped labels (``null``) are left out. Metrics are named ``team/<kind>_<measure>``: ``team/label_kappa``,
``team/label_agreement``, ``team/relevance_iou``, ``team/<kind>_agreement``; ``team/disagreements`` counts the
label questions that went to review.
"""

from __future__ import annotations

import itertools
import warnings
from collections import defaultdict
from typing import Any

import numpy as np

from exil.common.errors import ExilError
from exil.common.oracle.kinds import kind_of


def agreement(opinions: list[dict[str, Any]], method: Any = None) -> dict[str, float]:
    """Agreement metrics over ``opinions`` (rows of :meth:`exil.common.journal.Journal.opinions`); ``method``: the
    run's round hooks, given to each kind's :meth:`~exil.common.oracle.kinds.QuestionKind.agreement`."""
    by_question: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for o in opinions:
        if o["answer"] is not None:
            by_question[(o["question"], o["key"])][o["teacher"]] = o["answer"]
    kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    labels: list[dict[str, Any]] = []  # every question's labels, whatever its kind (XAL's carry one)
    for (kind, _), answers in by_question.items():
        if len(answers) >= 2:
            kinds[kind].append(answers)
            label_of = _label_of(kind)
            given = {t: label_of(a) for t, a in answers.items()}
            if all(y is not None for y in given.values()):
                labels.append(given)
    out: dict[str, float] = _labels(labels) if labels else {}
    for kind, questions in sorted(kinds.items()):
        if kind == "label":
            continue
        try:
            k = kind_of(kind)
            measure, pair = k.agreement_measure, k.agreement
        except ExilError:  # a kind whose package is not loaded here: identical answers
            measure, pair = "agreement", lambda a, b, method=None: float(a == b)
        out[f"team/{kind}_{measure}"] = float(np.mean([
            np.mean([pair(a, b, method) for a, b in itertools.combinations(list(ans.values()), 2)]) for ans in questions]))
    return out


def _label_of(kind: str):
    try:
        return kind_of(kind).label_of
    except ExilError:
        return lambda answer: None


def _labels(questions: list[dict[str, Any]]) -> dict[str, float]:
    out = {"team/label_agreement": float(np.mean([_all_same(list(a.values())) for a in questions])),
           "team/disagreements": float(sum(not _all_same(list(a.values())) for a in questions))}
    teachers = sorted({t for a in questions for t in a})
    if len(teachers) == 2:
        both = [a for a in questions if len(a) == 2]
        if both:
            from sklearn.metrics import cohen_kappa_score

            x = [int(a[teachers[0]]) for a in both]
            y = [int(a[teachers[1]]) for a in both]
            with warnings.catch_warnings():  # κ undefined (one class in all): said by _finite, not on the console
                warnings.simplefilter("ignore")
                out["team/label_kappa"] = _finite(cohen_kappa_score(x, y))
        return out
    k = max(len(a) for a in questions)
    full = [a for a in questions if len(a) == k]  # Fleiss' κ: the same number of raters per question
    if full and k >= 2:
        from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

        table, _ = aggregate_raters(np.array([[int(v) for v in a.values()] for a in full]))
        out["team/label_kappa"] = _finite(fleiss_kappa(table, method="fleiss"))
    return out


def _finite(v: float) -> float:
    """κ is undefined (0/0) when every answer was the same class; reported as 1 when all agreed."""
    v = float(v)
    return v if np.isfinite(v) else 1.0


def _all_same(answers: list[Any]) -> bool:
    return all(a == answers[0] for a in answers[1:])


