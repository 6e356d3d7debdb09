"""dataset=image_folder / mask_folder with ``lazy``: the files a batch needs are decoded when it is read,
and every item, batch and split equals what the eager module decodes at start-up."""

from __future__ import annotations

import numpy as np
import torch

from exil.common.data.masks_folder import FolderImages
from tests.unit.test_mask_folder import module, write_folder


def test_lazy_folder_serves_what_the_eager_folder_decodes(tmp_path):
    root = write_folder(tmp_path / "data", per_class=6)
    eager, lazy = module(root, val_size=0.2, seed=1), module(root, val_size=0.2, seed=1, lazy=True)
    assert isinstance(lazy._ground_truth_test, FolderImages)
    for a, b in ((eager.pool, lazy.pool), (eager.val, lazy.val), (eager.test, lazy.test),
                 (eager._ground_truth_pool, lazy._ground_truth_pool)):
        assert len(a) == len(b)
        idx = np.random.default_rng(0).permutation(len(a)).tolist()
        fa, fb = a.__getitems__(idx), b.__getitems__(idx)
        assert fa.keys() == fb.keys() and all(torch.equal(fa[k], fb[k]) for k in fa)
        assert all(torch.equal(a[i][k], b[i][k]) for i in idx[:3] for k in fa if k != "idx")
    assert "mask" not in lazy.pool[0] and torch.equal(lazy.ground_truth(2, "mask"), eager.ground_truth(2, "mask"))
    np.testing.assert_array_equal(lazy._targets, eager._targets)
    assert lazy.input_shape == eager.input_shape
    lazy.label([3, 1], [0, 2])
    b = lazy.train_dataset().__getitems__([0, 1])
    assert b["y"].tolist() == [0, 2] and torch.equal(b["x"], eager.pool.__getitems__([3, 1])["x"])
