"""Leaf datasets: where a pool's items come from. Items are dicts ``{field: tensor, ..., "idx": i}``.

- :class:`TensorItems` / :class:`ByteImages`: every field a tensor in memory (the usual datasets);
- :class:`MemmapItems`: one memory-mapped ``.npy`` per field (the ``memmap`` pool format written by
  ``exil data convert``): a batch is read by fancy-indexing the maps at the batch's indices (sorted, for
  locality, then put back in order), so reading touches those rows only and memory is bounded by the
  batch, whatever the pool's size;
- :class:`StreamedItems`: litdata's optimised chunks (``litdata.StreamingDataset``, a local folder or an
  object-store URL), read by index through litdata's random access.

The out-of-core formats store each field as written (``x`` of images as uint8 when that is exact) and
serve it as the source dataset did: a field with a ``scale`` is served as float32 divided by it
(uint8 → [0, 1]); a field in a ``trim`` group is cut, per batch, to the longest item's
``attention_mask`` (as :class:`~exil.common.data.text.TextItems` does).
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class TensorItems(Dataset):
    """A dataset of equally long tensors, served as dicts ``{name: tensor[i], "idx": i}``."""

    def __init__(self, **fields: torch.Tensor):
        if "x" not in fields or "y" not in fields:
            raise ValueError("TensorItems needs at least the fields 'x' and 'y'")
        n = {len(v) for v in fields.values()}
        if len(n) != 1:
            raise ValueError(f"all fields must have the same length, got { {k: len(v) for k, v in fields.items()} }")
        self.fields = fields

    def __len__(self) -> int:
        return len(self.fields["y"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {k: v[i] for k, v in self.fields.items()}
        item["idx"] = i
        return item

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        """A whole batch by tensor indexing (DataLoader calls this instead of one item at a time)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        batch = {k: v[idx] for k, v in self.fields.items()}
        batch["idx"] = idx
        return batch

    @property
    def targets(self) -> torch.Tensor:
        return self.fields["y"]


class ByteImages(TensorItems):
    """:class:`TensorItems` whose ``x`` is stored as uint8 (a quarter of the memory of floats) and served
    as float in [0, 1]."""

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        item["x"] = item["x"].float() / 255.0
        return item

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        batch = super().__getitems__(indices)
        batch["x"] = batch["x"].float() / 255.0
        return batch


# ------------------------------------------------------------------------------------ out of core


