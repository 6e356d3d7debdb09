"""Tensors as arrays to look at: what the terminal's sheets and the teacher page draw."""

from __future__ import annotations

import numpy as np
import torch


def as_display(x: torch.Tensor) -> np.ndarray:
    """A (C, H, W) or (H, W) tensor in [0, 1] as an (H, W) or (H, W, 3) array for display."""
    a = x.detach().float().cpu().numpy()
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)
    return np.clip(a, 0, 1)
