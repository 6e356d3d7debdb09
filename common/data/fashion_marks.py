"""Fashion-MNIST with marked parts: ALICE's controlled task, where a local part *must* decide the class.

Every fine class is a pair of **sub-classes** of one real Fashion-MNIST class that differ only in a small
mark at one named part: a T-shirt with a *checked* or a *striped* patch at its collar, trousers with the
patch at the waist, sneakers at the toe, bags at the handle (:data:`MARKED`; 4 base classes → 8 fine
classes). The mark is a ``mark`` × ``mark`` pixel square (default 6 of the 64 px image side) drawn at the
part's silhouette location (:func:`~exil.common.data.fashion_parts.garment_part_locations`) after upsampling:
the *checked* patch alternates black and white pixel by pixel, the *striped* one row by row, so both have
the same mean and the same contrast — the two sub-classes have the same low-frequency content, and the
difference lives in 1-pixel structure inside 1 % of the image.

Why it is a fair test of ALICE (Liang, Zou & Yu 2020), and what each arm must show if the
implementation is right:

* **pairs**: the two sub-classes of a base class are, by construction, the most confusable classes; the
  JSD strategy must find them among the 28 pairs (random pairs hit one with probability 4/28 a round);
* **the sentence names the part**: the simulated expert says where the marks are ("… a checked patch at the
  collar, while … a striped patch at the collar"); the parser turns that into the part and the grounding
  crops it. A part crop (``size`` 0.25 of the side, resized to the full 64 px) magnifies the mark 4×, so it
  spans a whole stride-16 cell of the encoder instead of a fraction of one — at the global input size the
  mark is averaged into the garment's features;
* **hierarchy**: inside the pair's super-class a local classifier with attention decides on the mark, while
  the global head only has to tell the base classes apart, which is easy.

So: ALICE > w/o grounding ≈ random grounding > base, and random pairs help less. Cross-base pairs (asked
only by random pairs) get the proxy's garment sentences (``fashion_mnist_contrasts.jsonl``). The images are
real; only the marks are drawn, so nothing about the garments themselves is made up.

Pool: ``images_per_class`` distinct training images per fine class (each real image belongs to one
sub-class); test: a stratified ``test_size`` of the base classes' test images, each assigned a sub-class by
a fixed draw (seed 0), so every seed is scored on the same test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from exil.common.acquire import require
from exil.common.data.fashion_parts import GARMENT_PART_NAMES, FashionPartsDataModule, read_contrasts
from exil.common.data.idx import read_idx_dataset
from exil.common.data.mnist import FASHION_MNIST_CLASSES
from exil.common.errors import ConfigError, ExilError

MARKED = {0: "collar", 1: "waist", 7: "toe", 8: "handle"}  # base class → the part that carries the mark
PATTERNS = ("checked", "striped")
GARMENT_NOUN = {0: "T-shirts", 1: "trousers", 7: "sneakers", 8: "bags"}
SENTENCE = ("Both are {garment}: the first kind has a small checked patch at the {part}, black and white like a "
            "chessboard, while the second has fine horizontal stripes at the {part} instead.")


def mark_pattern(kind: str, side: int) -> torch.Tensor:
    """The ``side`` × ``side`` patch in {0, 255}: ``checked`` alternates per pixel, ``striped`` per row."""
    i, j = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    if kind == "checked":
        return ((i + j) % 2 * 255).to(torch.uint8)
    if kind == "striped":
        return (i % 2 * 255).to(torch.uint8)
    raise ConfigError(f"mark pattern {kind!r}; valid: {', '.join(PATTERNS)}")


def draw_marks(x: torch.Tensor, centres: torch.Tensor, kinds: list[str], side: int) -> torch.Tensor:
    """``x`` (N, 1, H, W) uint8 with a ``side``-pixel patch of ``kinds[n]`` centred on ``centres[n]``
    (column, row in pixels), shifted to lie inside the image. Returns a new tensor."""
    x = x.clone()
    h, w = x.shape[-2:]
    patches = {k: mark_pattern(k, side) for k in set(kinds)}
    for n, ((cx, cy), kind) in enumerate(zip(centres.tolist(), kinds)):
        c0 = int(min(max(round(cx - side / 2), 0), w - side))
        r0 = int(min(max(round(cy - side / 2), 0), h - side))
        x[n, 0, r0:r0 + side, c0:c0 + side] = patches[kind]
    return x


class FashionMarksDataModule(FashionPartsDataModule):
    """Fashion-MNIST sub-classes that differ only by a mark at a named part (module docstring).

    Args:
        mark: side of the mark in pixels of the ``image_size`` image.
        images_per_class, image_size, test_size, contrasts, data_dir, root, **kwargs: as
            :class:`~exil.common.data.fashion_parts.FashionPartsDataModule` (``test_size`` counts base-class
            test images; default 2,000 of their 4,000).
    """

    base = sorted(MARKED)  # fine class 2k, 2k + 1: base[k] checked, striped
    coarse_names = [FASHION_MNIST_CLASSES[b] for b in base]
    coarse_of = [i // 2 for i in range(2 * len(base))]

    def __init__(self, mark: int = 6, test_size: int | None = 2000, **kwargs: Any):
        super().__init__(test_size=test_size, **kwargs)
        if not 2 <= mark <= self.image_size // 2:
            raise ConfigError(f"dataset.mark must be between 2 and image_size / 2 = {self.image_size // 2}, got {mark}")
        self.mark = mark

    @property
    def class_names(self) -> list[str]:
        return [f"{FASHION_MNIST_CLASSES[b]}, {p} {MARKED[b]}" for b in self.base for p in PATTERNS]

    def load(self):
        root = self.root if self.root else require("fashion_mnist", self.data_dir)
        splits = read_idx_dataset(root, "Fashion-MNIST")
        (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
        rng = np.random.default_rng(self.seed)
        pool, fine = [], []
        for k, b in enumerate(self.base):  # 2k distinct images of base class b: the first k checked, the rest striped
            chosen = rng.choice(np.flatnonzero(ytr == b), 2 * self.images_per_class, replace=False)
            pool.append(chosen)
            fine.append(np.repeat([2 * k, 2 * k + 1], self.images_per_class))
        pool, fine = np.concatenate(pool), np.concatenate(fine)
        test_rng = np.random.default_rng(0)
        test = np.flatnonzero(np.isin(yte, self.base))
        if self.test_size is not None:
            if self.test_size > len(test):
                raise ConfigError(f"dataset.test_size={self.test_size}, but the marked classes have {len(test)} "
                                  "test images")
            test = np.sort(test_rng.choice(test, self.test_size, replace=False))
        test_fine = np.searchsorted(self.base, yte[test]) * 2 + test_rng.integers(0, 2, len(test))
        return self._marked(xtr[pool], ytr[pool], fine), None, self._marked(xte[test], yte[test], test_fine)

    def _marked(self, images: np.ndarray, base: np.ndarray, fine: np.ndarray):
        items = self._items(images, base)  # upsampled images + part locations (of the base garments)
        part = torch.tensor([GARMENT_PART_NAMES.index(MARKED[int(b)]) for b in base])
        f = items.fields
        f["x"] = draw_marks(f["x"], f["parts"][torch.arange(len(base)), part, :2],
                            [PATTERNS[int(c) % 2] for c in fine], self.mark)
        f["y"] = torch.as_tensor(fine, dtype=torch.long)
        return items

    def contrast_explanation(self, p: int, q: int) -> str:
        """The expert's sentence: where the marks are for two sub-classes of one garment, else the proxy's
        garment sentence for the two base classes."""
        p, q = int(p), int(q)
        bp, bq = self.base[p // 2], self.base[q // 2]
        if bp == bq:
            return SENTENCE.format(garment=GARMENT_NOUN[bp], part=MARKED[bp])
        if self._bank is None:
            self._bank = read_contrasts(self.contrasts_path, list(FASHION_MNIST_CLASSES))
        key = frozenset((bp, bq))
        if key not in self._bank:
            raise ExilError(f"{self.contrasts_path} has no explanation for {FASHION_MNIST_CLASSES[bp]} vs "
                            f"{FASHION_MNIST_CLASSES[bq]}")
        return self._bank[key]
