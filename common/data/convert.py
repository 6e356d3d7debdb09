"""``exil data convert``: write any exil dataset as an out-of-core pool (``dataset=memmap`` / ``dataset=litdata``).

    exil data convert DATASET --out DIR [--format memmap|litdata] [--data-dir data] [--set KEY=VALUE ...]
                      [--repeat N --augment shift] [--seed S] [--chunk 4096] [--chunk-bytes 64MB] [--force]

``DATASET`` is a dataset config name (``fashion_mnist``, ``digits``, ... or ``dataset=NAME``), composed
with Hydra the way ``exil`` composes a run, ``--set`` overriding its keys (``--set pool_size=5000``,
``--set seed=3``). The datamodule is set up as a run would set it up (pool cap, validation split), and
its pool, validation and test splits are written to ``DIR`` in the order a run sees them, with every
field *including* the oracle-only ones (marked so in ``meta.json``; the converted pool keeps them
oracle-only). The layout is described in :mod:`exil.common.data.stored`.

The splits are read and written chunk by chunk (``--chunk`` items through the datasets' batch path),
so the conversion holds one chunk, not the pool, beyond what the source dataset itself holds.
``x`` is stored as uint8 when that is exact (images served as ``k / 255``), else as served.

``--repeat N`` writes the pool N times over (N × its size; validation and test once): copy 0 as is,
the others with a light seeded augmentation (``--augment shift``: each image and its per-pixel oracle
fields shifted by a random whole number of pixels in ±``--shift``, zeros shifted in), so that a
million-item pool can be made from a real 60k dataset: ``exil data convert fashion_mnist --out
data/fashion_1m --repeat 17 --augment shift``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from exil.common.data.stored import FORMAT, SPLITS, VERSION
from exil.common.data.views import read
from exil.common.errors import ConfigError

FORMATS = ("memmap", "litdata")
AUGMENTS = ("none", "shift")


class _NotBytes(Exception):
    """``x`` looked like k/255 in the first chunk but not in a later one: convert again, x as served."""


# ---------------------------------------------------------------------------------------- writers


class _NpyWriter:
    """One ``.npy`` written sequentially: the header for the final shape, then rows appended (no memmap
    of the output, so the written pages are not counted against this process)."""

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...]):
        self.path, self.dtype, self.shape, self.rows = path, np.dtype(dtype), tuple(shape), 0
        self.f = open(path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_2_0(self.f, header)

    def write(self, rows: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        self.f.close()
        if self.rows != self.shape[0]:
            raise RuntimeError(f"{self.path}: wrote {self.rows} rows, expected {self.shape[0]}")


class _MemmapSplit:
    def __init__(self, folder: Path, specs: dict[str, dict], length: int):
        folder.mkdir(parents=True)
        self.writers = {k: _NpyWriter(folder / f"{k}.npy", s["dtype"], (length, *s["shape"])) for k, s in specs.items()}

    def write(self, chunk: dict[str, np.ndarray]) -> None:
        for k, w in self.writers.items():
            w.write(chunk[k])

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


class _LitdataSplit:
    def __init__(self, folder: Path, specs: dict[str, dict], length: int, chunk_bytes: str = "64MB"):
        from litdata.streaming.writer import BinaryWriter

        folder.mkdir(parents=True)
        self.writer = BinaryWriter(str(folder), chunk_bytes=chunk_bytes)
        self.keys, self.i, self.length = list(specs), 0, length

    def write(self, chunk: dict[str, np.ndarray]) -> None:
        for r in range(len(chunk[self.keys[0]])):
            self.writer.add_item(self.i, {k: chunk[k][r] for k in self.keys})
            self.i += 1

    def close(self) -> None:
        self.writer.done()
        self.writer.merge()
        if self.i != self.length:
            raise RuntimeError(f"wrote {self.i} items, expected {self.length}")


# ------------------------------------------------------------------------------------- reading


def _leaf(ds: Dataset) -> Dataset:
    while hasattr(ds, "base"):
        ds = ds.base
    return ds


def _numpy(v: Any, name: str) -> np.ndarray:
    if not torch.is_tensor(v):
        raise ConfigError(f"field {name!r} is not a tensor ({type(v).__name__}): "
                          "an out-of-core pool stores tensors only")
    return v.numpy()


def _chunks(ds: Dataset, shapes: dict[str, tuple[int, ...]], size: int) -> Iterator[dict[str, np.ndarray]]:
    """The dataset's items ``size`` at a time through its batch path, as numpy, every field in its item shape
    (a chunk whose batch differs in shape from the items, e.g. tokens trimmed to the chunk's longest,
    is read item by item)."""
    for start in range(0, len(ds), size):
        idx = list(range(start, min(start + size, len(ds))))
        batch = read(ds, idx)
        if any(tuple(batch[k].shape[1:]) != s for k, s in shapes.items()):
            parts = [read(ds, [i], single=True) for i in idx]
            batch = {k: torch.cat([p[k] for p in parts]) for k in shapes}
        yield {k: _numpy(batch[k], k) for k in shapes}


def shift_images(chunk: dict[str, np.ndarray], shifts: np.ndarray, spatial: Sequence[str]) -> dict[str, np.ndarray]:
    """Each row's ``spatial`` fields (.., H, W) shifted by its (dy, dx), zeros shifted in."""
    out = dict(chunk)
    for k in spatial:
        a = chunk[k]
        b = np.zeros_like(a)
        h, w = a.shape[-2:]
        for dy, dx in {(int(u), int(v)) for u, v in shifts}:
            rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            b[rows, ..., yd, xd] = a[rows, ..., ys, xs]
        out[k] = b
    return out


