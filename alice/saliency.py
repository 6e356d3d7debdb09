"""Saliency maps of the queried class pairs (Simonyan, Vedaldi & Zisserman 2014): for each image,
max over channels of |∂ score_y(x) / ∂x|, where score_y is the model's log-probability of the image's
label. ALICE saves them for the pair's images before and after the expert's explanation is used, to
see whether the model moved its attention to the parts the expert named."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from exil.common.explain.gradients import score_gradients


def saliency(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, H, W) saliency maps, one batched backward pass, each scaled to max 1."""
    was = module.training
    module.eval()
    try:
        with torch.enable_grad():
            s = score_gradients(module, x, y, log_prob=True).abs().amax(dim=1)
    finally:
        module.train(was)
    return s / s.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)


def save_pair_saliency(images: torch.Tensor, maps: torch.Tensor, titles: Sequence[str], path: Path,
                       suptitle: str = "") -> Path:
    """A sheet: for each image, the image over its saliency map (red), two rows per class pair."""
    import matplotlib.pyplot as plt

    n = len(images)
    cols = max(1, (n + 1) // 2)
    fig, axes = plt.subplots(2, cols, figsize=(2 * cols, 4.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, x, m, t in zip(axes.ravel(), images, maps, titles):
        a = x.detach().float().cpu()
        a = a[0] if a.shape[0] == 1 else a[:3].permute(1, 2, 0)
        ax.imshow(a.clamp(0, 1).numpy(), cmap="gray" if a.dim() == 2 else None)
        ax.imshow(m.detach().float().cpu().numpy(), cmap="Reds", alpha=0.55, vmin=0, vmax=1)
        ax.set_title(t, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=80)
    plt.close(fig)
    return path


def first_of_each(labels: np.ndarray, items: np.ndarray, classes: Sequence[int], n: int) -> list[int]:
    """The first ``n`` items of each of ``classes`` (in pool order)."""
    return [int(i) for c in classes for i in items[labels == c][:n]]
