"""Images with ground-truth relevance masks, from a folder (e.g. the COVID-19 Radiography Database).

Layout (``images_dir`` / ``masks_dir`` are configurable; a mask has its image's file name, any
image extension)::

    root/<class>/images/<name>.png        root/train/<class>/images/<name>.png
    root/<class>/masks/<name>.png    or   root/train/<class>/masks/<name>.png
                                          root/test/<class>/...   (and optionally root/val/<class>/...)

Class folders (those holding an ``images_dir``) sorted by name give the label indices, unless
``classes`` lists them (a subset, in label order). Without ``train``/``test`` folders the test set
is a stratified split of ``test_size`` made with the fixed ``split_seed`` (independent of the run
seed, so every run shares the test set).

Every file is decoded once, in :meth:`MaskFolderDataModule.load` (or, with ``lazy``, batch by batch as
the loaders read it: :class:`FolderImages`, for folders larger than memory), with PIL: images are converted to
grey (``channels: 1``) or RGB (``channels: 3``) and resized (bilinear) to ``image_size`` squared;
masks are resized with nearest neighbour to the same size and binarised (> 127 on the 0..255 scale;
masks stored as 0/1 count 1 as relevant). Images and masks that cover the same field of view at
different resolutions (the COVID database: 299x299 images, 256x256 lung masks) thus line up.

Items are ``x`` float (C, H, W) in [0, 1], ``y`` long and ``mask`` bool (1, H, W), the relevant
pixels. ``mask`` is ground truth for oracles (``oracle_fields``): loaders never serve it; a
simulated teacher reads it with ``ground_truth(idx, "mask")``.

The COVID-19 Radiography Database (Chowdhury et al. 2020; Rahman et al. 2021) cannot be fetched by
exil: download it from Kaggle and unpack it yourself (see :data:`GET_COVID`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from sklearn.model_selection import train_test_split

from exil.common.data.base import PoolDataModule

from exil.common.data.items import ByteImages
from exil.common.errors import ConfigError, DataMissing

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
MISSING_MASK = ("error", "skip", "full")
SPLITS = ("train", "val", "test")

GET_COVID = (
    "The COVID-19 Radiography Database is not downloaded by exil: get it from Kaggle "
    "(https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database, a Kaggle account is needed; "
    "or `kaggle datasets download tawsifurrahman/covid19-radiography-database`) and unpack it yourself so that "
    "the class folders (COVID, Lung_Opacity, Normal, Viral Pneumonia) lie directly in dataset.root "
    "(the archive's COVID-19_Radiography_Dataset/ folder is the root)."
)


@dataclass
class _Files:
    images: list[Path]
    masks: list[Path | None]  # None: no mask file (missing_mask=full)
    labels: list[int]


class MaskFolderDataModule(PoolDataModule):
    """Images + relevance masks from ``root`` (see the module docstring for the layout).

    Args:
        root: the dataset folder.
        images_dir: name of the image subfolder of each class folder.
        masks_dir: name of the mask subfolder of each class folder.
        classes: class folder names in label order (a subset is fine); None = every class folder, sorted.
        image_size: images and masks are resized to ``image_size`` x ``image_size``.
        channels: 1 (grey) or 3 (RGB).
        missing_mask: an image without a mask file is an ``error`` (naming the file), is ``skip``-ped,
            or gets a ``full`` mask (every pixel relevant).
        test_size: without ``train``/``test`` folders: fraction (or count) of the images held out for
            test, stratified.
        split_seed: seed of that split and of the ``max_per_class`` subsets (fixed, independent of the run seed).
        max_per_class: at most this many images per class (and split folder), drawn at random, for quick runs.
        get_hint: what a missing dataset's message says about getting it (the COVID database's by default;
            ``null`` for your own folder: ``dataset=image_folder``).
        lazy: decode the files a batch needs when it is read (:class:`FolderImages`: nothing held but the
            file list) instead of all of them at start-up: for folders larger than memory. Items are the
            same; each pass over the pool decodes it again (``exil data convert`` decodes once).
        **kwargs: :class:`PoolDataModule` arguments.
    """

    oracle_fields = ("mask",)

    def __init__(
        self,
        root: str | None = None,
        images_dir: str = "images",
        masks_dir: str = "masks",
        classes: Sequence[str] | None = None,
        image_size: int = 224,
        channels: int = 1,
        missing_mask: str = "error",
        test_size: float = 0.2,
        split_seed: int = 0,
        max_per_class: int | None = None,
        get_hint: str | None = GET_COVID,
        lazy: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.get_hint, self.lazy = get_hint, bool(lazy)
        if not root:
            raise ConfigError(
                f"dataset.root must be set: a folder with <class>/{images_dir}/ and <class>/{masks_dir}/ subfolders"
            )
        if channels not in (1, 3):
            raise ConfigError(f"dataset.channels={channels} must be 1 (grey) or 3 (RGB)")
        if missing_mask not in MISSING_MASK:
            raise ConfigError(f"dataset.missing_mask={missing_mask!r} is not one of {', '.join(MISSING_MASK)}")
        if int(image_size) < 1:
            raise ConfigError(f"dataset.image_size={image_size} must be a positive number of pixels")
        if max_per_class is not None and int(max_per_class) < 1:
            raise ConfigError(f"dataset.max_per_class={max_per_class} must be positive (or null for no cap)")
        self.root = Path(root)
        self.images_dir, self.masks_dir = images_dir, masks_dir
        self.classes = list(classes) if classes else None
        self.image_size, self.channels, self.missing_mask = int(image_size), channels, missing_mask
        self.test_size, self.split_seed = test_size, split_seed
        self.max_per_class = None if max_per_class is None else int(max_per_class)
        self._class_names: list[str] | None = None

    # ------------------------------------------------------------- layout
    @property
    def split_folders(self) -> bool:
        """Whether ``root`` holds explicit ``train`` and ``test`` folders."""
        return (self.root / "train").is_dir() and (self.root / "test").is_dir()

    @property
    def class_names(self) -> list[str]:
        """Class folder names in label order (from a directory scan; no image is decoded)."""
        if self._class_names is None:
            self._class_names = self._find_classes()
        return list(self._class_names)

    def _class_folders(self, folder: Path) -> list[str]:
        if not folder.is_dir():
            return []
        if self.images_dir in (".", ""):  # images directly in each class folder: a class folder holds images
            return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in SPLITS and _image_files(p))
        return sorted(p.name for p in folder.iterdir() if (p / self.images_dir).is_dir())

    def _find_classes(self) -> list[str]:
        top = self.root / "train" if self.split_folders else self.root
        found = self._class_folders(top)
        if not found:
            raise DataMissing(self._layout_message(f"no class folders with an {self.images_dir}/ subfolder in {top}"))
        if self.classes is None:
            return found
        absent = [c for c in self.classes if c not in found]
        if absent:
            raise DataMissing(
                f"dataset.classes {absent} have no folder {top}/<class>/{self.images_dir}; found: {', '.join(found)}"
            )
        return list(self.classes)

    def _layout_message(self, problem: str) -> str:
        nested = [p for p in self.root.iterdir() if self._class_folders(p)] if self.root.is_dir() else []
        hint = f"\nClass folders were found one level down: set dataset.root={nested[0]}" if len(nested) == 1 else ""
        return (
            f"{problem}.\nExpected {self.root}/<class>/{self.images_dir}/<name>.png with masks of the same names in "
            f"{self.root}/<class>/{self.masks_dir}/ (or that layout under {self.root}/train/ and "
            f"{self.root}/test/).{hint}" + (f"\n{self.get_hint}" if self.get_hint else "")
        )

    def _list(self, folder: Path, rng: np.random.Generator) -> _Files:
        """The image and mask files of every class under ``folder`` (capped at ``max_per_class``)."""
        names = self.class_names
        if self.classes is None:
            unknown = sorted(set(self._class_folders(folder)) - set(names))
            if unknown:
                raise ConfigError(f"{folder} has class folders {unknown} that the training folder lacks")
        files = _Files([], [], [])
        for label, name in enumerate(names):
            images = _image_files(folder / name / self.images_dir)
            if self.max_per_class is not None and len(images) > self.max_per_class:
                images = [images[i] for i in np.sort(rng.choice(len(images), self.max_per_class, replace=False))]
            masks = {p.stem: p for p in _image_files(folder / name / self.masks_dir)}
            missing = [p for p in images if p.stem not in masks]
            if missing and self.missing_mask == "error":
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise DataMissing(
                    f"no mask for {missing[0]}{more}: expected "
                    f"{folder / name / self.masks_dir}/{missing[0].stem}.<ext>. "
                    f"Set dataset.missing_mask=skip to leave such images out, or =full to mark every pixel relevant."
                )
            for p in images:
                if p.stem in masks or self.missing_mask == "full":
                    files.images.append(p)
                    files.masks.append(masks.get(p.stem))
                    files.labels.append(label)
        return files

    # ------------------------------------------------------------- loading
    def load(self) -> tuple[Dataset, Dataset | None, Dataset]:
        rng = np.random.default_rng(self.split_seed)
        val = None
        if self.split_folders:
            train, test = self._list(self.root / "train", rng), self._list(self.root / "test", rng)
            if (self.root / "val").is_dir():
                val = self._list(self.root / "val", rng)
        else:
            train, test = self._random_split(self._list(self.root, rng))
        where = self.root / "train" if self.split_folders else self.root
        empty = sorted(set(self.class_names) - {self.class_names[y] for y in train.labels})
        if empty:
            raise DataMissing(self._layout_message(f"classes {empty} have no images with masks for training in "
                                                   f"{where}"))
        if not test.labels:
            raise DataMissing(self._layout_message(f"no test images with masks in {self.root / 'test'}"))
        return self._decode(train), None if val is None else self._decode(val), self._decode(test)

    def _random_split(self, files: _Files) -> tuple[_Files, _Files]:
        """A stratified train/test split of ``files`` with ``split_seed``."""
        try:
            train, test = train_test_split(
                np.arange(len(files.labels)), test_size=self.test_size, stratify=files.labels,
                random_state=self.split_seed,
            )
        except ValueError as e:
            raise ConfigError(f"cannot split {len(files.labels)} images with dataset.test_size={self.test_size}: {e}")
        return _select(files, np.sort(train)), _select(files, np.sort(test))

    def _decode(self, files: _Files) -> Dataset:
        """Decode every file (threads: PIL releases the GIL while decoding) into preallocated arrays."""
        if self.lazy:
            return FolderImages(files, self.image_size, self.channels)
        x, mask = _decode_files(files, range(len(files.images)), self.image_size, self.channels)
        return ByteImages(x=torch.from_numpy(x), y=torch.as_tensor(files.labels, dtype=torch.long),
                          mask=torch.from_numpy(mask))


def _decode_files(files: _Files, which: Sequence[int], s: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, c, s, s) uint8 and masks (N, 1, s, s) bool of files ``which``, decoded in threads."""
    which = list(which)
    x = np.empty((len(which), c, s, s), dtype=np.uint8)
    mask = np.empty((len(which), 1, s, s), dtype=bool)

    def one(r: int) -> None:
        i = which[r]
        x[r] = read_image(files.images[i], s, c).transpose(2, 0, 1)
        mask[r, 0] = read_mask(files.masks[i], s) if files.masks[i] is not None else True

    if len(which) == 1:
        one(0)
    else:
        with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1, len(which) or 1)) as pool:
            list(pool.map(one, range(len(which))))
    return x, mask


