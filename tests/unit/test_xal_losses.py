"""XAL's formulas against hand-computed values (Luo et al. 2024, §2.2–2.3)."""

from __future__ import annotations

import math

import pytest
import torch

from exil.xal.losses import (
    explanation_mask,
    generation_loss,
    predictive_entropy,
    ranking_loss,
    selection_scores,
    sequence_logprob,
)


def test_ranking_loss_hand_computed():
    p = torch.tensor([[-1.0, -0.5, -2.0], [-0.2, -0.3, -0.1], [-0.1, -0.9, -0.8]])
    # row 0: max(0, −0.5+1) + max(0, −2+1) = 0.5; row 1: 0 + 0.1; row 2: reasonable above both → 0
    assert torch.allclose(ranking_loss(p), torch.tensor([0.5, 0.1, 0.0]))


def test_selection_scores_hand_computed():
    c = torch.tensor([0.0, math.log(2.0)])  # softmax(c) = [1/3, 2/3]
    p = torch.tensor([-1.0, -3.0])  # softmax(−p) = [1/(1+e²), e²/(1+e²)]
    e2 = math.exp(2)
    want = torch.tensor([(1 / 3) * (1 / (1 + e2)) + (2 / 3) * (1 / 3), (1 / 3) * (e2 / (1 + e2)) + (2 / 3) * (2 / 3)])
    s = selection_scores(c, p, lam=0.5)
    assert torch.allclose(s, want, atol=1e-6) and abs(float(s.sum()) - 1) < 1e-6
    assert torch.allclose(selection_scores(None, p), torch.tensor([1 / (1 + e2), e2 / (1 + e2)]))  # w/o ME
    assert torch.allclose(selection_scores(c, None), torch.tensor([1 / 3, 2 / 3]))
    with pytest.raises(ValueError):
        selection_scores(None, None)


def test_length_normalised_logprob_and_generation_loss():
    logits = torch.zeros(2, 3, 4)  # uniform over 4 tokens: every log-probability is −ln 4
    logits[1, 0, 2] = math.log(3.0)  # item 1, token 0: P(2) = 3/6
    targets = torch.tensor([[1, 2, 0], [2, 1, 0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    p = sequence_logprob(logits, targets, mask)
    want1 = (math.log(0.5) + 2 * math.log(1 / 4)) / 3  # 3/(3+1+1+1), then uniform
    assert torch.allclose(p, torch.tensor([-math.log(4), want1]), atol=1e-6)
    # token-mean over the 5 target tokens of the batch
    assert abs(float(generation_loss(logits, targets, mask)) - (-(2 * -math.log(4) + 3 * want1) / 5)) < 1e-6


def test_entropy_and_explanation_mask():
    assert torch.allclose(predictive_entropy(torch.tensor([[0.0, 0.0], [100.0, 0.0]])), torch.tensor([math.log(2), 0.0]))
    tokens = torch.tensor([[5, 6, 3, 0, 0], [5, 3, 7, 3, 0], [5, 0, 7, 8, 9]])
    want = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(explanation_mask(tokens, eos_id=3), want)
