"""Views over a pool: datasets that read another dataset (their ``base``) and change what it serves.

Every view is written once, as a *batch* transform: ``_batch(js, single)`` reads the base items it
needs as one batch (a dict of batched tensors, :func:`read`) and merges its own fields into it. The
batch path ``__getitems__(js)`` (what a DataLoader calls) is ``_batch(js)``; the item path
``__getitem__(j)`` is the one row of ``_batch([j])``, unbatched (:func:`unbatch`). So the merge of an
extra's patches and annotations, say, exists once, and an item always equals its row of a batch.

``single=True`` only changes how the innermost dataset is read: through its item path (collated to a
batch of one) rather than its batch path, so that a leaf whose batches differ from its items in shape
(tokenised texts trimmed to a batch's longest item) still serves whole items from ``view[j]``.

A base without ``__getitems__`` (items as dicts) is read item by item and collated with
``default_collate``; a base whose ``__getitems__`` returns a list of items is collated too. Any dataset
with ``__len__`` and ``__getitem__`` / ``__getitems__`` serving exil item dicts plugs in below these
views: the in-memory :class:`~exil.common.data.items.TensorItems`, the memory-mapped
:class:`~exil.common.data.items.MemmapItems` and the streamed :class:`~exil.common.data.items.StreamedItems`
alike, with no special case.

The views: :class:`Subset` (some items, optionally re-indexed), :class:`Hidden` (without the
oracle-only fields), :class:`LabelledView` (the labelled items with the oracle's labels and their
annotations), :class:`ExtrasView` (examples added by methods, shaped like pool items) and
:class:`Concat` (labelled items and extras as one training set).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, default_collate

from exil.common.data.pool_state import Extra, StackedAnnotations


def read(ds: Dataset, indices: Sequence[int], single: bool = False) -> dict[str, Any]:
    """Items ``indices`` of ``ds`` as one batch (a dict of batched fields)."""
    if isinstance(ds, View):
        return ds._batch(indices, single)
    if single:
        (i,) = indices
        return default_collate([ds[int(i)]])
    if hasattr(ds, "__getitems__"):
        batch = ds.__getitems__(list(indices))
        return batch if isinstance(batch, dict) else default_collate(batch)
    return default_collate([ds[int(i)] for i in indices])


def unbatch(batch: dict[str, Any], row: int = 0) -> dict[str, Any]:
    """One row of a batch as an item; ``idx`` as a Python int, as datasets serve it."""
    def one(v):
        if isinstance(v, dict):
            return {k: one(u) for k, u in v.items()}
        return v[row]

    item = {k: one(v) for k, v in batch.items()}
    if "idx" in item and torch.is_tensor(item["idx"]):
        item["idx"] = int(item["idx"])
    return item


class View(Dataset):
    """A dataset over ``base`` defined by one batch transform, :meth:`_batch` (module docstring)."""

    base: Dataset

    def _batch(self, js: Sequence[int], single: bool) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, j: int) -> dict[str, Any]:
        return unbatch(self._batch([int(j)], True))

    def __getitems__(self, js: Sequence[int]) -> dict[str, Any]:
        return self._batch(list(js), False)


class Subset(View):
    """Items ``indices`` of ``base``; with ``reindex`` an item's ``idx`` becomes its position in the subset."""

    def __init__(self, base: Dataset, indices: Sequence[int], reindex: bool = False):
        self.base, self.indices, self.reindex = base, np.asarray(indices, dtype=np.int64), reindex

    def __len__(self) -> int:
        return len(self.indices)

    def _batch(self, js, single):
        js = np.asarray(js, dtype=np.int64)
        batch = read(self.base, self.indices[js].tolist(), single)
        if self.reindex:
            batch["idx"] = torch.from_numpy(js.copy())
        return batch

    @property
    def targets(self) -> np.ndarray:
        return targets_of(self.base)[self.indices]


class Hidden(View):
    """A dataset without some fields (the ground truth that only oracles may see)."""

    def __init__(self, base: Dataset, hide: tuple[str, ...]):
        self.base, self.hide = base, tuple(hide)

    def __len__(self) -> int:
        return len(self.base)

    def _batch(self, js, single):
        return {k: v for k, v in read(self.base, js, single).items() if k not in self.hide}

    @property
    def targets(self):
        return targets_of(self.base)


class LabelledView(View):
    """The labelled part of the pool with the oracle's labels (never the ground truth), weight 1 and annotations."""

    def __init__(self, base: Dataset, indices: Sequence[int], labels: Sequence[int], annotations: StackedAnnotations):
        self.base, self.annotations = base, annotations
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def _batch(self, js, single):
        js = np.asarray(js, dtype=np.int64)
        items = self.indices[js]
        batch = read(self.base, items.tolist(), single)
        n = len(js)
        batch["y"] = torch.from_numpy(self.labels[js].copy())
        batch["weight"] = torch.ones(n)
        batch["extra"] = torch.zeros(n, dtype=torch.bool)
        if self.annotations:
            batch.update(self.annotations.fields(items))
        return batch