class FolderImages(Dataset):
    """The items of :class:`ByteImages` decoded from their files when read (``lazy``): memory holds the
    file list and the batch being read, whatever the folder's size."""

    def __init__(self, files: _Files, image_size: int, channels: int):
        self.files, self.image_size, self.channels = files, image_size, channels
        self._y = torch.as_tensor(files.labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.files.images)

    @property
    def targets(self) -> torch.Tensor:
        return self._y

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        if len(idx) and not (-len(self) <= int(idx.min()) and int(idx.max()) < len(self)):
            raise IndexError(f"index out of range 0..{len(self) - 1}")
        idx = torch.where(idx < 0, idx + len(self), idx)
        x, mask = _decode_files(self.files, idx.tolist(), self.image_size, self.channels)
        return {"x": torch.from_numpy(x).float() / 255.0, "y": self._y[idx], "mask": torch.from_numpy(mask),
                "idx": idx}

    def __getitem__(self, i: int) -> dict[str, Any]:
        batch = self.__getitems__([int(i)])
        item = {k: v[0] for k, v in batch.items()}
        item["idx"] = int(batch["idx"][0])
        return item


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _select(files: _Files, idx: np.ndarray) -> _Files:
    return _Files([files.images[i] for i in idx], [files.masks[i] for i in idx], [files.labels[i] for i in idx])


def read_image(path: Path, size: int, channels: int) -> np.ndarray:
    """(size, size, channels) uint8: the image at ``path`` in grey or RGB, resized bilinearly."""
    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im).reshape(size, size, channels)


def read_mask(path: Path, size: int) -> np.ndarray:
    """(size, size) bool: the mask at ``path`` resized with nearest neighbour, > 127 (or = 1 if it is 0/1)."""
    with Image.open(path) as im:
        m = np.asarray(im.convert("L").resize((size, size), Image.Resampling.NEAREST))
    return m > (0 if m.max() == 1 else 127)
