"""The explanation losses of the three methods, as pure functions of tensors.

* :func:`rrr_penalty` — Ross, Hughes & Doshi-Velez (2017), eq. 1, second term: per item
  ``‖A ⊙ ∂/∂x Σ_k log p(k | x)‖²`` with ``A`` the mask of irrelevant input (broadcast over channels);
  items without an annotation contribute 0.
* :func:`triplet_explanation_loss` — eXBL (Hagos et al. 2023, eq. 2): per item
  ``max(d(E, E⁺) − d(E, E⁻) + margin, 0)`` between its Grad-CAM ``E`` and the good / bad exemplar
  maps ``E⁺``, ``E⁻``.
* :func:`alignment_kl` — explanation-guided alternating training (Tao & Shokri 2025): per item
  ``KL(softmax(f(x ⊙ M)) ‖ softmax(g(x)))`` with the masked-input features as the (fixed) target
  and ``g`` the representation being aligned (``m(f(x))``, or ``f(x)`` without a mapping layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DISTANCES = ("rms", "l1", "cosine")


def rrr_penalty(input_grads: torch.Tensor, irrelevant: torch.Tensor, annotated: torch.Tensor | None = None) -> torch.Tensor:
    """Per-item ``Σ (A ⊙ g)²`` (B,); ``irrelevant`` is (B, H, W) or (B, 1|C, H, W), ``input_grads`` (B, C, H, W)."""
    a = irrelevant.to(input_grads.dtype)
    if a.dim() == input_grads.dim() - 1:
        a = a.unsqueeze(1)
    pen = (a * input_grads).pow(2).flatten(1).sum(1)
    return pen if annotated is None else pen * annotated.to(pen.dtype)


def map_distance(maps: torch.Tensor, ref: torch.Tensor, distance: str = "rms") -> torch.Tensor:
    """Per-item distance between maps (B, H, W) and one reference map (H, W).

    ``rms``: ``‖E − R‖₂ / √(HW)`` (Euclidean, independent of the map size); ``l1``: mean ``|E − R|``;
    ``cosine``: ``1 − cos(E, R)``.
    """
    e, r = maps.flatten(1), ref.flatten().unsqueeze(0).to(maps.dtype)
    if distance == "rms":
        return ((e - r).pow(2).mean(1) + 1e-12).sqrt()
    if distance == "l1":
        return (e - r).abs().mean(1)
    if distance == "cosine":
        return 1 - F.cosine_similarity(e, r.expand_as(e), dim=1, eps=1e-8)
    raise ValueError(f"unknown distance {distance!r}; choose one of: {', '.join(DISTANCES)}")


def triplet_explanation_loss(maps: torch.Tensor, good: torch.Tensor, bad: torch.Tensor, margin: float,
                             distance: str = "rms") -> torch.Tensor:
    """Per-item ``max(d(E, good) − d(E, bad) + margin, 0)`` (B,)."""
    return F.relu(map_distance(maps, good, distance) - map_distance(maps, bad, distance) + margin)


def alignment_kl(target_features: torch.Tensor, aligned_features: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-item ``KL(softmax(t / T) ‖ softmax(a / T))`` (B,); the target side gets no gradient."""
    p_log = F.log_softmax(target_features.detach() / temperature, dim=-1)
    q_log = F.log_softmax(aligned_features / temperature, dim=-1)
    return (p_log.exp() * (p_log - q_log)).sum(-1)
