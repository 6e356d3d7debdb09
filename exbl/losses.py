"""The explanation losses of exbl's methods, as pure functions of tensors.

* :func:`rrr_penalty` — Ross, Hughes & Doshi-Velez (2017), eq. 1, second term: per item
  ``‖A ⊙ ∂/∂x Σ_k log p(k | x)‖²`` with ``A`` the mask of irrelevant input (broadcast over channels);
  items without an annotation contribute 0. RBR (:mod:`exil.exbl.rbr`) applies it to influence maps.
* :func:`head_gradient_sq_norm` — per item ``‖∇_{W,b} CE(W a + b, y)‖² = ‖p − e_y‖² (‖a‖² + 1)``,
  the squared norm of the cross-entropy's gradient w.r.t. a linear head (RBR's influence).
* :func:`downsample_mask` — a (B, H, W) mask as the fraction of each cell of an (h, w) grid it covers.
* :func:`rrr_g_penalty` — RRR-G (Schramowski et al. 2020): per item ``Σ (A↓ ⊙ E)²`` on a Grad-CAM map ``E``.
* :func:`hint_loss` — HINT as the XIL typology trains it (Friedrich et al. 2023): per item
  ``mean (E − R↓)²`` between a Grad-CAM map and the relevant mask.
* :func:`cdep_penalty` — CDEP (Rieger et al. 2020): per item ``1/C Σ_k |β_k|`` (the paper's form) or
  ``1/C Σ_k softmax([β_k, γ_k])_0`` (its code's) from the contextual decomposition of the logits
  (:mod:`exil.exbl.contextual_decomposition`).
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


def head_gradient_sq_norm(head_input: torch.Tensor, probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-item ``‖∂CE/∂W‖² + ‖∂CE/∂b‖²`` (B,) of logits ``W a + b``: ``∂CE/∂W = (p − e_y) aᵀ`` and
    ``∂CE/∂b = p − e_y``, so the sum is ``‖p − e_y‖² (‖a‖² + 1)``. ``head_input`` is ``a`` (B, D),
    ``probs`` is ``p = softmax(W a + b)`` (B, C)."""
    residual = probs - F.one_hot(y, probs.shape[-1]).to(probs.dtype)
    return residual.pow(2).sum(-1) * (head_input.pow(2).sum(-1) + 1)


def downsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The fraction of each cell of an ``size`` grid that the (B, H, W) mask covers (B, h, w), by
    area averaging (adaptive average pooling): a cell half inside the mask gets 0.5."""
    return F.adaptive_avg_pool2d(mask.unsqueeze(1).float(), size).squeeze(1)


def _masked(per_item: torch.Tensor, annotated: torch.Tensor | None) -> torch.Tensor:
    return per_item if annotated is None else per_item * annotated.to(per_item.dtype)


def rrr_g_penalty(maps: torch.Tensor, irrelevant: torch.Tensor, annotated: torch.Tensor | None = None) -> torch.Tensor:
    """Per-item ``Σ_cells (A↓ ⊙ E)²`` (B,): Grad-CAM maps ``E`` (B, h, w) at their own resolution and
    the irrelevant masks (B, H, W) downsampled to it (:func:`downsample_mask`)."""
    a = downsample_mask(irrelevant, tuple(maps.shape[-2:])).to(maps.dtype)
    return _masked((a * maps).pow(2).flatten(1).sum(1), annotated)


def hint_loss(maps: torch.Tensor, relevant: torch.Tensor, annotated: torch.Tensor | None = None) -> torch.Tensor:
    """Per-item ``1/(hw) Σ_cells (E − R↓)²`` (B,): Grad-CAM maps ``E`` (B, h, w) in [0, 1] against the
    relevant masks (B, H, W) downsampled to their resolution (:func:`downsample_mask`)."""
    r = downsample_mask(relevant, tuple(maps.shape[-2:])).to(maps.dtype)
    return _masked((maps - r).pow(2).flatten(1).mean(1), annotated)


CDEP_FORMS = ("l1", "softmax")


def cdep_penalty(beta: torch.Tensor, gamma: torch.Tensor, annotated: torch.Tensor | None = None,
                 form: str = "l1") -> torch.Tensor:
    """Per-item CDEP penalty (B,) from the logits' parts ``β`` (due to the masked region) and ``γ`` (due to
    the rest), both (B, C). ``l1``: ``1/C Σ_k |β_k|``, the L1 distance of the region's CD score to a prior
    of zero importance; ``softmax``: ``1/C Σ_k softmax([β_k, γ_k])_0 = 1/C Σ_k σ(β_k − γ_k)``."""
    if form == "l1":
        per_item = beta.abs().mean(-1)
    elif form == "softmax":
        per_item = torch.sigmoid(beta - gamma).mean(-1)
    else:
        raise ValueError(f"unknown CDEP penalty {form!r}; choose one of: {', '.join(CDEP_FORMS)}")
    return _masked(per_item, annotated)


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
