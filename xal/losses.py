"""XAL's losses and scores (Luo et al., NAACL 2024, §2.2–2.3), as pure tensor functions.

* Length-normalised log-probability of a sequence ``e`` given the input ``x`` (teacher forcing):
  ``p(e) = (1/|e|) Σ_t log P(e_t | e_<t, x)``, over the tokens that are not padding.
* Generation loss (§2.2): ``L_gen = −(1/Σ|e_0|) Σ_i Σ_t log P(e_0,t | e_0,<t, x_i)``, the token-mean
  negative log-likelihood of the reasonable (gold-label) explanations ``e_0`` of a batch.
* Ranking loss (§2.2): ``L_rank = Σ_{r>0} max(0, p_r − p_0)`` per item, where ``e_0`` is the reasonable
  explanation and ``e_1 … e_{k−1}`` the unreasonable ones (explanations of the wrong labels); averaged
  over the batch's items.
* Selection score (§2.3): ``s_i = λ/(1+λ) · softmax(−p)_i + 1/(1+λ) · softmax(c)_i``, both softmaxes over
  the scored pool, with ``p_i`` the score of the explanation the model generates for item ``i`` and
  ``c_i = −Σ_y P(y|x_i) log P(y|x_i)`` its predictive entropy (λ = 0.5 in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from exil.common.strategies.heuristics import entropy


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log P(target_t | ...)`` for every position: (..., L, V) logits, (..., L) targets → (..., L)."""
    return -F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten().long(), reduction="none").view(targets.shape)


def per_sequence_mean(token_lp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``p`` from token log-probabilities: the mean over each sequence's non-padding tokens, (N, L) → (N,)."""
    m = mask.to(torch.float32)
    return (token_lp * m).sum(-1) / m.sum(-1).clamp_min(1.0)


def token_mean_nll(token_lp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_gen`` from token log-probabilities: minus their mean over all non-padding tokens."""
    m = mask.to(torch.float32)
    return -(token_lp * m).sum() / m.sum().clamp_min(1.0)


def sequence_logprob(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Length-normalised log-probability ``p`` of each sequence: (N, L, V), (N, L), (N, L) → (N,)."""
    return per_sequence_mean(token_logprobs(logits, targets), mask)


def generation_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_gen``: the token-mean negative log-likelihood over all non-padding target tokens."""
    return token_mean_nll(token_logprobs(logits, targets), mask)


def ranking_loss(p: torch.Tensor) -> torch.Tensor:
    """``L_rank`` per item from (B, k) scores whose column 0 is the reasonable explanation → (B,)."""
    return (p[:, 1:] - p[:, :1]).clamp_min(0).sum(-1)


def predictive_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``c = −Σ_y P(y|x) log P(y|x)`` from (N, C) logits → (N,)."""
    return entropy(logits.float().softmax(-1))


def selection_scores(entropy: torch.Tensor | None, explanation_score: torch.Tensor | None, lam: float = 0.5) -> torch.Tensor:
    """``s`` of the module docstring; with one of the two terms ``None``, that term's softmax alone
    (w/o ME: ``softmax(−p)``; entropy only: ``softmax(c)``, the ranking of maximum entropy)."""
    if entropy is None and explanation_score is None:
        raise ValueError("selection needs the entropy, the explanation score, or both")
    if explanation_score is None:
        return entropy.float().softmax(0)
    if entropy is None:
        return (-explanation_score.float()).softmax(0)
    return lam / (1 + lam) * (-explanation_score.float()).softmax(0) + 1 / (1 + lam) * entropy.float().softmax(0)


def explanation_mask(tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Which generated tokens belong to the explanation: everything up to and including the first end
    token (all of them if there is none); ``generate`` pads only after it."""
    is_eos = (tokens == eos_id).long()
    return (is_eos.cumsum(-1) - is_eos) == 0
