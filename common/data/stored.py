"""Pools larger than memory: a converted pool read from disk (``dataset=memmap``) or streamed by litdata
(``dataset=litdata``).

Both read a folder written by ``exil data convert`` (:mod:`exil.common.data.convert`)::

    root/meta.json             fields (dtype, shape, how x is scaled), class names, splits, oracle-only fields
    root/pool/  root/val/  root/test/
        memmap:   <field>.npy  one array per field, memory-mapped (np.load(mmap_mode="r"))
        litdata:  index.json + chunk-*.bin  litdata's optimised chunks (litdata.StreamingDataset)
    root/targets/<split>.npy   the labels alone (litdata: so that splits and oracles need not decode the pool)

Items are served exactly as the source dataset served them (same fields, dtypes and values; ``x``
stored as uint8 comes back as float in [0, 1]), in the source's order, so a run on the converted pool
asks what a run on the source asks with the same seed. Fields that were oracle-only in the source
(relevance masks, ...) are stored and stay oracle-only (``oracle_fields`` comes from meta.json).

A pool's items are read batch by batch: :class:`~exil.common.data.items.MemmapItems` by fancy-indexing the
maps at the batch's sorted indices (memory bounded by the batch), :class:`~exil.common.data.items.StreamedItems`
by litdata's random access. The labelled-set bookkeeping of :class:`~exil.common.data.base.PoolDataModule`
is O(labelled), so neither holds anything of the size of the pool in memory but the labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from exil.common.data.base import PoolDataModule
from exil.common.data.items import MemmapItems, StreamedItems
from exil.common.errors import ConfigError, DataMissing

FORMAT = "exil-pool"
VERSION = 1
SPLITS = ("pool", "val", "test")


def _is_url(root: str) -> bool:
    return "://" in str(root)


def _how_to_make(root: str, storage: str) -> str:
    fmt = "" if storage == "memmap" else f" --format {storage}"
    return (f"make one with `exil data convert DATASET --out {root}{fmt}` (e.g. `exil data convert fashion_mnist "
            f"--out {root}{fmt}`, `--repeat 16 --augment shift` for a bigger pool; see docs/data.md)")


def read_meta(root: str | Path, storage: str) -> dict[str, Any]:
    """``root/meta.json`` of a converted pool, checked; DataMissing (saying how to make one) if absent."""
    root = str(root)
    try:
        if _is_url(root):
            import fsspec

            with fsspec.open(f"{root.rstrip('/')}/meta.json", "r") as f:
                meta = json.load(f)
        else:
            if not (Path(root) / "meta.json").is_file():
                what = "does not exist" if not Path(root).exists() else "holds no meta.json"
                raise FileNotFoundError(f"{root} {what}")
            meta = json.loads((Path(root) / "meta.json").read_text())
    except FileNotFoundError as e:
        raise DataMissing(f"dataset.root={root} is not a converted exil pool ({e}); "
                          + _how_to_make(root, storage)) from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ConfigError(f"{root}/meta.json is not an {FORMAT} v{VERSION} pool (format={meta.get('format')!r}, "
                          f"version={meta.get('version')!r}); convert the dataset again")
    if meta.get("storage") != storage:
        raise ConfigError(f"{root} holds a {meta.get('storage')!r} pool: use dataset={meta.get('storage')} "
                          f"(or convert again with --format {storage})")
    return meta


def _read_npy(root: str, name: str) -> np.ndarray:
    if _is_url(root):
        import io

        import fsspec

        with fsspec.open(f"{root.rstrip('/')}/{name}", "rb") as f:
            return np.load(io.BytesIO(f.read()))
    return np.load(Path(root) / name)


class _StoredDataModule(PoolDataModule):
    """A converted pool (module docstring). ``root``: the folder ``exil data convert --out`` wrote."""

    storage = ""

    def __init__(self, root: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not root:
            raise ConfigError(f"dataset={self.storage} needs dataset.root: the folder `exil data convert` wrote "
                              f"(e.g. dataset.root=data/fashion_mnist_{self.storage})")
        self.root = str(root) if _is_url(str(root)) else str(Path(root).expanduser())
        self.meta: dict[str, Any] | None = None

    def _meta(self) -> dict[str, Any]:
        if self.meta is None:
            self.meta = read_meta(self.root, self.storage)
            self.oracle_fields = tuple(self.meta.get("oracle_fields") or ())
        return self.meta

    @property
    def class_names(self) -> list[str]:
        names = self._meta().get("class_names")
        return list(names) if names else super().class_names

    def _split(self, name: str) -> Dataset:
        raise NotImplementedError

    def load(self) -> tuple[Dataset, Dataset | None, Dataset]:
        meta = self._meta()
        splits = meta["splits"]
        if not splits.get("pool") or splits.get("test") is None:
            raise ConfigError(f"{self.root}/meta.json names no pool or no test split: {splits}")
        return self._split("pool"), self._split("val") if splits.get("val") else None, self._split("test")


class MemmapDataModule(_StoredDataModule):
    """A pool of memory-mapped arrays (``dataset=memmap dataset.root=...``), written by
    ``exil data convert DATASET --out ROOT``.

    Args:
        root: the converted folder (``meta.json``, ``pool/``, ``val/``, ``test/``).
        **kwargs: :class:`PoolDataModule` arguments (batch sizes, workers, seed, val_size, pool_size, ...).
    """

    storage = "memmap"

    def _split(self, name: str) -> MemmapItems:
        meta = self._meta()
        folder = Path(self.root) / name
        missing = [k for k in meta["fields"] if not (folder / f"{k}.npy").is_file()]
        if missing:
            raise DataMissing(f"{folder} lacks {', '.join(f'{k}.npy' for k in missing)} (an interrupted "
                              f"conversion?); " + _how_to_make(self.root, self.storage))
        return MemmapItems(folder, meta["fields"], meta["splits"][name], trim=meta.get("trim"))


class LitdataDataModule(_StoredDataModule):
    """A pool streamed from litdata's optimised chunks (``dataset=litdata dataset.root=...``): a local
    folder or an object-store URL (``s3://bucket/pool``; litdata's own credentials and ``storage_options``
    apply), written by ``exil data convert DATASET --out ROOT --format litdata``.

    Active learning reads the pool by index (score these candidates, train on those labelled items):
    litdata's ``StreamingDataset.__getitem__(i)`` serves that, chunk by chunk from ``cache_dir``.

    Args:
        root: the converted folder or URL.
        cache_dir: where litdata keeps the chunks it downloads (remote roots); None = litdata's default.
        max_cache_size: litdata's cache budget (e.g. ``"50GB"``); None = litdata's default.
        batch_decode: litdata's items decoded per access; 0 (default) = one, what random access wants
            (see :class:`~exil.common.data.items.StreamedItems`); ``auto`` = litdata's window.
        **kwargs: :class:`PoolDataModule` arguments.
    """

    storage = "litdata"

    def __init__(self, root: str | None = None, cache_dir: str | None = None, max_cache_size: str | None = None,
                 batch_decode: int | str | None = 0, **kwargs: Any):
        super().__init__(root=root, **kwargs)
        self.cache_dir, self.max_cache_size, self.batch_decode = cache_dir, max_cache_size, batch_decode

    def _split(self, name: str) -> StreamedItems:
        meta = self._meta()
        where = f"{self.root.rstrip('/')}/{name}"
        if not _is_url(self.root) and not (Path(where) / "index.json").is_file():
            raise DataMissing(f"{where} holds no litdata index.json (an interrupted conversion?); "
                              + _how_to_make(self.root, self.storage))
        targets = _read_npy(self.root, f"targets/{name}.npy")
        cache = None if self.cache_dir is None else str(Path(self.cache_dir) / name)
        return StreamedItems(where, meta["fields"], meta["splits"][name], targets, trim=meta.get("trim"),
                             cache_dir=cache, max_cache_size=self.max_cache_size, batch_decode=self.batch_decode)
