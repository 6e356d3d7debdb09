"""How good an explanation is, and how much independently trained models agree.

**Activation Recall / Precision / F1** of an explanation map ``E`` (B, H, W) against a ground-truth
relevance mask ``M`` (B, H, W) — the measures eXBL (Hagos et al. 2023, section 4) reports:

    AR = |A ∩ M| / |M|        AP = |A ∩ M| / |A|        F1 = 2·AR·AP / (AR + AP)

Threshold convention: each map is first divided by its own maximum (so it lies in [0, 1] whatever
the explainer's scale; absolute values are taken first, so signed input gradients work too), and
the activated set is ``A = {E / max E ≥ threshold}`` with ``threshold = 0.5`` by default. With
``threshold=None`` the soft versions are used: ``AR = Σ E·M / Σ M``, ``AP = Σ E·M / Σ E`` on the
max-normalised map. A map that is zero everywhere activates nothing (AR = AP = 0). Items with an
empty mask are left out of the mean (their recall is undefined). Maps at a coarser resolution
than the mask (a Grad-CAM layer) are upsampled bilinearly first.

**Share of attribution inside a region** (:func:`attribution_share`): ``Σ_{R} |E| / Σ |E|``,
e.g. how much of an input gradient falls on the decoy swatch (Ross et al. 2017's diagnostic).

**Agreement between runs** (:func:`agreement`): the share of test items on which two models
predict the same label; over several runs, the mean over all pairs (Tao & Shokri 2025 report it as
a measure of run-to-run variance).
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _normalised(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    maps = maps.detach().float().abs()
    if maps.dim() == 4:  # (B, C, H, W) attributions: collapse channels by their maximum
        maps = maps.amax(dim=1)
    if maps.shape[-2:] != size:
        maps = F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return maps / maps.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)


def as_mask(mask: torch.Tensor) -> torch.Tensor:
    """A bool mask without its channel dimension: (B, C, H, W) → (B, H, W) (any channel); others as they are."""
    mask = mask.detach()
    if mask.dim() == 4:
        mask = mask.any(dim=1) if mask.dtype == torch.bool else mask.amax(dim=1) > 0.5
    return mask.bool() if mask.dtype == torch.bool else mask > 0.5


def activation_scores(maps: torch.Tensor, mask: torch.Tensor, threshold: float | None = 0.5) -> dict[str, torch.Tensor]:
    """Per-item activation recall, precision and F1, each (B,); recall is NaN where the mask is empty."""
    m = as_mask(mask).float()
    e = _normalised(maps.to(m.device), tuple(m.shape[-2:]))
    if threshold is not None:
        e = (e >= threshold).float() * (e > 0).float()
    inter = (e * m).flatten(1).sum(1)
    m_sum, e_sum = m.flatten(1).sum(1), e.flatten(1).sum(1)
    recall = torch.where(m_sum > 0, inter / m_sum.clamp_min(1e-12), torch.full_like(inter, float("nan")))
    precision = torch.where(e_sum > 0, inter / e_sum.clamp_min(1e-12), torch.zeros_like(inter))
    r0 = torch.nan_to_num(recall)
    f1 = torch.where(r0 + precision > 0, 2 * r0 * precision / (r0 + precision).clamp_min(1e-12), torch.zeros_like(r0))
    return {"recall": recall, "precision": precision, "f1": f1}


def attribution_share(maps: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per item, the share of ``Σ |E|`` that lies inside ``region`` (0 for an all-zero map)."""
    r = as_mask(region).float()
    e = maps.detach().float().abs()
    if e.dim() == 4:
        e = e.sum(dim=1)
    if e.shape[-2:] != r.shape[-2:]:
        e = F.interpolate(e.unsqueeze(1), size=tuple(r.shape[-2:]), mode="bilinear", align_corners=False).squeeze(1)
    total = e.flatten(1).sum(1)
    return (e * r.to(e.device)).flatten(1).sum(1) / total.clamp_min(1e-12)


def agreement(predictions: Sequence[np.ndarray | torch.Tensor]) -> float:
    """Mean over all pairs of runs of the share of items on which both predict the same label."""
    preds = [np.asarray(p.cpu() if torch.is_tensor(p) else p) for p in predictions]
    if len(preds) < 2:
        raise ValueError("agreement needs the predictions of at least two runs")
    if len({p.shape for p in preds}) != 1:
        raise ValueError(f"runs predicted different numbers of items: {[p.shape for p in preds]}")
    return float(np.mean([np.mean(a == b) for a, b in combinations(preds, 2)]))
