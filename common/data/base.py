"""Pool-aware data: which items are labelled, by whom, and what extra examples exist.

A :class:`PoolDataModule` owns three datasets (``train`` = the pool, ``val``,
``test``) whose items are dicts of tensors with at least ``x`` (the input) and
``y`` (the ground-truth label). Ground truth of the pool is never served for
training: the train loader serves the *oracle's* label of each labelled item
(``labels``), plus extra examples (counterexamples, crops, ...) with their own
labels and weights. Every training item carries ``weight`` so that a method can
down-weight what it adds.

Fields named in ``oracle_fields`` (ground truth beyond the label: relevance masks, the decoy's
label, part locations) are stripped from every loader; only oracles read them, through
:meth:`PoolDataModule.ground_truth`. A method that is *given* such annotations gets them from the
oracle and adds them to the training set itself.

**Annotations** are what a teacher said about a labelled item beyond its label — e.g. the mask of
its relevant pixels (RRR, alternating training). They are added with :meth:`PoolDataModule.annotate`
and served with the item's training batches; items without one get zeros and ``annotated`` False,
so a loss can tell them apart. Extra examples may carry annotation fields of their own.

The state that changes during a run (labelled indices, their labels, annotations, extras) is
small and is rebuilt from the run journal on resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, RandomSampler, default_collate

from common.errors import ConfigError


@dataclass
class Extra:
    """An example added by a method: ``fields`` holds at least ``x``; ``origin`` is the pool item it came from.

    A field may also be given as a *patch* of its origin's value — ``"<name>@index"`` (flat positions)
    and ``"<name>@values"`` — so that a counterexample that changes 16 pixels of an image stores 16
    values, not the image (``patch`` builds one).
    """

    fields: dict[str, torch.Tensor]
    label: int
    weight: float = 1.0
    origin: int = -1
    kind: str = "extra"


def patch(name: str, original: torch.Tensor, changed: torch.Tensor) -> dict[str, torch.Tensor]:
    """The patch fields of :class:`Extra` that turn ``original`` into ``changed``."""
    where = (original != changed).flatten().nonzero().squeeze(1)
    return {f"{name}@index": where.to(torch.int32), f"{name}@values": changed.flatten()[where]}


def _apply_patches(item: dict[str, Any], fields: dict[str, torch.Tensor]) -> None:
    for key in fields:
        if key.endswith("@index"):
            name = key[: -len("@index")]
            flat = item[name].clone().flatten()
            flat[fields[key].long()] = fields[f"{name}@values"].to(flat.dtype)
            item[name] = flat.view_as(item[name])


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


class _Annotations:
    """Annotation fields of training items, stacked once so that a batch is served by indexing:
    ``fields(keys)`` gives each field for those pool items, zeros where an item has none."""

    def __init__(self, annotations: dict[int, dict[str, torch.Tensor]]):
        self.templates: dict[str, torch.Tensor] = {}
        for fields in annotations.values():
            for k, v in fields.items():
                self.templates.setdefault(k, torch.zeros_like(v))
        items = np.fromiter(annotations, dtype=np.int64, count=len(annotations))
        self._row = np.full(int(items.max()) + 1 if len(items) else 0, -1, dtype=np.int64)  # pool index -> row
        self._row[items] = np.arange(len(items))
        # one extra last row of zeros: what row −1 (not annotated) reads
        self._stacked = {k: torch.stack([*(annotations[int(i)].get(k, t) for i in items), t])
                         for k, t in self.templates.items()}

    def __bool__(self) -> bool:
        return bool(self.templates)

    def fields(self, keys: Sequence[int]) -> dict[str, torch.Tensor]:
        keys = np.asarray(keys, dtype=np.int64)
        rows = np.full(len(keys), -1, dtype=np.int64)
        inside = keys < len(self._row)
        rows[inside] = self._row[keys[inside]]
        index = torch.from_numpy(rows)
        out = {k: v[index] for k, v in self._stacked.items()}
        out["annotated"] = index >= 0
        return out


class _LabelledView(Dataset):
    """The labelled part of the pool with the oracle's labels (never the ground truth), weight 1 and annotations."""

    def __init__(self, base: Dataset, indices: Sequence[int], labels: Sequence[int], annotations: _Annotations):
        self.base, self.indices, self.labels, self.annotations = base, list(indices), list(labels), annotations

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> dict[str, Any]:
        item = dict(self.base[self.indices[j]])
        item["y"] = torch.tensor(self.labels[j], dtype=torch.long)
        item["weight"] = torch.tensor(1.0)
        item["extra"] = torch.tensor(False)
        if self.annotations:
            item.update({k: v[0] for k, v in self.annotations.fields([self.indices[j]]).items()})
        return item

    def __getitems__(self, js: Sequence[int]) -> dict[str, Any] | list[dict[str, Any]]:
        if not hasattr(self.base, "__getitems__"):
            return [self[j] for j in js]
        items = [self.indices[j] for j in js]
        batch = self.base.__getitems__(items)
        if not isinstance(batch, dict):
            return [self[j] for j in js]
        n = len(js)
        batch["y"] = torch.as_tensor([self.labels[j] for j in js], dtype=torch.long)
        batch["weight"] = torch.ones(n)
        batch["extra"] = torch.zeros(n, dtype=torch.bool)
        if self.annotations:
            batch.update(self.annotations.fields(items))
        return batch


