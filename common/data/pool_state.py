"""What a run knows about its pool: the oracle's labels (in labelling order), annotations, extra examples.

:class:`PoolState` is the small state that changes during a run and is rebuilt from the journal on
resume. It holds no item: the datasets are served by the views of :mod:`exil.common.data.views`, which read
this state. The bookkeeping is O(labelled) where it can be:

- ``labels`` is a dict pool index → oracle label, in labelling order; :meth:`PoolState.label` checks a
  new label in O(1) (dict membership, a range check) and appends to an index array that grows by
  doubling, so :meth:`PoolState.labelled_indices` costs a copy of the labelled indices, never a scan of
  the pool;
- the unlabelled set is a boolean mask over the pool (one byte per item, made once when the pool's
  size is known), cleared item by item as labels arrive; :meth:`PoolState.unlabelled_indices` turns it
  into indices once per change (cached; each call gets a copy) — the only O(pool) work;
- the annotations are stacked into tensors once per change (:class:`StackedAnnotations`), not per round.

A plain ``dict`` stays the public face of ``labels`` (code that reads ``dm.labels[i]`` or assigns
``dm.labels = {}`` keeps working); should a caller mutate it directly, the arrays are rebuilt from it
when its length no longer matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


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


class StackedAnnotations:
    """Annotation fields of training items, stacked once so that a batch is served by indexing:
    ``fields(keys)`` gives each field for those pool items, zeros where an item has none."""

    def __init__(self, annotations: dict[int, dict[str, torch.Tensor]]):
        self.templates: dict[str, torch.Tensor] = {}
        for fields in annotations.values():
            for k, v in fields.items():
                self.templates.setdefault(k, torch.zeros_like(v))
        items = np.fromiter(annotations, dtype=np.int64, count=len(annotations))
        order = np.argsort(items, kind="stable")  # pool index -> row by binary search: O(annotated), not O(pool)
        self._sorted, self._row_of_sorted = items[order], order
        # one extra last row of zeros: what row −1 (not annotated) reads
        self._stacked = {k: torch.stack([*(annotations[int(i)].get(k, t) for i in items), t])
                         for k, t in self.templates.items()}

    def __bool__(self) -> bool:
        return bool(self.templates)

    def fields(self, keys: Sequence[int]) -> dict[str, torch.Tensor]:
        keys = np.asarray(keys, dtype=np.int64)
        rows = np.full(len(keys), -1, dtype=np.int64)
        if len(self._sorted):
            pos = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
            hit = self._sorted[pos] == keys
            rows[hit] = self._row_of_sorted[pos[hit]]
        index = torch.from_numpy(rows)
        out = {k: v[index] for k, v in self._stacked.items()}
        out["annotated"] = index >= 0
        return out


class PoolState:
    """Labels, annotations and extras of one pool (module docstring). ``attach(size)`` once the pool's
    size is known (before that, only the labels are kept)."""

    def __init__(self) -> None:
        self._labels: dict[int, int] = {}
        self._extras: list[Extra] = []
        self._annotations: dict[int, dict[str, torch.Tensor]] = {}
        self._size: int | None = None
        self._reset_arrays()
        self._stacked: StackedAnnotations | None = None
        self._stacked_n = -1

    # ------------------------------------------------------------------ the three public containers
    @property
    def labels(self) -> dict[int, int]:
        return self._labels

    @labels.setter
    def labels(self, value: dict[int, int]) -> None:
        self._labels = value if isinstance(value, dict) else dict(value)
        self._rebuild()

    @property
    def extras(self) -> list[Extra]:
        return self._extras

    @extras.setter
    def extras(self, value: list[Extra]) -> None:
        self._extras = value if isinstance(value, list) else list(value)

    @property
    def annotations(self) -> dict[int, dict[str, torch.Tensor]]:
        return self._annotations

    @annotations.setter
    def annotations(self, value: dict[int, dict[str, torch.Tensor]]) -> None:
        self._annotations = value if isinstance(value, dict) else dict(value)
        self._stacked = None

    # ------------------------------------------------------------------------------- bookkeeping
    def attach(self, size: int) -> None:
        """The pool holds ``size`` items: make the unlabelled mask (once)."""
        if self._size != size:
            self._size = int(size)
            self._rebuild()

    def _reset_arrays(self) -> None:
        self._order = np.empty(16, dtype=np.int64)  # labelled pool indices in labelling order (first _n)
        self._ys = np.empty(16, dtype=np.int64)  # their oracle labels
        self._n = 0
        self._mask = None if self._size is None else np.ones(self._size, dtype=bool)  # True = unlabelled
        self._unlabelled: np.ndarray | None = None

    def _rebuild(self) -> None:
        self._reset_arrays()
        self._append(np.fromiter(self._labels.keys(), dtype=np.int64, count=len(self._labels)),
                     np.fromiter(self._labels.values(), dtype=np.int64, count=len(self._labels)))

    def _sync(self) -> None:
        if len(self._labels) != self._n:  # the dict was changed behind label()'s back
            self._rebuild()

    def _append(self, items: np.ndarray, ys: np.ndarray) -> None:
        if not len(items):
            return
        need = self._n + len(items)
        if need > len(self._order):
            cap = max(need, 2 * len(self._order))
            self._order = np.resize(self._order, cap)
            self._ys = np.resize(self._ys, cap)
        self._order[self._n:need], self._ys[self._n:need] = items, ys
        self._n = need
        if self._mask is not None:
            self._mask[items] = False
        self._unlabelled = None

    def label(self, indices: Sequence[int], labels: Sequence[int], num_classes: int) -> None:
        """Record the oracle's labels: O(1) checks per item, in order (those before a bad one are kept)."""
        size = self._size
        added, ys = [], []
        try:
            for i, y in zip(indices, labels):
                i, y = int(i), int(y)
                if size is not None and not 0 <= i < size:
                    raise ValueError(f"pool index {i} is outside 0..{size - 1}")
                if i in self._labels:
                    raise ValueError(f"pool item {i} is already labelled")
                if not 0 <= y < num_classes:
                    raise ValueError(f"label {y} of item {i} is outside 0..{num_classes - 1}")
                self._labels[i] = y
                added.append(i), ys.append(y)
        finally:
            self._sync_after(added, ys)

    def _sync_after(self, added: list[int], ys: list[int]) -> None:
        if len(self._labels) != self._n + len(added):
            self._rebuild()
        else:
            self._append(np.asarray(added, dtype=np.int64), np.asarray(ys, dtype=np.int64))

    def labelled_indices(self) -> np.ndarray:
        """Labelled pool indices in labelling order (a copy: O(labelled))."""
        self._sync()
        return self._order[: self._n].copy()

    def labelled_labels(self) -> np.ndarray:
        """The oracle's labels of :meth:`labelled_indices`, in the same order."""
        self._sync()
        return self._ys[: self._n].copy()

    def unlabelled_indices(self) -> np.ndarray:
        """Unlabelled pool indices, ascending: computed from the mask once per change of the labels, then
        served as a copy (a caller may change its array; torch takes no read-only arrays quietly)."""
        self._sync()
        if self._mask is None:
            raise RuntimeError("PoolState.attach(pool size) must come before unlabelled_indices")
        if self._unlabelled is None:
            self._unlabelled = np.flatnonzero(self._mask)
        return self._unlabelled.copy()

    # ------------------------------------------------------------------------- annotations, extras
    def annotate(self, annotations: dict[int, dict[str, torch.Tensor]]) -> None:
        for i, fields in annotations.items():
            i = int(i)
            if i not in self._labels:
                raise ValueError(f"pool item {i} is annotated but not labelled")
            if i in self._annotations:
                raise ValueError(f"pool item {i} is already annotated")
            self._annotations[i] = dict(fields)
            self._stacked = None

    def add_extras(self, extras: Sequence[Extra]) -> None:
        self._extras.extend(extras)

    def stacked_annotations(self) -> StackedAnnotations:
        """The annotations stacked for batched serving: rebuilt only after a change."""
        if self._stacked is None or self._stacked_n != len(self._annotations):
            self._stacked, self._stacked_n = StackedAnnotations(self._annotations), len(self._annotations)
        return self._stacked