class ExtrasView(View):
    """Extra examples, shaped like pool items: fields missing from an extra are copied from its origin
    (zeros for an extra without one), patches are applied to the origin's value, and annotation fields
    come from the extra itself, else zeros with ``annotated`` False.

    A batch reads all its origins from the base at once and merges the extras' fields, patches and
    annotations into it by tensor indexing, whatever mix of field sets and origins it holds."""

    def __init__(self, base: Dataset, extras: Sequence[Extra], annotations: StackedAnnotations):
        self.base, self.extras, self.annotations = base, list(extras), annotations

    def __len__(self) -> int:
        return len(self.extras)

    def _batch(self, js, single):
        extras = [self.extras[int(j)] for j in js]
        n = len(extras)
        # an extra without an origin is shaped like the first pool item, its fields zeroed below
        batch = read(self.base, [e.origin if e.origin >= 0 else 0 for e in extras], single)
        templates = self.annotations.templates if self.annotations else {}
        for e in extras:
            patches = {k for k in e.fields if k.endswith(("@index", "@values")) and k.split("@")[0] in batch}
            unknown = set(e.fields) - set(batch) - set(templates) - patches
            if unknown:
                raise KeyError(f"extra example has fields {sorted(unknown)} that pool items do not have")
        blank = [r for r, e in enumerate(extras) if e.origin < 0]
        if blank:
            rows = torch.as_tensor(blank)
            for k, v in batch.items():
                if k not in ("y", "idx") and torch.is_tensor(v):
                    batch[k] = v.clone()
                    batch[k][rows] = 0
        plain = {k for e in extras for k in e.fields if "@" not in k and k not in templates and k not in ("y", "idx")}
        for k in sorted(plain):
            have = [r for r, e in enumerate(extras) if k in e.fields]
            values = torch.stack([extras[r].fields[k] for r in have])
            if len(have) == n:
                batch[k] = values
            else:
                batch[k] = batch[k].clone()
                batch[k][torch.as_tensor(have)] = values.to(batch[k].dtype)
        patched = {k[: -len("@index")] for e in extras for k in e.fields if k.endswith("@index")}
        for name in sorted(patched):
            have = [r for r, e in enumerate(extras) if f"{name}@index" in e.fields]
            index = [extras[r].fields[f"{name}@index"].long() for r in have]
            rows = torch.repeat_interleave(torch.as_tensor(have), torch.as_tensor([len(i) for i in index]))
            flat = batch[name].reshape(n, -1).clone()
            values = torch.cat([extras[r].fields[f"{name}@values"].flatten() for r in have])
            flat[rows, torch.cat(index)] = values.to(flat.dtype)
            batch[name] = flat.view(batch[name].shape)
        if self.annotations:
            for k, t in templates.items():
                batch[k] = torch.stack([e.fields.get(k, t) for e in extras])
            batch["annotated"] = torch.as_tensor([any(k in templates for k in e.fields) for e in extras],
                                                 dtype=torch.bool)
        batch["idx"] = torch.as_tensor([e.origin for e in extras], dtype=torch.long)
        batch["y"] = torch.as_tensor([e.label for e in extras], dtype=torch.long)
        batch["weight"] = torch.as_tensor([float(e.weight) for e in extras], dtype=torch.float32)
        batch["extra"] = torch.ones(n, dtype=torch.bool)
        return batch


class Concat(View, ConcatDataset):
    """``ConcatDataset`` that fetches a batch part by part (each part batched), instead of item by item."""

    def _batch(self, js, single):
        idx = np.asarray(js, dtype=np.int64)
        if (idx < 0).any():
            idx = np.where(idx < 0, idx + len(self), idx)
        part = np.searchsorted(self.cumulative_sizes, idx, side="right")
        starts = np.concatenate([[0], self.cumulative_sizes[:-1]])
        batches, order = [], []
        for p in np.unique(part):
            sel = np.flatnonzero(part == p)
            batches.append(read(self.datasets[p], (idx[sel] - starts[p]).tolist(), single))
            order.append(sel)
        if len(batches) == 1:
            return batches[0]
        inverse = torch.from_numpy(np.argsort(np.concatenate(order)))
        return {k: torch.cat([torch.as_tensor(b[k]) for b in batches])[inverse] for k in batches[0]}


def targets_of(ds: Dataset) -> np.ndarray:
    """Ground-truth labels of a dataset as a numpy array, without loading inputs where possible."""
    if isinstance(ds, Subset):
        return targets_of(ds.base)[ds.indices]
    if hasattr(ds, "targets"):
        t = ds.targets
        # a copy, not a view: spawning DDP workers moves tensor storage to shared memory, which
        # would leave a numpy view pointing at freed memory
        return t.numpy().copy() if torch.is_tensor(t) else np.array(t)
    return np.asarray([int(ds[i]["y"]) for i in range(len(ds))])
