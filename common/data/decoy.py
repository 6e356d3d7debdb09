"""Decoy MNIST / decoy Fashion-MNIST (Ross, Hughes & Doshi-Velez 2017, "Right for the Right
Reasons", IJCAI; section 4.2 and their ``decoy_mnist.py``).

Every image gets a ``patch_size`` x ``patch_size`` swatch in one of its four corners, the corner
drawn at random per image (top or bottom, left or right, each with probability 1/2). In training
data the swatch's shade encodes the label: ``(255 - shade_step * y) / 255`` with ``shade_step`` = 25
(white for class 0, dark grey for class 9); in test data it is the shade of a label drawn uniformly
at random, so a model that learned the swatch fails at test. "Training data" is the pool and any
validation split taken from it; "test data" is the test set.

Each item carries, besides ``x`` and ``y``:

* ``decoy``: bool (1, H, W), the swatch (the irrelevant pixels, Ross et al.'s annotation A);
* ``mask``: bool (1, H, W), the relevant pixels: the object, i.e. pixels of the original image
  brighter than ``mask_threshold``, minus the swatch;
* ``decoy_y``: the label whose shade the swatch shows (``y`` in training, random at test).

Decoys are a deterministic function of ``decoy_seed`` (fixed by default, independent of the run
seed, so every run sees the same decoyed data), with separate random streams for pool, validation
and test.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from exil.common.data.items import TensorItems
from exil.common.data.digits import DigitsDataModule
from exil.common.data.mnist import FashionMNISTDataModule, MNISTDataModule
from exil.common.errors import ConfigError


class Decoyed(NamedTuple):
    x: torch.Tensor  # (N, C, H, W) images with the swatch
    mask: torch.Tensor  # (N, 1, H, W) bool, relevant pixels (object minus swatch)
    decoy: torch.Tensor  # (N, 1, H, W) bool, the swatch
    decoy_y: torch.Tensor  # (N,) the label the swatch's shade encodes


def add_decoys(
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    *,
    randomize: bool,
    num_classes: int = 10,
    patch_size: int = 4,
    corner_offset: int = 0,
    shade_step: float = 25.0,
    mask_threshold: float = 0.0,
) -> Decoyed:
    """Put a label-coding swatch in a random corner of every image of ``x`` (N, C, H, W) in [0, 1].

    Args:
        x: the images; not modified.
        y: their labels (N,).
        generator: the source of randomness (corner, and the shown label when ``randomize``).
        randomize: False for training data (shade of ``y``), True for test data (shade of a random label).
        num_classes: labels are 0..num_classes-1.
        patch_size: side of the square swatch, in pixels.
        corner_offset: distance of the swatch from the image borders, in pixels (0 = in the corner).
        shade_step: shade decrement per class on the 0..255 scale: shade = (255 - shade_step * label) / 255.
        mask_threshold: pixels of the original image above it are relevant (``mask``).
    """
    if x.dim() != 4:
        raise ValueError(f"add_decoys expects (N, C, H, W) images, got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    if patch_size < 1 or corner_offset < 0 or corner_offset + patch_size > min(h, w):
        raise ConfigError(f"a {patch_size}x{patch_size} swatch at offset {corner_offset} does not fit a {h}x{w} image")
    if not 0 <= shade_step * (num_classes - 1) <= 255:
        raise ConfigError(f"shade_step={shade_step} x {num_classes - 1} classes leaves the 0..255 range")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    shown = torch.randint(num_classes, (n,), generator=generator) if randomize else y.long().clone()
    top = torch.randint(2, (n,), generator=generator).bool()
    left = torch.randint(2, (n,), generator=generator).bool()
    row0 = torch.where(top, corner_offset, h - corner_offset - patch_size)
    col0 = torch.where(left, corner_offset, w - corner_offset - patch_size)
    rows, cols = torch.arange(h), torch.arange(w)
    in_rows = (rows >= row0[:, None]) & (rows < row0[:, None] + patch_size)  # (N, H)
    in_cols = (cols >= col0[:, None]) & (cols < col0[:, None] + patch_size)  # (N, W)
    decoy = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)  # (N, 1, H, W)
    shade = ((255.0 - shade_step * shown.to(x.dtype)) / 255.0).view(n, 1, 1, 1)
    out = torch.where(decoy, shade, x)
    mask = (x > mask_threshold).any(dim=1, keepdim=True) & ~decoy
    return Decoyed(out, mask, decoy, shown)


class _DecoyMixin:
    """Adds Ross et al.'s decoys to what the plain data module's ``load`` returns (see the module docstring).

    Args:
        decoy_seed: seed of the decoys (fixed, independent of the run seed).
        patch_size, corner_offset, shade_step, mask_threshold: see :func:`add_decoys`.
        **kwargs: the plain data module's arguments.

    ``mask`` (relevant pixels), ``decoy`` (the patch) and ``decoy_y`` (the label the patch shows) are
    ground truth for oracles (``oracle_fields``): loaders never serve them; a simulated teacher
    reads them with ``ground_truth(idx, field)``.
    """

    oracle_fields = ("mask", "decoy", "decoy_y")
    #: the known confounder: what a simulated teacher marks irrelevant (``oracle.irrelevant_field=auto``), and
    #: what the wrong-reason score and worst-group accuracy are measured on (:mod:`exil.common.explain.confounder`)
    confounder_field = "decoy"
    confounder_label_field = "decoy_y"

    def __init__(
        self,
        decoy_seed: int = 0,
        patch_size: int = 4,
        corner_offset: int = 0,
        shade_step: float = 25.0,
        mask_threshold: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.decoy_seed = decoy_seed
        self.confounder_cell = patch_size  # LIME's wrong-reason score explains cells of the swatch's size
        self.decoy_args = dict(
            patch_size=patch_size, corner_offset=corner_offset, shade_step=shade_step, mask_threshold=mask_threshold
        )

    def load(self) -> tuple[TensorItems, TensorItems | None, TensorItems]:
        pool, val, test = super().load()
        num_classes = int(pool.targets.max()) + 1
        pool_seed, val_seed, test_seed = (int(s) for s in np.random.SeedSequence(self.decoy_seed).generate_state(3))
        return (
            self._decoy(pool, pool_seed, num_classes, randomize=False),
            None if val is None else self._decoy(val, val_seed, num_classes, randomize=False),
            self._decoy(test, test_seed, num_classes, randomize=True),
        )

    def _decoy(self, items: TensorItems, seed: int, num_classes: int, randomize: bool) -> TensorItems:
        fields = items.fields
        generator = torch.Generator().manual_seed(seed)
        d = add_decoys(
            fields["x"], fields["y"], generator, randomize=randomize, num_classes=num_classes, **self.decoy_args
        )
        return TensorItems(**{**fields, "x": d.x, "mask": d.mask, "decoy": d.decoy, "decoy_y": d.decoy_y})


class DecoyMNISTDataModule(_DecoyMixin, MNISTDataModule):
    """Decoy MNIST: :class:`MNISTDataModule` (either source) with Ross et al.'s label-coding corner swatches."""


class DecoyFashionMNISTDataModule(_DecoyMixin, FashionMNISTDataModule):
    """Decoy Fashion-MNIST: :class:`FashionMNISTDataModule` with Ross et al.'s label-coding corner swatches."""


class DecoyDigitsDataModule(_DecoyMixin, DigitsDataModule):
    """Decoy digits: scikit-learn's 8×8 digits (embedded, no download) with the same swatches, 2×2 by
    default — a masked dataset small enough for tests and demos of the explanation methods."""