# ---------------------------------------------------------------------------------------- convert


def _datamodule(dataset: str, sets: Sequence[str], data_dir: str, config_dir: str | None = None):
    from hydra.utils import instantiate

    from exil.common.engine import compose

    name = dataset.split("=", 1)[1] if dataset.startswith("dataset=") else dataset
    overrides = [f"dataset={name}", f"paths.data_dir={data_dir}"]
    for kv in sets:
        if "=" not in kv:
            raise ConfigError(f"--set {kv!r}: give KEY=VALUE (a key of dataset={name}, e.g. --set pool_size=5000)")
        body = kv.lstrip("+~")
        prefix = kv[: len(kv) - len(body)]  # Hydra's + (add a key) / ~ (delete one)
        overrides.append(kv if body.startswith(("dataset.", "paths.", "loop.")) else f"{prefix}dataset.{body}")
    cfg = compose(overrides, config_dir=config_dir)
    return name, overrides, instantiate(cfg.dataset)


def convert(dm, out: str | Path, fmt: str = "memmap", repeat: int = 1, augment: str = "none", shift: int = 2,
            seed: int = 0, chunk: int = 4096, x_dtype: str = "auto", source: dict | None = None,
            force: bool = False, log=print, chunk_bytes: str = "64MB") -> dict[str, Any]:
    """Write the set-up datamodule ``dm`` to ``out`` (module docstring); returns the meta written."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: valid: {', '.join(FORMATS)}")
    if augment not in AUGMENTS:
        raise ConfigError(f"--augment {augment!r}: valid: {', '.join(AUGMENTS)}")
    if repeat < 1 or chunk < 1 or shift < 0:
        raise ConfigError("--repeat and --chunk must be ≥ 1, --shift ≥ 0")
    if augment != "none" and repeat == 1:
        raise ConfigError("--augment changes the repeated copies: give --repeat N with N ≥ 2")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ConfigError(f"--out {out} exists and is not empty: give --force to replace it")
        if not (out / "meta.json").is_file() and not all(p.name in (*SPLITS, "targets") for p in out.iterdir()):
            raise ConfigError(f"--out {out} holds files that are not a converted pool: not replacing it")
        shutil.rmtree(out)
    dm.setup()
    splits = {"pool": dm._ground_truth_pool, "val": dm._ground_truth_val, "test": dm._ground_truth_test}
    first = read(splits["pool"], [0], single=True)
    shapes = {k: tuple(v.shape[1:]) for k, v in first.items() if k != "idx"}
    specs: dict[str, dict] = {}
    for k, v in first.items():
        if k == "idx":
            continue
        specs[k] = {"dtype": str(_numpy(v, k).dtype), "shape": list(shapes[k]), "scale": None,
                    "oracle_only": k in tuple(dm.oracle_fields)}
    bytes_x = x_dtype == "uint8" or (x_dtype == "auto" and specs["x"]["dtype"] == "float32" and _is_bytes(first["x"]))
    if bytes_x:
        specs["x"].update(dtype="uint8", scale=255.0)
    spatial = []
    if augment == "shift":
        if len(shapes["x"]) != 3:
            raise ConfigError(f"--augment shift needs images x (C, H, W); x is {shapes['x']}")
        spatial = [k for k, s in shapes.items() if len(s) >= 2 and s[-2:] == shapes["x"][-2:]]
    trim = None
    try:
        from exil.common.data.text import TOKEN_FIELDS, TextItems

        if isinstance(_leaf(splits["pool"]), TextItems) and "attention_mask" in specs:
            trim = {"by": "attention_mask", "fields": [k for k in ("x", *TOKEN_FIELDS) if k in specs]}
    except ImportError:
        pass
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    lengths: dict[str, int | None] = {}
    t0 = time.time()
    try:
        for name, ds in splits.items():
            if ds is None:
                lengths[name] = None
                continue
            copies = repeat if name == "pool" else 1
            n = len(ds) * copies
            lengths[name] = n
            writer = (_MemmapSplit(tmp / name, specs, n) if fmt == "memmap"
                      else _LitdataSplit(tmp / name, specs, n, chunk_bytes=chunk_bytes))
            targets = np.empty(n, dtype=np.int64)
            at = 0
            for r in range(copies):
                shifts = (np.random.default_rng([seed, r]).integers(-shift, shift + 1, size=(len(ds), 2))
                          if r and spatial else None)
                for part in _chunks(ds, shapes, chunk):
                    if bytes_x:
                        part["x"] = _to_bytes(part["x"], strict=x_dtype == "auto")
                    if shifts is not None:
                        part = shift_images(part, shifts[at % len(ds): at % len(ds) + len(part["y"])], spatial)
                    writer.write(part)
                    targets[at: at + len(part["y"])] = part["y"]
                    at += len(part["y"])
            writer.close()
            (tmp / "targets").mkdir(exist_ok=True)
            np.save(tmp / "targets" / f"{name}.npy", targets)
            log(f"{name}: {n} items → {out / name} ({time.time() - t0:.1f}s)")
    except _NotBytes:
        shutil.rmtree(tmp)
        log("x is not k/255 throughout: converting again with x as served")
        return convert(dm, out, fmt, repeat, augment, shift, seed, chunk, "keep", source, force, log, chunk_bytes)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    meta = {
        "format": FORMAT, "version": VERSION, "storage": fmt,
        "source": {**(source or {}), "datamodule": type(dm).__name__, "repeat": repeat, "augment": augment,
                   "shift": shift if spatial else None, "seed": seed},
        "class_names": list(dm.class_names), "num_classes": int(dm.num_classes),
        "input_shape": list(shapes["x"]),
        "fields": specs, "oracle_fields": [k for k in specs if specs[k]["oracle_only"]],
        "splits": lengths, "trim": trim,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    return meta


def _is_bytes(x: torch.Tensor) -> bool:
    q = torch.round(x * 255)
    return bool(((q >= 0) & (q <= 255)).all()) and torch.equal(q.to(torch.uint8).float() / 255, x)


def _to_bytes(x: np.ndarray, strict: bool) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    q = np.round(x.astype(np.float32) * 255)
    b = np.clip(q, 0, 255).astype(np.uint8)
    if strict and not np.array_equal(b.astype(np.float32) / np.float32(255), x):
        raise _NotBytes
    return b


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="exil data convert",
        description="Write an exil dataset as an out-of-core pool: dataset=memmap (memory-mapped .npy per "
                    "field) or dataset=litdata (litdata's optimised chunks), with dataset.root=OUT.")
    p.add_argument("dataset", help="a dataset config name (fashion_mnist, digits, ...) or dataset=NAME")
    p.add_argument("--out", required=True, help="the folder to write (meta.json, pool/, val/, test/, targets/)")
    p.add_argument("--format", default="memmap", choices=FORMATS)
    p.add_argument("--data-dir", default="data", help="where exil's datasets live (paths.data_dir)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the dataset config (repeatable): --set pool_size=5000 --set seed=1")
    p.add_argument("--config-dir", default=None, help="a folder of your own configs, as exil --config-dir")
    p.add_argument("--repeat", type=int, default=1, help="write the pool this many times over (default 1)")
    p.add_argument("--augment", default="none", choices=AUGMENTS, help="augment the repeated copies (shift)")
    p.add_argument("--shift", type=int, default=2, help="largest shift of --augment shift, in pixels (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the augmentation (default 0)")
    p.add_argument("--chunk", type=int, default=4096, help="items read and written at a time (default 4096)")
    p.add_argument("--x-dtype", default="auto", choices=("auto", "uint8", "keep"),
                   help="auto: x as uint8 when it is exactly k/255, else as served; uint8: always (rounded)")
    p.add_argument("--chunk-bytes", default="64MB",
                   help="litdata: bytes per chunk file (default 64MB); a reader holds a few chunks in memory")
    p.add_argument("--force", action="store_true", help="replace --out if it is a converted pool already")
    a = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    name, overrides, dm = _datamodule(a.dataset, a.set, a.data_dir, a.config_dir)
    meta = convert(dm, a.out, a.format, a.repeat, a.augment, a.shift, a.seed, a.chunk, a.x_dtype,
                   source={"dataset": name, "overrides": overrides}, force=a.force, chunk_bytes=a.chunk_bytes)
    fields = ", ".join(f"{k} {s['dtype']} {tuple(s['shape'])}" + (" (oracle)" if s["oracle_only"] else "")
                       for k, s in meta["fields"].items())
    print(f"wrote {a.out}: {fields}; use dataset={a.format} dataset.root={a.out}")
