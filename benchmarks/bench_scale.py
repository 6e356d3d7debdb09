"""Benchmark at scale: selection cost against pool size, core-set over 1M × 512, SEALS against the full pool.

Data: the real Fashion-MNIST training set (``data/fashion_mnist``, 60,000 images, through
``FashionMNISTDataModule``) repeated to N items, every copy after the first shifted by a seeded random
±2 px in x and y (zero fill), kept as uint8 (:class:`~exil.common.data.items.ByteImages`: 784 MB at 1M).
Model: exil's ``mlp`` backbone (784 → 128, ReLU: 128-d features) in exil's ``Classifier`` (dropout 0.5), or with
``--model cnn`` the ``SmallCNN`` of ``bench_strategies.py`` (128-d features). The MLP is the default because on
this 2-core machine the CNN scores ~4,600 images/s (1M items: ~3.6 min per pass, ~1 h for the whole
benchmark), the MLP ~18,000 images/s.

Tables:

1. **Cost against N** (10k, 100k, 1M; ``--quick``: 10k, 30k): entropy, BALD (T=10), core-set, BADGE and CAL
   (k=10 neighbours) each select k=100 items with 1,000 items labelled (seeded), with an untrained model
   (the cost does not depend on the weights). Each (strategy, N) runs in a fresh subprocess: the time of
   ``strategy.select`` (the pool's forward passes included; median of 3 after one warm-up for N ≤ 100k,
   one run at 1M), the peak RSS of the selection (``VmHWM`` after writing 5 to ``/proc/self/clear_refs``
   with the data loaded), the outputs the context keeps (``ctx``'s cache) and the memory beyond the data
   and those outputs. The slope α of time ∝ Nᵅ is the least-squares fit on log–log.
2. **Core-set at scale**: k-center greedy, k=100 of 1M × 512 random normal features with 100 labelled
   centres, the features kept as float32 in RAM, float16 in RAM, or a float16 ``.npy`` on disk read through
   a memory map, each in a fresh subprocess (peak, and how much of it is the file's pages mapped in).
3. **SEALS vs the full pool** at N=1M (``--quick``: 30k): a real active loop (``exil.common.loop.ActiveLoop``,
   simulated oracle, Lightning fit from the initial weights every round), 20 initial labels per class, 5 rounds
   × 100 queries, seed 0, entropy over the whole pool against ``SEALS(entropy, k=100, flat index)``; test
   accuracy on Fashion-MNIST's 10,000 test images after the budget, and per selection its time and peak RSS
   (SEALS's first selection includes embedding the pool and building the index).

Run: ``.venv/bin/python benchmarks/bench_scale.py [--quick] [--out table.json|table.csv] [--only cost,coreset,seals]
[--strategies entropy,bald,...] [--seals-arms full,flat,ivf,hnsw] [--model mlp|cnn]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

from bench_strategies import SmallCNN  # noqa: E402
from shared import print_table, write  # noqa: E402

from exil.common.data.base import PoolDataModule
from exil.common.data.items import ByteImages  # noqa: E402

SIZES, QUICK_SIZES = (10_000, 100_000, 1_000_000), (10_000, 30_000)
K, LABELLED, BATCH = 100, 1_000, 1024
STRATEGIES = ("entropy", "bald", "coreset", "badge", "cal")
CORESET_N, CORESET_D, CORESET_LABELLED = 1_000_000, 512, 100
GB, MB = 1024**3, 1024**2


# ------------------------------------------------------------------ data
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0), so the next peak is what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def fashion_mnist() -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Fashion-MNIST's training images as uint8 (60000, 1, 28, 28), their labels, and the test items."""
    from exil.common.data.mnist import FashionMNISTDataModule

    pool, _, test = FashionMNISTDataModule(data_dir=str(ROOT / "data")).load()
    x = (pool.fields["x"] * 255).round_().to(torch.uint8)  # the IDX files' bytes back (stored as byte / 255)
    return x, pool.fields["y"].clone(), test


