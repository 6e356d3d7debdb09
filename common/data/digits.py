"""scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes; UCI "Optical Recognition of
Handwritten Digits"). Shipped with scikit-learn, so always available offline."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from exil.common.data.base import PoolDataModule

from exil.common.data.items import TensorItems


class DigitsDataModule(PoolDataModule):
    """Digits as ``x`` float (1, 8, 8) in [0, 1] (pixel counts 0..16 divided by 16) and ``y`` long.

    The train/test split is stratified and made with ``split_seed``, which is fixed and independent
    of the run seed: every run of every strategy is evaluated on the same test set.

    Args:
        test_size: fraction (or count) of the 1,797 images held out for test.
        split_seed: seed of the train/test split.
        **kwargs: :class:`PoolDataModule` arguments (batch sizes, workers, run seed, val_size, pool_size).
    """

    def __init__(self, test_size: float = 0.3, split_seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.test_size = test_size
        self.split_seed = split_seed

    def load(self) -> tuple[TensorItems, None, TensorItems]:
        digits = load_digits()
        x = torch.from_numpy((digits.images / 16.0).astype(np.float32)).unsqueeze(1)
        y = torch.from_numpy(digits.target.astype(np.int64))
        train, test = train_test_split(
            np.arange(len(y)), test_size=self.test_size, stratify=digits.target, random_state=self.split_seed
        )
        train, test = np.sort(train), np.sort(test)
        return TensorItems(x=x[train], y=y[train]), None, TensorItems(x=x[test], y=y[test])
