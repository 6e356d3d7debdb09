"""Image segmentations for LIME: integer maps (H, W) whose labels are 0..S-1, one per superpixel.

* :func:`grid` — square (or rectangular) cells of ``cell`` pixels, numbered row-major:
  ``label(i, j) = (i // ch) · ⌈W / cw⌉ + (j // cw)``; the last row / column of cells is smaller
  when ``cell`` does not divide the image. The default for small images (28×28 MNIST with
  ``cell=4``: 7×7 = 49 segments).
* :func:`slic` — SLIC superpixels (Achanta et al., TPAMI 2012) through scikit-image.
* :func:`quickshift` — quickshift (Vedaldi & Soatto, ECCV 2008) through scikit-image, with the
  ``lime`` package's defaults (``kernel_size=4, max_dist=200, ratio=0.2``).

Images are tensors (C, H, W); maps come back as ``torch.long`` on the image's device, relabelled
to consecutive labels 0..S-1. :func:`segmenter` builds any of them from a name (a Hydra config:
``{_target_: exil.common.explain.segmentation.segmenter, kind: grid, cell: 4}``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

import numpy as np
import torch

from exil.common.errors import ConfigError

Segmenter = Callable[[torch.Tensor], torch.Tensor]


def grid(h: int, w: int, cell: int | tuple[int, int] = 4, device: torch.device | str | None = None) -> torch.Tensor:
    """A grid of ``cell``-pixel cells over an ``h``×``w`` image (see the module docstring), (H, W) long."""
    ch, cw = (cell, cell) if isinstance(cell, int) else (int(cell[0]), int(cell[1]))
    if ch < 1 or cw < 1:
        raise ConfigError(f"grid cells must be at least 1 pixel, got {cell}")
    rows = torch.arange(h, device=device) // ch
    cols = torch.arange(w, device=device) // cw
    return rows[:, None] * math.ceil(w / cw) + cols[None, :]


def relabel(segments: np.ndarray) -> np.ndarray:
    """The same partition with labels 0..S-1 (in order of the original labels)."""
    return np.unique(segments, return_inverse=True)[1].reshape(segments.shape)


def _hwc(image: torch.Tensor) -> np.ndarray:
    if image.dim() != 3:
        raise ValueError(f"segmentation expects one (C, H, W) image, got shape {tuple(image.shape)}")
    return image.detach().permute(1, 2, 0).cpu().double().numpy()


def slic(image: torch.Tensor, n_segments: int = 100, compactness: float = 10.0, sigma: float = 1.0,
         **kwargs: Any) -> torch.Tensor:
    """SLIC superpixels of ``image`` (C, H, W); grey images are segmented on intensity alone.

    ``compactness`` trades colour proximity for space: 10 suits colour images (SLIC works in Lab
    space); grey images in [0, 1] want about 0.1. Other arguments go to ``skimage.segmentation.slic``.
    """
    from skimage.segmentation import slic as sk_slic

    hwc = _hwc(image)
    grey = hwc.shape[-1] == 1
    seg = sk_slic(hwc[..., 0] if grey else hwc, n_segments=n_segments, compactness=compactness, sigma=sigma,
                  channel_axis=None if grey else -1, start_label=0, **kwargs)  # fmt: skip
    return torch.from_numpy(relabel(seg)).long().to(image.device)


def quickshift(image: torch.Tensor, kernel_size: float = 4, max_dist: float = 200.0, ratio: float = 0.2,
               sigma: float = 0.0, seed: int = 42, **kwargs: Any) -> torch.Tensor:
    """Quickshift superpixels of ``image`` (C, H, W), with the ``lime`` package's defaults.

    Quickshift works on colour (it converts RGB to Lab): a grey image is repeated to three channels
    first, as ``lime`` does. Other arguments go to ``skimage.segmentation.quickshift``.
    """
    from skimage.segmentation import quickshift as sk_quickshift

    hwc = _hwc(image)
    if hwc.shape[-1] == 1:
        hwc = np.repeat(hwc, 3, axis=-1)
    seg = sk_quickshift(hwc, kernel_size=kernel_size, max_dist=max_dist, ratio=ratio, sigma=sigma, rng=seed, **kwargs)
    return torch.from_numpy(relabel(seg)).long().to(image.device)


def _grid_of(image: torch.Tensor, cell: int | tuple[int, int]) -> torch.Tensor:
    return grid(image.shape[-2], image.shape[-1], cell, device=image.device)


KINDS: dict[str, Callable[..., torch.Tensor]] = {"grid": _grid_of, "slic": slic, "quickshift": quickshift}


def segmenter(kind: str = "grid", **kwargs: Any) -> Segmenter:
    """A function image (C, H, W) → segment map (H, W): ``kind`` is grid | slic | quickshift, ``kwargs``
    its arguments (``cell`` for the grid, default 4)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown segmentation {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "grid":
        kwargs.setdefault("cell", 4)
    return partial(KINDS[kind], **kwargs)
