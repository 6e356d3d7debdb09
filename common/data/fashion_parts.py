"""Fashion-MNIST with garment parts: an offline proxy for CUB-200-2011 in ALICE's experiments.

CUB (birds with 15 annotated part locations and 312 attributes) cannot be had on machines without
a network; this module gives Fashion-MNIST what ALICE needs of CUB, on real images:

* **few images per class**: the pool is ``images_per_class`` training images of each of the 10
  classes (a seeded draw), as ALICE's k images per species; the test set is the standard 10,000
  (or a stratified ``test_size`` of it);
* **part locations**, computed per image from its silhouette (pixels > 0.2), with the part
  vocabulary of :data:`GARMENT_PART_NAMES`: for tops ``collar`` (top-row centre), ``shoulder``
  (leftmost point of the top three rows), ``sleeve`` (the lowest of the leftmost points in the upper
  three quarters: the cuff of a long sleeve, the end of a short one), ``placket`` (centre at 40 % of
  the height), ``waist`` (centre at 55 %) and ``hem`` (bottom-row centre); for trousers ``waist``
  (top centre), ``leg`` (bottom of the left leg) and ``hem``; for shoes the ``shaft`` (top-row
  centre: shoes point left in Fashion-MNIST, the shaft is on the heel side), the ``toe`` (the
  extreme column away from the shaft), the ``heel`` (bottom corner on the shaft side), the ``sole``
  (bottom centre), the ``upper`` (centroid) and, for sandals, the ``strap``; for bags ``handle``
  (top centre), ``strap`` and ``hem``; dresses also a shoulder ``strap``. A part that a class does not
  have is marked invisible. These are silhouette heuristics, not annotations: a crop around them
  contains the named part in most images, as CUB's annotated locations do;
* **an expert's contrastive explanations**: ``fashion_mnist_contrasts.jsonl`` beside this file, one
  sentence per class pair (all 45), written for this proxy in the style of the paper's experts
  ("A T-shirt has short sleeves that end near the shoulder, while a pullover has long sleeves
  reaching down to the cuffs");
* **coarse groups** for the coarse accuracy, as CUB's subfamilies: tops (T-shirt/top, Pullover,
  Dress, Coat, Shirt), shoes (Sandal, Sneaker, Ankle boot) and others (Trouser, Bag).

Images are upsampled (bilinear) from 28 × 28 to ``image_size`` so that an ImageNet backbone has an
activation map to attend over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from exil.common.acquire import require
from exil.common.data.base import stratified_per_class, stratified_subset
from exil.common.data.idx import read_idx_dataset
from exil.common.data.mnist import FASHION_MNIST_CLASSES
from exil.common.data.parts import PartsDataModule, part_items
from exil.common.errors import ConfigError, ExilError

GARMENT_PART_NAMES = ["collar", "shoulder", "sleeve", "placket", "waist", "hem", "strap", "leg",
                      "toe", "heel", "sole", "shaft", "upper", "handle"]
TOPS, TROUSER, DRESS, SHOES, SANDAL, BAG = (0, 2, 4, 6), 1, 3, (5, 7, 9), 5, 8
VISIBLE = {  # class -> parts it has
    **{c: ("collar", "shoulder", "sleeve", "placket", "waist", "hem") for c in TOPS},
    DRESS: ("collar", "shoulder", "sleeve", "waist", "hem", "strap"),
    TROUSER: ("waist", "leg", "hem"),
    **{c: ("toe", "heel", "sole", "shaft", "upper") for c in SHOES},
    BAG: ("handle", "strap", "hem"),
}
VISIBLE[SANDAL] = VISIBLE[SANDAL] + ("strap",)
VISIBLE_TABLE = np.array([[name in VISIBLE[c] for name in GARMENT_PART_NAMES] for c in range(10)], dtype=np.float32)
COARSE_NAMES = ["tops", "shoes", "others"]
COARSE_OF = [0, 2, 0, 0, 0, 1, 0, 1, 2, 1]
CONTRASTS_FILE = Path(__file__).with_name("fashion_mnist_contrasts.jsonl")


def garment_part_locations(images: np.ndarray, labels: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """(N, P, 3) part locations [column, row, visible] in 28 × 28 pixel coordinates (pixel centres at +0.5),
    from the silhouettes of ``images`` (N, 28, 28) in [0, 1], all images at once (module docstring)."""
    x = images.astype(np.float32)
    x = x / 255.0 if images.dtype == np.uint8 else x
    fg = x > threshold
    n, h, w = fg.shape
    rows, cols = np.arange(h), np.arange(w)
    any_row, any_col = fg.any(2), fg.any(1)
    if not any_row.any(1).all():
        raise ExilError("an image has no pixel above the silhouette threshold; cannot locate its parts")
    t = any_row.argmax(1)
    b = h - 1 - any_row[:, ::-1].argmax(1)
    left, right = any_col.argmax(1), w - 1 - any_col[:, ::-1].argmax(1)
    height = (b - t).astype(np.float32)
    count = fg.sum(2)
    row_mean = (fg * cols).sum(2) / np.maximum(count, 1)  # (N, H) mean column of each row's pixels
    leftmost = np.where(fg, cols, w).min(2)  # (N, H)
    mass = fg.sum((1, 2))
    cx = (fg * cols[None, None]).sum((1, 2)) / mass
    cy = (fg * rows[None, :, None]).sum((1, 2)) / mass
    ar = np.arange(n)

    def at(frac):  # row at a fraction of the height
        return np.clip(np.round(t + frac * height), 0, h - 1).astype(int)

    def top_mean(k=3):  # mean column of the top k rows' pixels
        sel = (rows[None] >= t[:, None]) & (rows[None] < t[:, None] + k)
        return (row_mean * count * sel).sum(1) / np.maximum((count * sel).sum(1), 1)

    in_upper = (rows[None] >= t[:, None]) & (rows[None] <= at(0.75)[:, None])
    sleeve_row = np.argmin(np.where(in_upper, leftmost * 100 - rows[None], 10 ** 6), axis=1)
    shoulder_rows = (rows[None] >= t[:, None]) & (rows[None] < t[:, None] + 3)
    shoulder_col = np.where(shoulder_rows, leftmost, w).min(1)
    shaft_col = top_mean()
    shaft_right = shaft_col >= cx
    toe_col = np.where(shaft_right, left, right)
    toe_row = (fg[ar, :, toe_col] * rows).sum(1) / np.maximum(fg[ar, :, toe_col].sum(1), 1)
    bottom_rows = rows[None] >= (b - 2)[:, None]
    leg_sel = fg & bottom_rows[:, :, None] & (cols[None, None] < cx[:, None, None])
    leg_col = (leg_sel * cols).sum((1, 2)) / np.maximum(leg_sel.sum((1, 2)), 1)
    loc = {
        "collar": (top_mean(2), t),
        "shoulder": (shoulder_col, t + 2),
        "sleeve": (leftmost[ar, sleeve_row], sleeve_row),
        "placket": (cx, at(0.4)),
        "waist": (np.where(labels == TROUSER, top_mean(2), cx), np.where(labels == TROUSER, t, at(0.55))),
        "hem": (row_mean[ar, b], b),
        "strap": (np.where(labels == DRESS, shoulder_col + 1, np.where(labels == BAG, top_mean(), cx)),
                  np.where(labels == SANDAL, at(0.3), t + 1)),
        "leg": (leg_col, b - 1),
        "toe": (toe_col, toe_row),
        "heel": (np.where(shaft_right, right, left), b - 1),
        "sole": (cx, b),
        "shaft": (shaft_col, t + 1),
        "upper": (cx, cy),
        "handle": (top_mean(), t),
    }
    out = np.zeros((n, len(GARMENT_PART_NAMES), 3), dtype=np.float32)
    for p, name in enumerate(GARMENT_PART_NAMES):
        col, row = loc[name]
        out[:, p, 0] = np.asarray(col, dtype=np.float32) + 0.5
        out[:, p, 1] = np.asarray(row, dtype=np.float32) + 0.5
    out[:, :, 2] = VISIBLE_TABLE[np.asarray(labels, dtype=np.int64)]
    return out


def read_contrasts(path: str | Path, class_names: list[str]) -> dict[frozenset[int], str]:
    """A bank of contrastive explanations: JSON lines ``{"classes": [P, Q], "explanation": "..."}`` with
    classes as names or indices → {frozenset({p, q}): sentence}."""
    bank: dict[frozenset[int], str] = {}
    names = {n.lower(): i for i, n in enumerate(class_names)}
    for line_no, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        unknown = [c for c in row["classes"] if not isinstance(c, int) and str(c).lower() not in names]
        if unknown:
            raise ExilError(f"{path}:{line_no}: unknown class {unknown[0]!r}; classes: {', '.join(class_names)}")
        pq = [c if isinstance(c, int) else names[str(c).lower()] for c in row["classes"]]
        if len(set(pq)) != 2:
            raise ExilError(f"{path}:{line_no}: 'classes' must name two different classes, got {row['classes']}")
        bank[frozenset(pq)] = str(row["explanation"])
    return bank


class FashionPartsDataModule(PartsDataModule):
    """Fashion-MNIST with garment parts, few images per class (module docstring).

    Args:
        images_per_class: training images per class in the pool (ALICE's k).
        image_size: side the 28 × 28 images are upsampled to.
        test_size: a stratified subset of the 10,000 test images (``None``: all).
        contrasts: the explanation bank (JSON lines); default: the one written for this proxy.
        data_dir, root: where the IDX files are (``exil data fetch fashion_mnist``).
        **kwargs: :class:`PoolDataModule` arguments (its ``seed`` draws the pool).
    """

    part_names = GARMENT_PART_NAMES
    coarse_names = COARSE_NAMES
    coarse_of = COARSE_OF

    def __init__(self, images_per_class: int = 15, image_size: int = 64, test_size: int | None = None,
                 contrasts: str | None = None, data_dir: str = "data", root: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if images_per_class < 1 or image_size < 28:
            raise ConfigError(f"dataset.images_per_class must be ≥ 1 and image_size ≥ 28, got {images_per_class}, "
                              f"{image_size}")
        self.images_per_class, self.image_size, self.test_size = images_per_class, image_size, test_size
        self.contrasts_path = Path(contrasts) if contrasts else CONTRASTS_FILE
        self.data_dir, self.root = data_dir, root
        self._bank: dict[frozenset[int], str] | None = None

    @property
    def class_names(self) -> list[str]:
        return list(FASHION_MNIST_CLASSES)

    def load(self):
        root = self.root if self.root else require("fashion_mnist", self.data_dir)
        splits = read_idx_dataset(root, "Fashion-MNIST")
        rng = np.random.default_rng(self.seed)
        (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
        pool = stratified_per_class(ytr, self.images_per_class, rng)
        test = np.arange(len(yte)) if self.test_size is None else stratified_subset(yte, self.test_size,
                                                                                  np.random.default_rng(0))
        return self._items(xtr[pool], ytr[pool]), None, self._items(xte[test], yte[test])

    def _items(self, images: np.ndarray, labels: np.ndarray):
        parts = torch.from_numpy(garment_part_locations(images, labels))
        scale = self.image_size / images.shape[-1]
        parts[..., :2] *= scale
        x = torch.from_numpy(images).float().div(255.0).unsqueeze(1)
        if self.image_size != images.shape[-1]:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = x.clamp(0, 1).mul(255).round().to(torch.uint8)
        return part_items(x, torch.from_numpy(labels.astype(np.int64)), parts)

    def contrast_explanation(self, p: int, q: int) -> str:
        if self._bank is None:
            self._bank = read_contrasts(self.contrasts_path, self.class_names)
        key = frozenset((int(p), int(q)))
        if key not in self._bank:
            raise ExilError(f"{self.contrasts_path} has no explanation for {self.class_names[p]} vs "
                            f"{self.class_names[q]}")
        return self._bank[key]
