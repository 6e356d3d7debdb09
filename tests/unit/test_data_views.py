"""The pool views and the pool state: an item is its row of a batch, whatever the view stack, and the
labelled-set bookkeeping answers what a scan of the labels would."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, default_collate

from exil.common.data.base import PoolDataModule
from exil.common.data.items import TensorItems
from exil.common.data.pool_state import Extra, PoolState, patch
from exil.common.data.views import Concat, ExtrasView, Hidden, LabelledView, Subset, targets_of, unbatch

N = 60


def _fields(n: int = N, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "x": torch.rand(n, 1, 4, 4, generator=g),
        "y": torch.arange(n) % 3,
        "mask": torch.rand(n, 1, 4, 4, generator=g) > 0.5,
        "score": torch.rand(n, generator=g).double(),
    }


class _DictItems(Dataset):
    """A base without ``__getitems__``: items as dicts (the default_collate fallback)."""

    def __init__(self, fields):
        self.fields = fields

    def __len__(self):
        return len(self.fields["y"])

    def __getitem__(self, i):
        return {**{k: v[i] for k, v in self.fields.items()}, "idx": i}

    @property
    def targets(self):
        return self.fields["y"]


class _Pool(PoolDataModule):
    oracle_fields = ("mask",)

    def __init__(self, dict_items: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.dict_items = dict_items

    def load(self):
        make = _DictItems if self.dict_items else lambda f: TensorItems(**f)
        return make(_fields()), None, make(_fields(12, seed=1))


def _same(a: Any, b: Any) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape \
            and torch.equal(a, b)
    return a == b


def _rows_equal_items(view: Dataset, js: list[int]) -> None:
    batch = view.__getitems__(js)
    for r, j in enumerate(js):
        item, row = view[j], unbatch(batch, r)
        assert item.keys() == row.keys(), (j, item.keys(), row.keys())
        for k in item:
            assert _same(item[k], row[k]), (type(view).__name__, j, k, item[k], row[k])


def _extras(dm: PoolDataModule, rng: np.random.Generator) -> list[Extra]:
    """Extras of every shape a method makes: patched counterexamples (with and without own annotations),
    whole replaced inputs, and examples without an origin."""
    out = []
    for k in range(12):
        origin = int(rng.integers(len(dm.pool)))
        x = dm.pool_item(origin)["x"]
        kind = k % 4
        if kind == 0:
            changed = x.clone()
            changed[0, rng.integers(4), :] = -1.0
            out.append(Extra(patch("x", x, changed), label=int(rng.integers(3)), weight=0.5, origin=origin))
        elif kind == 1:
            changed = x.clone()
            changed[0, :, rng.integers(4)] = 2.0
            out.append(Extra({**patch("x", x, changed), "relevant": torch.ones(4, 4, dtype=torch.bool)},
                             label=1, weight=0.25, origin=origin))
        elif kind == 2:
            out.append(Extra({"x": torch.full((1, 4, 4), 7.0)}, label=2, weight=2.0, origin=origin))
        else:
            out.append(Extra({"x": torch.full((1, 4, 4), 3.0)}, label=0, origin=-1, kind="free"))
    return out


@pytest.mark.parametrize("dict_items", [False, True], ids=["tensor_items", "dict_items"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_item_is_its_row_of_a_batch_in_every_view(dict_items, seed):
    rng = np.random.default_rng(seed)
    dm = _Pool(dict_items=dict_items, pool_size=45, seed=seed)  # a re-indexed Subset under Hidden
    dm.setup()
    labelled = rng.choice(len(dm.pool), size=15, replace=False)
    dm.label(labelled, rng.integers(0, 3, size=15))
    dm.annotate({int(i): {"relevant": torch.rand(4, 4) > 0.5} for i in labelled[:5]})
    dm.add_extras(_extras(dm, rng))
    train = dm.train_dataset()
    assert isinstance(train, Concat) and isinstance(train.datasets[1], ExtrasView)
    views = [dm.pool, dm._ground_truth_pool, dm.test, train, *train.datasets,
             Subset(dm.pool, rng.choice(len(dm.pool), 20, replace=False)),
             Subset(dm._ground_truth_pool, rng.permutation(len(dm.pool))[:20], reindex=True)]
    for view in views:
        for _ in range(3):
            js = rng.choice(len(view), size=min(len(view), int(rng.integers(1, 9))), replace=False).tolist()
            _rows_equal_items(view, js)
    # and the stack is the same whether the leaf batches or is read item by item
    assert "mask" not in dm.pool[0] and "mask" in dm._ground_truth_pool[0]


def test_views_serve_the_state_they_were_built_from():
    dm = _Pool()
    dm.setup()
    dm.label([7, 2, 30], [2, 0, 1])
    dm.annotate({2: {"relevant": torch.ones(4, 4, dtype=torch.bool)}})
    x7 = dm.pool_item(7)["x"]
    changed = x7.clone()
    changed[0, 0, :] = -1
    dm.add_extras([Extra(patch("x", x7, changed), label=1, weight=0.5, origin=7),
                   Extra({"x": torch.full((1, 4, 4), 3.0)}, label=0)])
    b = dm.train_dataset().__getitems__(list(range(5)))
    assert b["idx"].tolist() == [7, 2, 30, 7, -1] and b["y"].tolist() == [2, 0, 1, 1, 0]
    assert b["weight"].tolist() == [1, 1, 1, 0.5, 1] and b["extra"].tolist() == [False] * 3 + [True] * 2
    assert b["annotated"].tolist() == [False, True, False, False, False]
    assert b["relevant"][1].all() and not b["relevant"][[0, 2, 3, 4]].any()
    assert torch.equal(b["x"][3], changed) and torch.equal(b["x"][0], x7) and (b["x"][4] == 3).all()
    assert b["score"][4] == 0 and b["score"][3] == dm.pool_item(7)["score"]  # origin-less: zeros; else origin's
    assert "mask" not in b
    with pytest.raises(KeyError, match="pool items do not have"):
        ExtrasView(dm.pool, [Extra({"x": x7, "nonsense": torch.ones(1)}, label=0, origin=1)],
                   dm._state.stacked_annotations())[0]


def test_subset_and_hidden_are_transparent_to_targets_and_indices():
    base = TensorItems(**_fields())
    sub = Subset(Hidden(base, ("mask",)), [5, 9, 1], reindex=True)
    assert targets_of(sub).tolist() == [5 % 3, 9 % 3, 1 % 3]
    assert [sub[j]["idx"] for j in range(3)] == [0, 1, 2] and sub.__getitems__([2, 0])["idx"].tolist() == [2, 0]
    assert Subset(base, [5, 9]).__getitems__([1])["idx"].tolist() == [9]
    lv = LabelledView(base, [4, 8], [2, 2], PoolState().stacked_annotations())
    assert default_collate([lv[0], lv[1]])["y"].tolist() == [2, 2]


# ------------------------------------------------------------------------------------- pool state


def test_bookkeeping_matches_a_scan_of_the_labels():
    rng = np.random.default_rng(3)
    dm = _Pool()
    dm.setup()
    order: list[int] = []
    for _ in range(8):
        new = rng.choice(dm.unlabelled_indices, size=int(rng.integers(1, 6)), replace=False)
        dm.label(new, rng.integers(0, 3, size=len(new)))
        order += new.tolist()
        assert dm.labelled_indices.tolist() == order == list(dm.labels)
        assert dm.unlabelled_indices.tolist() == sorted(set(range(N)) - set(order))
        lv = dm.train_dataset()
        assert lv.indices.tolist() == order and lv.labels.tolist() == list(dm.labels.values())
    # a caller may change the returned arrays without changing the state
    u = dm.unlabelled_indices
    u[:] = 0
    assert dm.unlabelled_indices.tolist() == sorted(set(range(N)) - set(order))


def test_label_checks_and_keeps_what_came_before_a_bad_label():
    dm = _Pool()
    with pytest.raises(ValueError, match="already labelled"):
        dm.label([1, 2, 1], [0, 0, 0])
    assert dm.labelled_indices.tolist() == [1, 2] and 1 not in dm.unlabelled_indices
    with pytest.raises(ValueError, match="outside 0..59"):
        dm.label([60], [0])
    with pytest.raises(ValueError, match="label 3 of item 4 is outside 0..2"):
        dm.label([4], [3])
    assert len(dm.unlabelled_indices) == N - 2


def test_resume_reset_and_direct_edits_of_the_labels():
    dm = _Pool()
    dm.label([3, 4], [0, 1])
    dm.annotate({3: {"relevant": torch.ones(4, 4, dtype=torch.bool)}})
    dm.add_extras([Extra({"x": torch.zeros(1, 4, 4)}, label=0, origin=3)])
    dm.labels, dm.extras, dm.annotations = {}, [], {}  # what the loop does on resume
    assert dm.labelled_indices.tolist() == [] and len(dm.unlabelled_indices) == N
    assert len(dm.train_dataset()) == 0 and not dm.train_dataset().annotations
    dm.label([9], [2])
    dm.annotate({9: {"relevant": torch.zeros(4, 4, dtype=torch.bool)}})
    assert dm.labels == {9: 2} and list(dm.annotations) == [9] and dm.train_dataset().annotations
    dm.labels[11] = 1  # behind label()'s back: the arrays follow the dict
    assert dm.labelled_indices.tolist() == [9, 11] and 11 not in dm.unlabelled_indices
    dm.labels = {5: 0, 6: 1}
    assert dm.labelled_indices.tolist() == [5, 6]
    assert dm.unlabelled_indices.tolist() == [i for i in range(N) if i not in (5, 6)]