class _ExtrasView(Dataset):
    """Extra examples, shaped like pool items (fields missing from an extra are copied from its origin, else
    zeros); annotation fields come from the extra itself, else zeros with ``annotated`` False."""

    def __init__(self, base: Dataset, extras: Sequence[Extra], annotations: _Annotations):
        self.base, self.extras, self.annotations = base, list(extras), annotations
        self._template = base[0]

    def __len__(self) -> int:
        return len(self.extras)

    def __getitem__(self, j: int) -> dict[str, Any]:
        e = self.extras[j]
        ref = self.base[e.origin] if e.origin >= 0 else self._template
        item = {}
        for k, v in ref.items():
            if k in e.fields:
                item[k] = e.fields[k]
            elif k in ("y", "idx"):
                continue
            elif e.origin >= 0:
                item[k] = v
            else:
                item[k] = torch.zeros_like(v) if torch.is_tensor(v) else v
        _apply_patches(item, e.fields)
        own = [k for k in e.fields if k in self.annotations.templates]
        patches = {k for k in e.fields if k.endswith(("@index", "@values")) and k.split("@")[0] in ref}
        unknown = set(e.fields) - set(ref) - set(own) - patches
        if unknown:
            raise KeyError(f"extra example has fields {sorted(unknown)} that pool items do not have")
        if self.annotations:
            for k, t in self.annotations.templates.items():
                item[k] = e.fields.get(k, t)
            item["annotated"] = torch.tensor(bool(own))
        item["idx"] = e.origin
        item["y"] = torch.tensor(e.label, dtype=torch.long)
        item["weight"] = torch.tensor(float(e.weight))
        item["extra"] = torch.tensor(True)
        return item

    def __getitems__(self, js: Sequence[int]) -> dict[str, Any]:
        """A batch at once when its extras all have an origin and the same fields (counterexamples of
        one kind): the origins are fetched as one batch and the extras' fields and patches applied to
        it by tensor indexing; otherwise item by item."""
        extras = [self.extras[j] for j in js]
        keys = {frozenset(e.fields) for e in extras}
        if len(keys) != 1 or any(e.origin < 0 for e in extras) or not hasattr(self.base, "__getitems__"):
            return default_collate([self[j] for j in js])
        batch = self.base.__getitems__([e.origin for e in extras])
        (fields,) = keys
        own = [k for k in fields if k in self.annotations.templates]
        plain = [k for k in fields if "@" not in k and k not in own]
        if not isinstance(batch, dict) or any(k not in batch for k in plain):
            return default_collate([self[j] for j in js])  # (reports unknown fields)
        for k in plain:
            batch[k] = torch.stack([e.fields[k] for e in extras])
        for k in (f for f in fields if f.endswith("@index")):
            name = k[: -len("@index")]
            index = [e.fields[k].long() for e in extras]
            rows = torch.repeat_interleave(torch.arange(len(extras)), torch.tensor([len(i) for i in index]))
            flat = batch[name].reshape(len(extras), -1).clone()
            flat[rows, torch.cat(index)] = torch.cat([e.fields[f"{name}@values"] for e in extras]).to(flat.dtype)
            batch[name] = flat.view_as(batch[name])
        if self.annotations:
            for k, t in self.annotations.templates.items():
                batch[k] = torch.stack([e.fields.get(k, t) for e in extras])
            batch["annotated"] = torch.full((len(extras),), bool(own))
        batch["idx"] = torch.tensor([e.origin for e in extras])
        batch["y"] = torch.tensor([e.label for e in extras], dtype=torch.long)
        batch["weight"] = torch.tensor([float(e.weight) for e in extras])
        batch["extra"] = torch.ones(len(extras), dtype=torch.bool)
        return batch


