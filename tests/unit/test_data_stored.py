"""Out-of-core pools: `exil data convert` writes what the source dataset serves, dataset=memmap / litdata
serve it back field for field, reading the whole pool keeps memory bounded by the batch, and a missing
pool says how to make one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from exil.common.data.convert import main as convert
from exil.common.data.stored import LitdataDataModule, MemmapDataModule
from exil.common.errors import DataMissing
from tests.conftest import ROOT, compose

FASHION = ROOT / "data" / "fashion_mnist"


def source(name: str, *sets: str):
    """The source datamodule as a run composes it, with ``--set``'s keys."""
    return instantiate(compose([f"dataset={name}", *(f"dataset.{kv}" for kv in sets)]).dataset)


def converted(tmp_path: Path, name: str, *args: str, fmt: str = "memmap") -> Path:
    out = tmp_path / f"{name}_{fmt}"
    convert([name, "--out", str(out), "--format", fmt, "--data-dir", str(ROOT / "data"), *args])
    return out


def assert_same_items(a, b, indices) -> None:
    """Batches and single items of datasets a and b agree in every field, dtype and value."""
    fa, fb = a.__getitems__(list(indices)), b.__getitems__(list(indices))
    assert fa.keys() == fb.keys()
    for k in fa:
        assert fa[k].dtype == fb[k].dtype and torch.equal(fa[k], fb[k]), k
    for i in indices[:5]:
        ia, ib = a[int(i)], b[int(i)]
        assert ia.keys() == ib.keys() and ia["idx"] == ib["idx"] == int(i)
        assert all(torch.equal(ia[k], ib[k]) for k in ia if k != "idx")


@pytest.mark.parametrize("fmt", ["memmap", "litdata"])
def test_converted_digits_serve_the_source_items(tmp_path, fmt):
    out = converted(tmp_path, "digits", "--set", "val_size=0.2", "--chunk", "100", fmt=fmt)
    src = source("digits", "val_size=0.2")
    dm = (MemmapDataModule if fmt == "memmap" else LitdataDataModule)(root=str(out))
    src.setup(), dm.setup()
    assert (len(dm.pool), len(dm.val), len(dm.test)) == (len(src.pool), len(src.val), len(src.test)) == (1006, 251, 540)
    assert dm.num_classes == src.num_classes and dm.input_shape == src.input_shape and dm.class_names == src.class_names
    rng = np.random.default_rng(0)
    for a, b in ((src.pool, dm.pool), (src.val, dm.val), (src.test, dm.test)):
        assert_same_items(a, b, rng.choice(len(a), size=64, replace=False))
    np.testing.assert_array_equal(dm._targets, src._targets)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["fields"]["x"] == {"dtype": "float32", "shape": [1, 8, 8], "scale": None, "oracle_only": False}
    assert meta["splits"] == {"pool": 1006, "val": 251, "test": 540} and meta["storage"] == fmt


def test_oracle_fields_stay_oracle_only(tmp_path):
    out = converted(tmp_path, "decoy_digits", "--set", "pool_size=400")
    src, dm = source("decoy_digits", "pool_size=400"), MemmapDataModule(root=str(out))
    src.setup(), dm.setup()
    assert dm.oracle_fields == src.oracle_fields == ("mask", "decoy", "decoy_y")
    idx = np.random.default_rng(1).choice(400, size=50, replace=False)
    assert_same_items(src.pool, dm.pool, idx)
    assert_same_items(src._ground_truth_pool, dm._ground_truth_pool, idx)
    hidden = set(dm.oracle_fields)
    assert not hidden & set(dm.pool[0]) and not hidden & set(next(iter(dm.test_dataloader())))
    for i in idx[:10]:
        assert all(torch.equal(dm.ground_truth(i, f), src.ground_truth(i, f)) for f in ("mask", "decoy", "decoy_y"))
    gt = next(iter(dm.test_ground_truth_dataloader()))
    assert {"mask", "decoy"} <= set(gt)
    assert torch.equal(gt["mask"], next(iter(src.test_ground_truth_dataloader()))["mask"])


@pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST not fetched (exil data fetch fashion_mnist)")
def test_repeated_pool_is_the_source_then_shifted_copies(tmp_path):
    out = converted(tmp_path, "fashion_mnist", "--set", "pool_size=300", "--repeat", "3", "--augment", "shift",
                    "--seed", "5", "--chunk", "128")
    src, dm = source("fashion_mnist", "pool_size=300"), MemmapDataModule(root=str(out))
    src.setup(), dm.setup()
    assert len(dm.pool) == 900 and len(dm.test) == 10000
    assert np.load(out / "pool" / "x.npy", mmap_mode="r").dtype == np.uint8  # k/255 images stored as bytes
    assert_same_items(src.pool, dm.pool, np.arange(300))  # copy 0 is the source
    x, y = src.pool.__getitems__(list(range(300)))["x"], src._targets
    seen = set()
    for copy in (1, 2):
        b = dm.pool.__getitems__(list(range(300 * copy, 300 * (copy + 1))))
        np.testing.assert_array_equal(b["y"].numpy(), y)
        padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
        for i in range(0, 300, 7):
            shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                      if torch.equal(b["x"][i], padded[i, :, 2 - dy:30 - dy, 2 - dx:30 - dx])]
            assert shifts, f"copy {copy} item {i} is no ±2-pixel shift of its source"
            seen.add(shifts[0])
    assert len(seen) > 5  # the shifts vary
    again = converted(tmp_path / "again", "fashion_mnist", "--set", "pool_size=300", "--repeat", "3", "--augment",
                      "shift", "--seed", "5", "--chunk", "77")
    assert (again / "pool" / "x.npy").read_bytes() == (out / "pool" / "x.npy").read_bytes()  # seeded, chunk-free


def test_missing_or_wrong_pool_names_the_convert_command(tmp_path, run_cfg):
    from exil.common.engine import run

    with pytest.raises(DataMissing, match=r"exil data convert DATASET --out /nonexistent/pool"):
        run(run_cfg(["dataset=memmap", "dataset.root=/nonexistent/pool"]))
    with pytest.raises(DataMissing, match="--format litdata"):
        LitdataDataModule(root=str(tmp_path)).setup()
    out = converted(tmp_path, "digits")
    with pytest.raises(Exception, match="use dataset=memmap"):
        LitdataDataModule(root=str(out)).setup()
    (out / "pool" / "x.npy").unlink()
    with pytest.raises(DataMissing, match="lacks x.npy"):
        MemmapDataModule(root=str(out)).setup()


RSS_SCRIPT = """
import json, sys
from exil.common.data.stored import MemmapDataModule

def hwm():
    return {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(("VmHWM", "RssFile"))}

dm = MemmapDataModule(root=sys.argv[1], eval_batch_size=256)
dm.setup()
next(iter(dm.pool_dataloader(range(256))))  # the first batch: code paths warmed up
before = hwm()
n = sum(len(b["y"]) for b in dm.pool_dataloader())
print(json.dumps({"n": n, "before": before, "after": hwm()}))
"""


def test_reading_the_whole_pool_keeps_memory_bounded_by_the_batch(tmp_path):
    out = converted(tmp_path, "digits", "--repeat", "200", "--chunk", "8192")  # 251,400 items, 256 B each
    pool_kib = (out / "pool" / "x.npy").stat().st_size // 1024
    p = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(out)], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["n"] == 1257 * 200 and pool_kib > 60_000  # ~1000 batches of 256
    growth = r["after"]["VmHWM"] - r["before"]["VmHWM"]
    assert growth < pool_kib / 5, (growth, pool_kib, r)


def test_tokenised_texts_convert_and_batches_are_trimmed_as_the_source_trims_them(tmp_path):
    from exil.common.data.convert import convert as write
    from exil.common.data.text import TextDataModule
    from tests.text_fixtures import rotten_tomatoes, tokenizer_folder

    rotten_tomatoes(tmp_path, n=60)
    src = TextDataModule(data_dir=str(tmp_path), source="rotten_tomatoes", train_file="reviews.jsonl",
                         tokenizer=f"file:{tokenizer_folder(tmp_path)}", max_length=32)
    meta = write(src, tmp_path / "text", chunk=7, log=lambda *a: None)  # chunks trimmed to different widths
    assert meta["trim"] == {"by": "attention_mask", "fields": [k for k in ("x", "attention_mask", "token_type_ids")
                                                                if k in meta["fields"]]}
    dm = MemmapDataModule(root=str(tmp_path / "text"))
    dm.setup()
    assert dm.input_shape == src.input_shape == (32,)
    for idx in ([0, 1, 2, 3, 4, 5, 6], [40, 3, 17], list(range(len(src.pool)))):
        assert_same_items(src.pool, dm.pool, np.asarray(idx))
