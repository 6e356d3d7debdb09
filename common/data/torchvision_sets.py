"""torchvision's standard image datasets as exil pools: CIFAR-10, CIFAR-100, SVHN, MNIST, Fashion-MNIST.

``dataset=torchvision dataset.name=cifar10`` reads the dataset's own files from ``root`` (``download: true``
fetches them there first, for machines with a network). Without them, and without a network, the run stops
with one message saying where the files go and how to get them (Fashion-MNIST also has an offline source:
``exil data fetch fashion_mnist`` and ``dataset=fashion_mnist``). Images are decoded once into uint8 arrays
(C, H, W); labels as torchvision gives them; class names from the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from exil.common.data.base import PoolDataModule

from exil.common.data.items import ByteImages
from exil.common.errors import ConfigError, DataMissing

#: name → (torchvision class, how its train / test splits are asked for)
SETS = {
    "cifar10": ("CIFAR10", "train"),
    "cifar100": ("CIFAR100", "train"),
    "svhn": ("SVHN", "split"),
    "mnist": ("MNIST", "train"),
    "fashion_mnist": ("FashionMNIST", "train"),
}


class TorchvisionDataModule(PoolDataModule):
    """One of :data:`SETS` from ``root`` (module docstring).

    Args:
        name: ``cifar10`` | ``cifar100`` | ``svhn`` | ``mnist`` | ``fashion_mnist``.
        root: where torchvision keeps (or downloads) the files.
        download: let torchvision download them (needs a network).
        test_size: keep at most this many test images (a stratified draw with ``split_seed``; None: all).
        split_seed: seed of that draw.
        **kwargs: :class:`PoolDataModule` arguments.
    """

    def __init__(self, name: str = "cifar10", root: str = "data/torchvision", download: bool = False,
                 test_size: int | None = None, split_seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        if name not in SETS:
            raise ConfigError(f"dataset.name={name!r}; valid: {', '.join(SETS)}")
        self.name, self.root, self.download = name, Path(root), bool(download)
        self.test_size, self.split_seed = test_size, split_seed
        self._names: list[str] | None = None

    def _split(self, train: bool):
        import torchvision.datasets as tvd

        cls_name, how = SETS[self.name]
        cls = getattr(tvd, cls_name)
        kw = {"split": "train" if train else "test"} if how == "split" else {"train": train}
        try:
            return cls(str(self.root), download=self.download, **kw)
        except RuntimeError as e:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
            raise DataMissing(self._missing(str(e))) from None
        except OSError as e:  # download=True without a network
            raise DataMissing(self._missing(f"the download failed ({type(e).__name__}: {e})")) from None

    def _missing(self, why: str) -> str:
        offline = ("; offline, Fashion-MNIST can be had with `exil data fetch fashion_mnist` and dataset=fashion_mnist"
                   if self.name == "fashion_mnist" else "")
        return (f"dataset.name={self.name}: its files are not in {self.root} ({why.splitlines()[0][:160]}). With a "
                f"network, add dataset.download=true to fetch them there; or put torchvision's files for "
                f"{SETS[self.name][0]} in {self.root} yourself{offline}")

    def _tensors(self, ds) -> ByteImages:
        data = ds.data
        x = torch.as_tensor(np.asarray(data))
        if x.dim() == 3:  # (N, H, W): grey
            x = x.unsqueeze(1)
        elif x.shape[-1] == 3:  # (N, H, W, 3): CIFAR
            x = x.permute(0, 3, 1, 2)
        y = torch.as_tensor(np.asarray(getattr(ds, "targets", None) if hasattr(ds, "targets") else ds.labels),
                            dtype=torch.long)
        return ByteImages(x=x.to(torch.uint8).contiguous(), y=y)

    def load(self):
        train, test = self._split(True), self._split(False)
        self._names = [str(c) for c in getattr(train, "classes", [])] or None
        pool, test_items = self._tensors(train), self._tensors(test)
        if self.test_size is not None and self.test_size < len(test_items):
            from sklearn.model_selection import train_test_split

            y = test_items.fields["y"].numpy()
            keep, _ = train_test_split(np.arange(len(y)), train_size=self.test_size, stratify=y,
                                       random_state=self.split_seed)
            test_items = ByteImages(**{k: v[np.sort(keep)] for k, v in test_items.fields.items()})
        return pool, None, test_items

    @property
    def class_names(self) -> list[str]:
        self.setup()
        return self._names or [str(c) for c in range(self.num_classes)]
