"""Agreement between teachers against closed forms computed here by hand (not through the libraries used)."""

from __future__ import annotations

import numpy as np
import pytest

from exil.common.agreement import agreement
from exil.common.oracle.relevance import encode_mask


def rows(answers: dict[str, list]) -> list[dict]:
    return [{"question": "label", "key": str(i), "teacher": t, "answer": a}
            for t, labels in answers.items() for i, a in enumerate(labels)]


def test_two_teachers_get_cohens_kappa():
    a, b = [0, 0, 1, 1, 2, 2, 0, 1], [0, 1, 1, 1, 2, 0, 0, 1]
    po = np.mean([x == y for x, y in zip(a, b)])
    pe = sum(a.count(c) / len(a) * b.count(c) / len(b) for c in (0, 1, 2))
    got = agreement(rows({"alice": a, "bob": b}))
    assert got["team/label_kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert got["team/label_agreement"] == po and got["team/disagreements"] == 2


def test_three_teachers_get_fleiss_kappa():
    a, b, c = [0, 0, 1, 1, 2], [0, 1, 1, 1, 2], [0, 0, 1, 2, 2]
    n, k = 3, 3
    counts = np.array([[[a[i], b[i], c[i]].count(j) for j in range(k)] for i in range(len(a))])
    p_i = ((counts ** 2).sum(1) - n) / (n * (n - 1))
    p_j = counts.sum(0) / counts.sum()
    expected = (p_i.mean() - (p_j ** 2).sum()) / (1 - (p_j ** 2).sum())
    assert agreement(rows({"a": a, "b": b, "c": c}))["team/label_kappa"] == pytest.approx(expected)


def test_masks_get_their_mean_pairwise_iou():
    m1, m2 = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    m1[:2, :2] = True  # 4 px
    m2[:2, :3] = True  # 6 px, 4 shared
    ops = [{"question": "relevance", "key": "7", "teacher": t, "answer": {"relevant": encode_mask(m)}}
           for t, m in (("a", m1), ("b", m2))]
    assert agreement(ops)["team/relevance_iou"] == pytest.approx(4 / 6)


def test_caipi_corrections_get_the_jaccard_of_the_marked_segments():
    import exil.caipi.questions  # noqa: F401 - registers the kind

    ops = [{"question": "correct_explanation", "key": "3", "teacher": t, "answer": a}
           for t, a in (("a", [1, 4, 7]), ("b", [4, 7, 9, 12]))]
    assert agreement(ops)["team/correct_explanation_jaccard"] == pytest.approx(2 / 5)  # {4, 7} of {1, 4, 7, 9, 12}


def test_xal_explanations_get_the_token_f1_of_the_gold_label_s():
    a = {"label": 1, "explanations": ["x", "The acting is great and funny"]}
    b = {"label": 1, "explanations": ["y", "great acting, very funny"]}
    ops = [{"question": "explain_label", "key": "5", "teacher": t, "answer": x} for t, x in (("a", a), ("b", b))]
    # shared tokens: acting, great, funny = 3; precision 3/6, recall 3/4
    assert agreement(ops)["team/explain_label_token_f1"] == pytest.approx(2 * (3 / 6) * (3 / 4) / (3 / 6 + 3 / 4))


def test_alice_sentences_get_the_jaccard_of_the_parts_the_run_s_parser_finds():
    from types import SimpleNamespace

    import exil.alice.questions  # noqa: F401 - registers the kind
    from exil.alice.parser import SemanticParser

    a = "the shirt has a collar and long sleeves while the dress has a long skirt"
    b = "a shirt's sleeves and buttons, a dress's hemline"
    ops = [{"question": "contrast_classes", "key": "0-3", "teacher": t, "answer": x} for t, x in (("a", a), ("b", b))]
    # by hand: a names collar, sleeve, hem (skirt); b names sleeve, placket (buttons), hem (hemline) → {sleeve, hem} of 4
    assert agreement(ops)["team/contrast_classes_parts_jaccard"] == pytest.approx(2 / 4)
    # the run's own lexicon decides what a sentence says: one that knows only sleeves sees full agreement
    only_sleeves = SimpleNamespace(parser=SemanticParser({"sleeves": "sleeve"}))
    assert agreement(ops, only_sleeves)["team/contrast_classes_parts_jaccard"] == 1.0


def test_the_labels_of_xal_answers_count_in_the_label_kappa():
    """An explain_label answer carries a label (one question asks both): its labels join the κ, by hand here."""
    def xal(label):
        return {"label": label, "explanations": ["a", "b"]}

    ops = [{"question": "explain_label", "key": str(i), "teacher": t, "answer": xal(y)}
           for t, ys in (("a", [0, 1, 1, 0]), ("b", [0, 1, 0, 0])) for i, y in enumerate(ys)]
    got = agreement(ops)
    po, pe = 3 / 4, (2 / 4) * (3 / 4) + (2 / 4) * (1 / 4)  # a: two 0s two 1s; b: three 0s one 1
    assert got["team/label_kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert got["team/label_agreement"] == po and got["team/disagreements"] == 1
    assert "team/explain_label_token_f1" in got