def repeated(x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` repeated to ``n`` items; every copy after the first shifted by a seeded random (dx, dy) ∈ [−2, 2]²."""
    rng = np.random.default_rng(seed)
    out = torch.empty((n, *x.shape[1:]), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.long)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for start in range(0, n, len(x)):
        m = min(len(x), n - start)
        labels[start : start + m] = y[:m]
        if start == 0:
            out[:m] = x[:m]
            continue
        shifts = rng.integers(-2, 3, size=(m, 2))
        for dx in range(-2, 3):
            for dy in range(-2, 3):
                sel = np.flatnonzero((shifts[:, 0] == dx) & (shifts[:, 1] == dy))
                if len(sel):
                    out[start + sel] = padded[sel, :, 2 + dy : 30 + dy, 2 + dx : 30 + dx]
    return out, labels


class BytePool(PoolDataModule):
    """A pool of uint8 images (served as float in [0, 1]) with Fashion-MNIST's test set."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, test, **kwargs: Any):
        super().__init__(**kwargs)
        self._x, self._y, self._test = x, y, test

    def load(self):
        return ByteImages(x=self._x, y=self._y), None, self._test


def build_pool(n: int, **kwargs: Any) -> BytePool:
    x, y, test = fashion_mnist()
    px, py = repeated(x, y, n)
    del x
    dm = BytePool(px, py, test, **kwargs)
    dm.setup()
    return dm


def make_model(kind: str):
    from exil.common.backbones import build_backbone
    from exil.common.modules.classifier import Classifier

    backbone = SmallCNN() if kind == "cnn" else build_backbone("exil", "mlp", input_shape=(1, 28, 28), hidden=[128])
    return Classifier(backbone, num_classes=10, dropout=0.5)


def make_strategy(name: str):
    from exil.common.strategies.badge import BADGE
    from exil.common.strategies.bald import BALD
    from exil.common.strategies.cal import CAL
    from exil.common.strategies.coreset import CoreSet
    from exil.common.strategies.uncertainty import Entropy

    return {"entropy": Entropy, "bald": lambda: BALD(passes=10), "coreset": CoreSet, "badge": BADGE,
            "cal": lambda: CAL(neighbours=10)}[name]()


def _kept_bytes(ctx) -> int:
    seen, total = set(), 0
    for v in ctx._cache.values():
        for t in v if isinstance(v, tuple) else (v,):
            if torch.is_tensor(t) and id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total


# ------------------------------------------------------------------ 1. cost against N
def cost_worker(strategy: str, n: int, model_kind: str) -> dict[str, Any]:
    from exil.common.strategies.context import QueryContext

    torch.manual_seed(0)
    dm = build_pool(n, eval_batch_size=BATCH)
    labelled = np.sort(np.random.default_rng(1).choice(n, LABELLED, replace=False))
    dm.label(labelled, dm._y[labelled].tolist())
    model = make_model(model_kind).eval()
    candidates = dm.unlabelled_indices
    runs = 1 if n > 100_000 else 4  # one warm-up + 3 timed below 1M
    rss_before = _status_kb("VmRSS")
    reset = reset_peak()
    times, kept = [], 0
    for _ in range(runs):
        ctx = QueryContext(model, dm, candidates, "cpu", torch.Generator().manual_seed(0), seed=0)
        start = time.perf_counter()
        sel = make_strategy(strategy).select(ctx, K)
        times.append(time.perf_counter() - start)
        kept = _kept_bytes(ctx)
        assert len(np.unique(sel.indices)) == K and not np.isin(sel.indices, labelled).any()
        del ctx
    peak = _status_kb("VmHWM")
    return {"seconds": statistics.median(times[1:] if runs > 1 else times), "runs": len(times) - (runs > 1),
            "peak_gb": peak * 1024 / GB, "data_gb": rss_before * 1024 / GB, "kept_mb": kept / MB,
            "beyond_mb": (peak - rss_before) * 1024 / MB - kept / MB, "reset": reset}


def bench_cost(sizes: tuple[int, ...], model_kind: str, strategies: tuple[str, ...] = STRATEGIES) -> list[dict]:
    rows = []
    for name in strategies:
        results = []
        for n in sizes:
            r = _subprocess(["--cost-worker", name, str(n), model_kind])
            results.append(r)
            if "error" in r:
                rows.append(_row(f"{name}, N={n:,}", note=f"worker failed: {r['error']}"))
                continue
            rows.append(_row(f"{name}, N={n:,}", r["seconds"], peak_gb=r["peak_gb"], kept_mb=r["kept_mb"],
                             beyond_mb=r["beyond_mb"],
                             note=f"data+model RSS {r['data_gb']:.2f} GB; {r['runs']} timed run(s)"
                                  + ("" if r["reset"] else "; peak since process start")))
        ok = [(n, r["seconds"]) for n, r in zip(sizes, results) if "error" not in r]
        if len(ok) >= 2:
            alpha = float(np.polyfit(np.log([n for n, _ in ok]), np.log([t for _, t in ok]), 1)[0])
            rows.append(_row(f"{name}: slope α of time ∝ N^α", alpha=alpha,
                             goal="α ≈ 1" if name in ("entropy", "bald") else "",
                             note=f"least squares on log–log over N = {', '.join(f'{n:,}' for n, _ in ok)}"))
    return rows


# ------------------------------------------------------------------ 2. core-set at scale
def coreset_worker(storage: str, n: int) -> dict[str, Any]:
    from exil.common.strategies.coreset import k_center_greedy

    g = torch.Generator().manual_seed(0)
    dtype = torch.float32 if storage == "float32" else torch.float16
    folder = None
    if storage == "memmap":
        folder = Path(tempfile.mkdtemp(prefix="exil-bench-"))
        array = np.lib.format.open_memmap(folder / "x.npy", mode="w+", dtype=np.float16, shape=(n, CORESET_D))
        for s in range(0, n, 65536):
            array[s : s + 65536] = torch.randn(min(65536, n - s), CORESET_D, generator=g).numpy()
        array.flush()
        del array
        x = torch.from_numpy(np.load(folder / "x.npy", mmap_mode="r"))
    else:
        x = torch.empty(n, CORESET_D, dtype=dtype)
        for s in range(0, n, 65536):
            x[s : s + 65536] = torch.randn(min(65536, n - s), CORESET_D, generator=g)
    centres = torch.randn(CORESET_LABELLED, CORESET_D, generator=g).to(dtype)
    rss_before = _status_kb("VmRSS")
    reset = reset_peak()
    start = time.perf_counter()
    chosen, _ = k_center_greedy(x, centres, K, torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    peak, file_kb = _status_kb("VmHWM"), _status_kb("RssFile")
    assert len(np.unique(chosen.numpy())) == K
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": seconds, "peak_gb": peak * 1024 / GB, "before_gb": rss_before * 1024 / GB,
            "file_gb": file_kb * 1024 / GB, "data_gb": x.numel() * x.element_size() / GB, "reset": reset}


def bench_coreset(n: int) -> list[dict]:
    rows = []
    for storage, what in (("float32", "float32 in RAM"), ("float16", "float16 in RAM"),
                          ("memmap", "float16 .npy memory map on disk")):
        r = _subprocess(["--coreset-worker", storage, str(n)])
        if "error" in r:
            rows.append(_row(f"core-set {n:,}×{CORESET_D}, {what}", note=f"worker failed: {r['error']}"))
            continue
        mapped = (f"; RssFile at the end {r['file_gb']:.2f} GB (file-backed pages: the .npy's and the libraries'; "
                  "reclaimable page cache)") if storage == "memmap" else ""
        rows.append(_row(f"core-set k={K} of {n:,}×{CORESET_D}, {what}", r["seconds"], peak_gb=r["peak_gb"],
                         beyond_mb=(r["peak_gb"] - r["before_gb"]) * GB / MB,
                         note=f"features {r['data_gb']:.2f} GB; RSS before {r['before_gb']:.2f} GB{mapped}"))
    return rows


# ------------------------------------------------------------------ 3. SEALS vs the full pool
class Measured:
    """A strategy whose every ``select`` is timed, with the peak RSS it reached (VmHWM reset before)."""

    def __init__(self, inner):
        self.inner, self.name, self.calls = inner, inner.name, []

    @property
    def needs(self):
        return getattr(self.inner, "needs", ())

    def select(self, ctx, k):
        before = _status_kb("VmRSS")
        reset_peak()
        start = time.perf_counter()
        sel = self.inner.select(ctx, k)
        self.calls.append({"seconds": time.perf_counter() - start, "peak_gb": _status_kb("VmHWM") * 1024 / GB,
                           "growth_mb": (_status_kb("VmHWM") - before) / 1024,
                           "scored": getattr(self.inner, "last", {}).get("restricted", len(ctx.candidates)),
                           "knn_s": getattr(self.inner, "last", {}).get("grow_seconds")})
        return sel


def seals_worker(arm: str, n: int, rounds: int, query: int, model_kind: str, index: str = "flat") -> dict[str, Any]:
    import lightning.pytorch as pl

    from exil.common.hooks import RoundHooks
    from exil.common.journal import read_journal
    from exil.common.loop import ActiveLoop, LoopConfig, seed_init
    from exil.common.oracle.simulated import SimulatedOracle
    from exil.common.strategies.seals import SEALS
    from exil.common.strategies.uncertainty import Entropy

    dm = build_pool(n, batch_size=64, eval_batch_size=BATCH, min_epoch_size=2048)
    seed_init(0)
    module = make_model(model_kind)
    strategy = Measured(Entropy() if arm == "full" else SEALS(Entropy(), neighbours=100, index=index))
    hooks = RoundHooks()
    cfg = LoopConfig(rounds=rounds, query_size=query, initial_per_class=20, reset_each_round=True, seed=0)
    run_dir = Path(tempfile.mkdtemp(prefix=f"exil-bench-seals-{arm}-"))

    def make_trainer(r, root, single_device=False):
        return pl.Trainer(max_epochs=8, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, callbacks=[hooks],
                          default_root_dir=root)

    start = time.perf_counter()
    ActiveLoop(cfg, module, dm, strategy, SimulatedOracle(), hooks, make_trainer, run_dir).run().close()
    total = time.perf_counter() - start
    metrics = read_journal(run_dir / "journal.sqlite")["metrics"]
    shutil.rmtree(run_dir, ignore_errors=True)
    last = metrics[max(metrics)]
    inner = strategy.inner
    return {"calls": strategy.calls, "acc": last.get("test/acc"), "labels": last["n_labels"], "total_s": total,
            "acc_by_round": [metrics[r].get("test/acc") for r in sorted(metrics)],
            "embedding": getattr(inner, "last", {}).get("embedding"),
            "index_s": getattr(inner, "last", {}).get("index_seconds")}


def bench_seals(n: int, model_kind: str, arms: tuple[str, ...] = ("full", "flat"), rounds: int = 5,
                query: int = 100) -> list[dict]:
    rows, res = [], {}
    for arm in arms:
        r = res[arm] = _subprocess(["--seals-worker", "full" if arm == "full" else "seals", str(n), str(rounds),
                                    str(query), model_kind, arm], timeout=1500)
        label = "entropy, full pool" if arm == "full" else f"SEALS(entropy, k=100, {arm})"
        if "error" in r:
            rows.append(_row(f"{label}, N={n:,}", note=f"worker failed: {r['error']}"))
            continue
        secs = [c["seconds"] for c in r["calls"]]
        later = secs[1:] if len(secs) > 1 else secs
        rows.append(_row(f"{label}, N={n:,}: selection, median of rounds 2–{len(secs)}", statistics.median(later),
                         peak_gb=max(c["peak_gb"] for c in r["calls"]),
                         beyond_mb=max(c["growth_mb"] for c in r["calls"]), acc=r["acc"],
                         note=f"items scored per round {[c['scored'] for c in r['calls']]}; first selection "
                              f"{secs[0]:.1f} s" + (f" (index {r['index_s']:.1f} s, {r['embedding']})" if r["index_s"] else "")
                              + ("" if r["calls"][0]["knn_s"] is None else
                                 f"; kNN search of the new labels per round {[round(c['knn_s'], 2) for c in r['calls']]} s")
                              + f"; test acc by round {[round(a, 4) for a in r['acc_by_round']]}; "
                              f"{r['labels']} labels; whole run {r['total_s']:.0f} s"))
    for arm in (a for a in arms if a != "full" and "full" in res):
        if "error" in res["full"] or "error" in res[arm]:
            continue
        full = [c["seconds"] for c in res["full"]["calls"]]
        seals = [c["seconds"] for c in res[arm]["calls"]]
        rows.append(_row(f"SEALS ({arm}) / full: selection time",
                         ratio=statistics.median(seals[1:] or seals) / statistics.median(full[1:] or full),
                         acc=res[arm]["acc"] - res["full"]["acc"],
                         note=f"rounds 2–{len(full)} (median); with the first (index build) included: "
                              f"{sum(seals) / sum(full):.3f}; acc column: SEALS − full"))
    return rows


# ------------------------------------------------------------------ plumbing
def _row(name, seconds=None, ratio=None, alpha=None, peak_gb=None, kept_mb=None, beyond_mb=None, acc=None,
         goal="", note="") -> dict[str, Any]:
    return {"row": name, "seconds": seconds, "ratio": ratio, "alpha": alpha, "peak_gb": peak_gb, "kept_mb": kept_mb,
            "beyond_mb": beyond_mb, "acc": acc, "goal": goal, "note": note}


def _subprocess(args: list[str], timeout: int = 900) -> dict[str, Any]:
    try:
        proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-400:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


COLUMNS = [("row", "row", None), ("seconds", "seconds", ".3f"), ("ratio", "ratio", ".4f"), ("α", "alpha", ".2f"),
           ("peak GB", "peak_gb", ".2f"), ("kept MB", "kept_mb", ".1f"), ("beyond MB", "beyond_mb", ".1f"),
           ("test acc", "acc", ".4f"), ("goal", "goal", None), ("note", "note", None)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="also write the table here (.csv, else JSON)")
    p.add_argument("--quick", action="store_true", help="pools of 10k and 30k only (and a 30k SEALS loop)")
    p.add_argument("--only", default="cost,coreset,seals", help="comma-separated tables: cost, coreset, seals")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="the scorer (module docstring)")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated, for the cost table")
    p.add_argument("--seals-arms", default="full,flat", help="comma-separated: full (entropy over the whole pool) "
                   "and SEALS index kinds (flat, hnsw, ivf)")
    p.add_argument("--cost-worker", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--coreset-worker", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--seals-worker", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cost_worker:
        print(json.dumps(cost_worker(args.cost_worker[0], int(args.cost_worker[1]), args.cost_worker[2])))
        return
    if args.coreset_worker:
        print(json.dumps(coreset_worker(args.coreset_worker[0], int(args.coreset_worker[1]))))
        return
    if args.seals_worker:
        arm, n, rounds, query, kind, index = args.seals_worker
        print(json.dumps(seals_worker(arm, int(n), int(rounds), int(query), kind, index)))
        return
    only = set(args.only.split(","))
    sizes = QUICK_SIZES if args.quick else SIZES
    rows: list[dict] = []
    t0 = time.perf_counter()
    if "cost" in only:
        rows += bench_cost(sizes, args.model, tuple(args.strategies.split(",")))
    if "coreset" in only:
        rows += bench_coreset(100_000 if args.quick else CORESET_N)
    if "seals" in only:
        rows += bench_seals(max(sizes) if args.quick else 1_000_000, args.model, tuple(args.seals_arms.split(",")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; scorer {args.model}; k={K} per selection; "
          f"{time.perf_counter() - t0:.0f} s in all")
    print_table(rows, "exil at scale", COLUMNS)
    if args.out:
        write(rows, args.out)


if __name__ == "__main__":
    main()
