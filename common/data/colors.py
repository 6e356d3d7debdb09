"""The "colors" problem of CAIPI (Teso & Kersting 2019, section 5): 5×5 images whose pixels take one
of 4 colours; an image is positive iff

* **rule 0** — its four corners have the same colour, or
* **rule 1** — its three top-middle pixels (row 0, columns 1–3) have three different colours.

Only images on which both rules agree are kept, so the labels cannot tell which rule is the true
one: only explanations can. ``rule`` picks the true rule, whose pixels are the ground-truth
relevant input (``mask``, oracle-only): the corners for rule 0, the three top-middle pixels for
rule 1.

Images are drawn uniformly (``generate_seed``, fixed), filtered, and balanced to ``size`` items with
as many positives as negatives, then split into pool / test with ``test_size``. Items: ``x`` float
(1, 5, 5) holding the colour ids 0..3 (models see colour identities, e.g. through
``pairwise_equal`` features), ``y`` long, ``mask`` bool (1, 5, 5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from exil.common.data.base import PoolDataModule

from exil.common.data.items import TensorItems
from exil.common.errors import ConfigError

SIDE, COLOURS = 5, 4
CORNERS = [(0, 0), (0, SIDE - 1), (SIDE - 1, 0), (SIDE - 1, SIDE - 1)]
TOP_MIDDLE = [(0, 1), (0, 2), (0, 3)]


def rule0(images: np.ndarray) -> np.ndarray:
    c = np.stack([images[:, r, k] for r, k in CORNERS], 1)
    return (c == c[:, :1]).all(1)


def rule1(images: np.ndarray) -> np.ndarray:
    a, b, c = (images[:, r, k] for r, k in TOP_MIDDLE)
    return (a != b) & (b != c) & (a != c)


def rule_mask(rule: int) -> np.ndarray:
    m = np.zeros((SIDE, SIDE), dtype=bool)
    for r, k in (CORNERS if rule == 0 else TOP_MIDDLE):
        m[r, k] = True
    return m


def generate(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` images (N, 5, 5) on which both rules agree, half of them positive, and their labels."""
    rng = np.random.default_rng(seed)
    pos, neg, want = [], [], size // 2
    n_pos = n_neg = 0
    while n_pos < want or n_neg < size - want:
        imgs = rng.integers(0, COLOURS, size=(20000, SIDE, SIDE))
        r0, r1 = rule0(imgs), rule1(imgs)
        agree = r0 == r1
        # positives under both rules are rare (corners equal *and* top-middle all different): keep them all
        p, n = imgs[agree & r0], imgs[agree & ~r0]
        pos.append(p[: max(want - n_pos, 0)])
        neg.append(n[: max(size - want - n_neg, 0)])
        n_pos += len(pos[-1])
        n_neg += len(neg[-1])
    images = np.concatenate([*pos, *neg])
    labels = np.concatenate([np.ones(n_pos, np.int64), np.zeros(n_neg, np.int64)])
    order = rng.permutation(len(images))
    return images[order], labels[order]


class ColorsDataModule(PoolDataModule):
    """The colors problem (module docstring).

    Args:
        rule: the true rule, 0 or 1 (the ground-truth relevant pixels).
        size: images in all (pool + test), half positive.
        test_size: fraction held out for test.
        generate_seed: seed of the images (fixed: every run sees the same data).
        **kwargs: :class:`PoolDataModule` arguments.
    """

    oracle_fields = ("mask",)

    def __init__(self, rule: int = 0, size: int = 2000, test_size: float = 0.3, generate_seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        if rule not in (0, 1):
            raise ConfigError(f"dataset.rule must be 0 or 1, got {rule}")
        self.rule, self.size, self.test_size, self.generate_seed = rule, size, test_size, generate_seed

    @property
    def class_names(self) -> list[str]:
        return ["negative", "positive"]

    def load(self) -> tuple[TensorItems, None, TensorItems]:
        images, labels = generate(self.size, self.generate_seed)
        n_test = int(round(self.test_size * len(images)))
        mask = torch.from_numpy(rule_mask(self.rule)).view(1, SIDE, SIDE)

        def items(sl: slice) -> TensorItems:
            x = torch.from_numpy(images[sl].astype(np.float32)).unsqueeze(1)
            return TensorItems(x=x, y=torch.from_numpy(labels[sl]), mask=mask.expand(len(x), -1, -1, -1).clone())

        return items(slice(n_test, None)), None, items(slice(0, n_test))