class _StoredItems(Dataset):
    """What the out-of-core leaves share: field specs (``{"dtype", "shape", "scale"}``), how a stored
    field is served, the trim of tokenised fields, and item = the one row of a batch."""

    def __init__(self, fields: dict[str, dict], length: int, trim: dict | None = None):
        if "x" not in fields or "y" not in fields:
            raise ValueError(f"a stored pool needs at least the fields 'x' and 'y', has {sorted(fields)}")
        self.specs, self.length, self.trim = dict(fields), int(length), trim

    def __len__(self) -> int:
        return self.length

    def _rows(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Stored rows ``indices`` (any order, repeats allowed) of every field."""
        raise NotImplementedError

    def _serve(self, rows: dict[str, np.ndarray], idx: np.ndarray, trim: bool) -> dict[str, Any]:
        batch: dict[str, Any] = {}
        for k, a in rows.items():
            t = torch.from_numpy(np.ascontiguousarray(a))
            scale = self.specs[k].get("scale")
            batch[k] = t.float() / float(scale) if scale else t
        if trim and self.trim and len(idx):
            width = max(int(batch[self.trim["by"]].sum(1).max()), 1)
            for k in self.trim["fields"]:
                if k in batch:
                    batch[k] = batch[k][:, :width]
        batch["idx"] = torch.from_numpy(idx.copy())
        return batch

    def _check(self, indices: Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -self.length or idx.max() >= self.length):
            raise IndexError(f"index out of range 0..{self.length - 1}")
        return np.where(idx < 0, idx + self.length, idx)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        idx = self._check(indices)
        return self._serve(self._rows(idx), idx, trim=True)

    def __getitem__(self, i: int) -> dict[str, Any]:
        idx = self._check([int(i)])
        batch = self._serve(self._rows(idx), idx, trim=False)  # an item is whole, as TextItems serves it
        item = {k: v[0] for k, v in batch.items()}
        item["idx"] = int(idx[0])
        return item


class MemmapItems(_StoredItems):
    """Items from a folder of ``<field>.npy`` files, memory-mapped (``np.load(mmap_mode="r")``).

    The maps are opened lazily in each process (DataLoader workers, DDP ranks open their own), and
    a batch is one fancy-indexing read per field at the sorted indices.

    With ``release`` (the default) the pages a batch touched are dropped from this process's mapping
    after the read (``madvise(MADV_DONTNEED)``: they stay in the OS page cache, and a later read maps
    them again), so that the process's resident memory stays bounded by the batch: otherwise every
    page of the pool ever read stays counted in its RSS (reclaimable, but it looks like a leak and
    counts against container memory limits that include mapped file pages)."""

    def __init__(self, folder: str | Path, fields: dict[str, dict], length: int, trim: dict | None = None,
                 release: bool = True):
        super().__init__(fields, length, trim)
        self.folder, self.release = Path(folder), release
        self._maps: dict[str, np.ndarray] | None = None

    def maps(self) -> dict[str, np.ndarray]:
        if self._maps is None:
            self._maps = {k: np.load(self.folder / f"{k}.npy", mmap_mode="r") for k in self.specs}
            bad = {k: m.shape for k, m in self._maps.items() if len(m) != self.length}
            if bad:
                raise ValueError(f"{self.folder}: fields {bad} do not hold {self.length} rows as meta.json says")
        return self._maps

    def _rows(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        order = np.argsort(indices, kind="stable")
        ordered = indices[order]
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        out = {}
        for k, m in self.maps().items():
            rows = m[ordered]  # reads these rows only (a copy in memory, the size of the batch)
            out[k] = rows[back]
            if self.release:
                _release(m)
        return out

    @property
    def targets(self) -> np.ndarray:
        return np.asarray(self.maps()["y"])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None}  # each process maps the files itself


def _release(m: np.ndarray) -> None:
    """Drop the pages of memory-mapped array ``m`` from this process's resident set (they stay in the page
    cache). The whole mapping, not the rows read: the kernel maps pages around a fault too ("fault-around"),
    and a walk over unmapped page tables costs microseconds."""
    mm = getattr(m, "_mmap", None)
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


class StreamedItems(_StoredItems):
    """Items from litdata's optimised chunks (``litdata.StreamingDataset(input_dir)``, a local folder or an
    ``s3://`` / ``gs://`` / ... URL), read by index: litdata finds an index's chunk from its
    ``index.json``, fetches the chunk (into ``cache_dir`` for remote data) and decodes the item.

    ``targets`` (the labels, for stratified splits and simulated oracles) are given separately: reading
    them through litdata would decode the whole pool.

    ``batch_decode`` is litdata's: how many neighbouring items it decodes per access. Its default
    (``"auto"``: a window of 256 for array data) suits streaming in order but makes a random read
    decode 256 items to serve one (~1.8 ms per item here against ~35 µs with 0), so exil's default
    is 0: scoring reads candidates by index, training reads labelled items scattered over the pool."""

    def __init__(self, input_dir: str, fields: dict[str, dict], length: int, targets: np.ndarray,
                 trim: dict | None = None, cache_dir: str | None = None, max_cache_size: str | None = None,
                 batch_decode: int | str | None = 0):
        super().__init__(fields, length, trim)
        self.input_dir, self.cache_dir, self.max_cache_size = str(input_dir), cache_dir, max_cache_size
        self.batch_decode = batch_decode
        self._targets = np.asarray(targets)
        if len(self._targets) != self.length:
            raise ValueError(f"{input_dir}: {len(self._targets)} targets for {self.length} items")
        self._stream = None

    def stream(self):
        if self._stream is None:
            from litdata import StreamingDataset

            import inspect

            kwargs: dict[str, Any] = {"max_cache_size": self.max_cache_size} if self.max_cache_size else {}
            if self.batch_decode is not None and "batch_decode" in inspect.signature(StreamingDataset).parameters:
                kwargs["batch_decode"] = self.batch_decode  # (older litdata decodes one item per access anyway)
            self._stream = StreamingDataset(self.input_dir, cache_dir=self.cache_dir, **kwargs)
            if len(self._stream) != self.length:
                raise ValueError(f"{self.input_dir} holds {len(self._stream)} items, meta.json says {self.length}")
        return self._stream

    def _rows(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        stream = self.stream()
        unique, back = np.unique(indices, return_inverse=True)  # sorted: chunk by chunk
        items = [stream[int(i)] for i in unique]
        out = {}
        for k, spec in self.specs.items():
            dtype = np.dtype(spec["dtype"])
            rows = np.stack([np.asarray(it[k], dtype=dtype) for it in items]) if items else \
                np.empty((0, *spec["shape"]), dtype=dtype)
            out[k] = rows[back.reshape(-1)]
        return out

    @property
    def targets(self) -> np.ndarray:
        return self._targets

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_stream": None}