class _Concat(ConcatDataset):
    """``ConcatDataset`` that fetches a batch part by part (each part batched), instead of item by item."""

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        idx = np.asarray(indices, dtype=np.int64)
        part = np.searchsorted(self.cumulative_sizes, idx, side="right")
        starts = np.concatenate([[0], self.cumulative_sizes[:-1]])
        batches, order = [], []
        for p in np.unique(part):
            sel = np.flatnonzero(part == p)
            local = (idx[sel] - starts[p]).tolist()
            ds = self.datasets[p]
            b = ds.__getitems__(local) if hasattr(ds, "__getitems__") else [ds[i] for i in local]
            batches.append(b if isinstance(b, dict) else default_collate(b))
            order.append(sel)
        inverse = np.argsort(np.concatenate(order))
        return {k: torch.cat([torch.as_tensor(b[k]) for b in batches])[inverse] for k in batches[0]}


class _Hidden(Dataset):
    """A dataset without some fields (the ground truth that only oracles may see)."""

    def __init__(self, base: Dataset, hide: tuple[str, ...]):
        self.base, self.hide = base, hide

    def __len__(self) -> int:
        return len(self.base)

    def _strip(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if k not in self.hide}

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._strip(self.base[i])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any] | list[dict[str, Any]]:
        if not hasattr(self.base, "__getitems__"):
            return [self[i] for i in indices]
        batch = self.base.__getitems__(indices)
        return self._strip(batch) if isinstance(batch, dict) else [self._strip(b) for b in batch]

    @property
    def targets(self):
        return targets_of(self.base)


class _Subset(Dataset):
    """Items ``indices`` of ``base``; with ``reindex`` an item's ``idx`` becomes its position in the subset."""

    def __init__(self, base: Dataset, indices: Sequence[int], reindex: bool = False):
        self.base, self.indices, self.reindex = base, np.asarray(indices, dtype=np.int64), reindex

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> dict[str, Any]:
        item = self.base[int(self.indices[j])]
        if self.reindex:
            item = dict(item, idx=j)
        return item

    def __getitems__(self, js: Sequence[int]) -> dict[str, Any] | list[dict[str, Any]]:
        if not hasattr(self.base, "__getitems__"):
            return [self[j] for j in js]
        batch = self.base.__getitems__(self.indices[np.asarray(js, dtype=np.int64)].tolist())
        if self.reindex:
            batch["idx"] = torch.as_tensor(js, dtype=torch.long)
        return batch


