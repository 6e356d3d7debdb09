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

The module is put together from three parts:

- :mod:`exil.common.data.items`: the leaf datasets (in memory, memory-mapped, streamed by litdata);
- :mod:`exil.common.data.pool_state`: the state that changes during a run (labelled indices, their labels,
  annotations, extras): small, O(labelled) bookkeeping, rebuilt from the run journal on resume;
- :mod:`exil.common.data.views`: the datasets the loaders serve, views over the leaves that read that state
  (subsets, hidden oracle fields, labelled items, extras), each written once as a batch transform.
"""

from __future__ import annotations

from typing import Any, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, default_collate

from exil.common.data.pool_state import Extra, PoolState
from exil.common.data.views import Concat, ExtrasView, Hidden, LabelledView, Subset, targets_of
from exil.common.errors import ConfigError

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
        self._state = PoolState()  # labels, extras, annotations (see the properties below)
        self._ground_truth_val: Dataset | None = None
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
            pool = Subset(pool, subset, reindex=True)
        if val is None and self.val_size:
            n_val = int(round(self.val_size * len(pool))) if self.val_size < 1 else int(self.val_size)
            perm = rng.permutation(len(pool))
            val = Subset(pool, np.sort(perm[:n_val]), reindex=True)
            pool = Subset(pool, np.sort(perm[n_val:]), reindex=True)
        self._ground_truth_pool, self._ground_truth_val, self._ground_truth_test = pool, val, test
        hide = tuple(self.oracle_fields)
        self.pool = Hidden(pool, hide) if hide else pool
        self.val = Hidden(val, hide) if hide and val is not None else val
        self.test = Hidden(test, hide) if hide else test
        self._state.attach(len(self.pool))
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
    # what changes during a run lives in a PoolState; these properties are its public face (the loop
    # resets it on resume with ``dm.labels, dm.extras, dm.annotations = {}, [], {}``)
    @property
    def labels(self) -> dict[int, int]:
        """Pool index -> oracle label, in labelling order (add with :meth:`label`)."""
        return self._state.labels

    @labels.setter
    def labels(self, value: dict[int, int]) -> None:
        self._state.labels = value

    @property
    def extras(self) -> list[Extra]:
        return self._state.extras

    @extras.setter
    def extras(self, value: list[Extra]) -> None:
        self._state.extras = value

    @property
    def annotations(self) -> dict[int, dict[str, torch.Tensor]]:
        """Pool index -> annotation fields (add with :meth:`annotate`)."""
        return self._state.annotations

    @annotations.setter
    def annotations(self, value: dict[int, dict[str, torch.Tensor]]) -> None:
        self._state.annotations = value

    @property
    def labelled_indices(self) -> np.ndarray:
        """Labelled pool indices in labelling order (O(labelled): a copy of an array kept by :meth:`label`)."""
        return self._state.labelled_indices()

    @property
    def unlabelled_indices(self) -> np.ndarray:
        """Unlabelled pool indices, ascending (from a mask kept by :meth:`label`, cached until the next one)."""
        self.setup()
        return self._state.unlabelled_indices()

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
        """Mark pool items as labelled with the oracle's labels (O(1) checks per item)."""
        self.setup()
        self._state.label(indices, labels, self.num_classes)

    def add_extras(self, extras: Sequence[Extra]) -> None:
        self._state.add_extras(extras)

    def restore(self, items: Sequence[int], labels: Sequence[int], annotations: dict[int, dict[str, torch.Tensor]],
                extras: Sequence[Extra]) -> None:
        """Start the pool state over from a whole record of it (a resumed run's journal, rank 0's state sent to
        the other ranks): these labels in this order, then the annotations and extras."""
        self.labels, self.extras, self.annotations = {}, [], {}
        self.label(items, labels)
        self.annotate(annotations)
        self.add_extras(extras)

    def annotate(self, annotations: dict[int, dict[str, torch.Tensor]]) -> None:
        """Attach a teacher's annotation fields (e.g. ``relevant`` masks) to labelled pool items."""
        self._state.annotate(annotations)

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
        state = self._state
        annotations = state.stacked_annotations()
        parts: list[Dataset] = [LabelledView(self.pool, state.labelled_indices(), state.labelled_labels(), annotations)]
        if state.extras:
            parts.append(ExtrasView(self.pool, state.extras, annotations))
        return Concat(parts) if len(parts) > 1 else parts[0]

    def train_dataloader(self) -> DataLoader:
        ds = self.train_dataset()
        sampler = EpochSampler(ds, max(len(ds), self.min_epoch_size))
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate)

    def pool_dataloader(self, indices: Sequence[int] | None = None) -> DataLoader:
        """Unlabelled items (or the given pool indices), unshuffled, with their pool index in ``idx``."""
        self.setup()
        idx = self.unlabelled_indices if indices is None else np.asarray(indices, dtype=np.int64)
        return self._eval_loader(Subset(self.pool, idx))

    def val_dataloader(self) -> DataLoader | list:
        self.setup()
        return self._eval_loader(self.val) if self.val is not None else []

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._eval_loader(self.test)

    def _eval_loader(self, ds: Dataset) -> DataLoader:
        return DataLoader(ds, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=collate)


class EpochSampler(Sampler):
    """An epoch of ``num_samples`` items: whole reshuffled passes over ``ds``, then a partial one (what
    ``RandomSampler(ds, num_samples=...)`` draws, and from the same RNG).

    Not a ``RandomSampler`` on purpose: under DDP Lightning replaces a ``RandomSampler`` by a
    ``DistributedSampler`` over the dataset, which would drop ``min_epoch_size`` (each rank would see one
    pass over the labelled set per epoch: 1 step where one process takes 8); any other sampler it wraps in
    a ``DistributedSamplerWrapper``, which gives each rank its share of this epoch."""

    def __init__(self, ds: Dataset, num_samples: int):
        self._inner = RandomSampler(ds, num_samples=num_samples)

    def __iter__(self):
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)


def collate(batch: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """Batches come whole from ``__getitems__`` (tensor datasets) or as a list of items (others)."""
    return batch if isinstance(batch, dict) else default_collate(batch)


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