class PoolDataModule(pl.LightningDataModule):
    """Base of every exil dataset. Subclasses implement :meth:`load` returning (pool, val, test).

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size for pool scoring, validation and test.
        num_workers: DataLoader workers.
        seed: seed of the data splits made here (validation split, subsets).
        val_size: items moved from the pool into a validation set when the dataset has none
            (a fraction if < 1, else a count; 0 = no validation set).
        pool_size: optional cap on the pool (a stratified random subset), for quick runs and
            small-data experiments.
        class_imbalance: with ``pool_size``, make the subset long-tailed instead of stratified: class
            ``c`` (in label order) keeps a share proportional to ``class_imbalance ** (c / (C − 1))``,
            so the rarest class has ``class_imbalance`` times the items of the most frequent
            (e.g. 0.1; the exponential profile of Cui et al. 2019's long-tailed CIFAR).
        min_epoch_size: an epoch draws at least this many training items (whole reshuffled passes
            over the labelled set, then a partial one), so that tiny labelled sets early in a run get
            enough optimiser steps per epoch without paying Lightning's per-epoch overhead many times.
    """

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        seed: int = 0,
        val_size: float = 0.0,
        pool_size: int | None = None,
        min_epoch_size: int = 0,
        class_imbalance: float | None = None,
    ):
        super().__init__()
        for name, value, least in (("batch_size", batch_size, 1), ("eval_batch_size", eval_batch_size, 1),
                                   ("num_workers", num_workers, 0), ("min_epoch_size", min_epoch_size, 0),
                                   ("pool_size", pool_size, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ConfigError(f"dataset.{name} must be a whole number ≥ {least}, got {value!r}")
        if not (isinstance(val_size, (int, float)) and val_size >= 0):
            raise ConfigError(f"dataset.val_size must be ≥ 0 (a fraction if < 1, else a count), got {val_size!r}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.val_size = val_size
        self.pool_size = pool_size
        self.min_epoch_size = min_epoch_size
        if class_imbalance is not None and not 0 < class_imbalance <= 1:
            raise ConfigError(f"dataset.class_imbalance must be in (0, 1], got {class_imbalance}")
        if class_imbalance is not None and pool_size is None:
            raise ConfigError("dataset.class_imbalance needs dataset.pool_size (the size of the imbalanced subset)")
        self.class_imbalance = class_imbalance
        self.pool: Dataset | None = None
        self.val: Dataset | None = None
        self.test: Dataset | None = None
        self.labels: dict[int, int] = {}  # pool index -> oracle label, in labelling order
        self.extras: list[Extra] = []
        self.annotations: dict[int, dict[str, torch.Tensor]] = {}  # pool index -> annotation fields
        self._loaded = False

    #: fields of an item that only oracles may read (stripped from every loader)
    oracle_fields: tuple[str, ...] = ()

    # ----------------------------------------------------------------- loading
    def load(self) -> tuple[Dataset, Dataset | None, Dataset]:
        """Return (pool, val or None, test) datasets whose items are dicts with ``x`` and ``y``."""
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in range(self.num_classes)]

    def setup(self, stage: str | None = None) -> None:
        if self._loaded:
            return
        pool, val, test = self.load()
        rng = np.random.default_rng(self.seed)
        if self.pool_size is not None and self.pool_size > len(pool):
            raise ConfigError(f"dataset.pool_size={self.pool_size}, but {type(self).__name__}'s pool holds "
                              f"{len(pool)} items; give at most {len(pool)} (or null for the whole pool)")
        if self.pool_size is not None and (self.pool_size < len(pool) or self.class_imbalance is not None):
            targets = targets_of(pool)
            subset = (stratified_subset(targets, self.pool_size, rng) if self.class_imbalance is None
                      else imbalanced_subset(targets, self.pool_size, self.class_imbalance, rng))
            pool = _Subset(pool, subset, reindex=True)
        if val is None and self.val_size:
            n_val = int(round(self.val_size * len(pool))) if self.val_size < 1 else int(self.val_size)
            perm = rng.permutation(len(pool))
            val = _Subset(pool, np.sort(perm[:n_val]), reindex=True)
            pool = _Subset(pool, np.sort(perm[n_val:]), reindex=True)
        self._ground_truth_pool, self._ground_truth_test = pool, test
        hide = tuple(self.oracle_fields)
        self.pool = _Hidden(pool, hide) if hide else pool
        self.val = _Hidden(val, hide) if hide and val is not None else val
        self.test = _Hidden(test, hide) if hide else test
        self._targets = targets_of(pool)
        self._num_classes = int(max(int(targets_of(test).max()), int(self._targets.max())) + 1)
        self._loaded = True

    @property
    def num_classes(self) -> int:
        self.setup()
        return self._num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.setup()
        return tuple(self.pool[0]["x"].shape)

    # ----------------------------------------------------------- pool state
    @property
    def labelled_indices(self) -> np.ndarray:
        return np.fromiter(self.labels.keys(), dtype=np.int64, count=len(self.labels))

    @property
    def unlabelled_indices(self) -> np.ndarray:
        self.setup()
        mask = np.ones(len(self.pool), dtype=bool)
        mask[self.labelled_indices] = False
        return np.flatnonzero(mask)

    def true_label(self, idx: int) -> int:
        """Ground truth of a pool item: for simulated oracles and metrics only, never for training."""
        self.setup()
        return int(self._targets[idx])

    def ground_truth(self, idx: int, field: str) -> Any:
        """A ground-truth field of a pool item (``y``, or one of ``oracle_fields``): for oracles only."""
        self.setup()
        return self._ground_truth_pool[int(idx)][field]

    def test_ground_truth_dataloader(self) -> DataLoader:
        """The test set *with* its oracle-only fields (relevance masks), for evaluation metrics only."""
        self.setup()
        return self._eval_loader(self._ground_truth_test)

    def pool_item(self, idx: int) -> dict[str, Any]:
        self.setup()
        return self.pool[int(idx)]

    def label(self, indices: Sequence[int], labels: Sequence[int]) -> None:
        """Mark pool items as labelled with the oracle's labels."""
        self.setup()
        for i, y in zip(indices, labels):
            i, y = int(i), int(y)
            if not 0 <= i < len(self.pool):
                raise ValueError(f"pool index {i} is outside 0..{len(self.pool) - 1}")
            if i in self.labels:
                raise ValueError(f"pool item {i} is already labelled")
            if not 0 <= y < self.num_classes:
                raise ValueError(f"label {y} of item {i} is outside 0..{self.num_classes - 1}")
            self.labels[i] = y

    def add_extras(self, extras: Sequence[Extra]) -> None:
        self.extras.extend(extras)

    def annotate(self, annotations: dict[int, dict[str, torch.Tensor]]) -> None:
        """Attach a teacher's annotation fields (e.g. ``relevant`` masks) to labelled pool items."""
        for i, fields in annotations.items():
            i = int(i)
            if i not in self.labels:
                raise ValueError(f"pool item {i} is annotated but not labelled")
            if i in self.annotations:
                raise ValueError(f"pool item {i} is already annotated")
            self.annotations[i] = dict(fields)

    def initial_indices(self, per_class: int | None, size: int | None, rng: np.random.Generator) -> np.ndarray:
        """The initial labelled set: ``per_class`` items of every class (stratified), or ``size`` at random
        (``-1``: the whole pool, for passive training with ``loop.rounds=0``)."""
        self.setup()
        if per_class:
            return stratified_per_class(self._targets, per_class, rng)
        if size == -1:  # the whole pool: passive training
            return np.arange(len(self.pool))
        if size:
            if size > len(self.pool):
                raise ConfigError(f"loop.initial_size={size} is larger than the pool ({len(self.pool)} items)")
            return np.sort(rng.choice(len(self.pool), size=size, replace=False))
        raise ConfigError("loop.initial_per_class or loop.initial_size must be > 0")

    # ------------------------------------------------------------- loaders
    def train_dataset(self) -> Dataset:
        self.setup()
        annotations = _Annotations(self.annotations)
        parts: list[Dataset] = [_LabelledView(self.pool, list(self.labels), list(self.labels.values()), annotations)]
        if self.extras:
            parts.append(_ExtrasView(self.pool, self.extras, annotations))
        return _Concat(parts) if len(parts) > 1 else parts[0]

    def train_dataloader(self) -> DataLoader:
        ds = self.train_dataset()
        sampler = RandomSampler(ds, num_samples=max(len(ds), self.min_epoch_size))
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate)

    def pool_dataloader(self, indices: Sequence[int] | None = None) -> DataLoader:
        """Unlabelled items (or the given pool indices), unshuffled, with their pool index in ``idx``."""
        self.setup()
        idx = self.unlabelled_indices if indices is None else np.asarray(indices, dtype=np.int64)
        return self._eval_loader(_Subset(self.pool, idx))

    def val_dataloader(self) -> DataLoader | list:
        self.setup()
        return self._eval_loader(self.val) if self.val is not None else []

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._eval_loader(self.test)

    def _eval_loader(self, ds: Dataset) -> DataLoader:
        return DataLoader(ds, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=collate)


def collate(batch: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """Batches come whole from ``__getitems__`` (tensor datasets) or as a list of items (others)."""
    return batch if isinstance(batch, dict) else default_collate(batch)


def targets_of(ds: Dataset) -> np.ndarray:
    """Ground-truth labels of a dataset as a numpy array, without loading inputs where possible."""
    if isinstance(ds, _Subset):
        return targets_of(ds.base)[ds.indices]
    if hasattr(ds, "targets"):
        t = ds.targets
        # a copy, not a view: spawning DDP workers moves tensor storage to shared memory, which
        # would leave a numpy view pointing at freed memory
        return t.numpy().copy() if torch.is_tensor(t) else np.array(t)
    return np.asarray([int(ds[i]["y"]) for i in range(len(ds))])


def stratified_per_class(targets: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    out = []
    for c in np.unique(targets):
        members = np.flatnonzero(targets == c)
        if len(members) < per_class:
            raise ConfigError(f"class {c} has {len(members)} items, fewer than initial_per_class={per_class}")
        out.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(out))


def imbalanced_subset(targets: np.ndarray, size: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """``size`` items with class ``c`` of C (label order) in proportion to ``ratio ** (c / (C − 1))``."""
    classes = np.unique(targets)
    share = ratio ** (np.arange(len(classes)) / max(len(classes) - 1, 1))
    exact = share / share.sum() * size
    quota = np.maximum(np.floor(exact).astype(int), 1)
    quota[np.argsort(-(exact - quota))[: max(size - quota.sum(), 0)]] += 1
    out = []
    for c, q in zip(classes, quota):
        members = np.flatnonzero(targets == c)
        if q > len(members):
            raise ConfigError(f"class {c} has {len(members)} items; an imbalanced pool of {size} needs {q}")
        out.append(rng.choice(members, size=q, replace=False))
    return np.sort(np.concatenate(out))


def stratified_subset(targets: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A subset of ``size`` items with the class proportions of ``targets``."""
    classes, counts = np.unique(targets, return_counts=True)
    quota = np.floor(counts / counts.sum() * size).astype(int)
    quota[np.argsort(-(counts / counts.sum() * size - quota))[: size - quota.sum()]] += 1
    out = [rng.choice(np.flatnonzero(targets == c), size=q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(out))
