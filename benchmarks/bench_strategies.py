"""Benchmark of the query strategies: overhead over bare forward passes, core-set memory, baal side by side.

Rows:

1. Entropy and BALD (T=10 MC-dropout passes) selecting 1,000 of a 60,000-image pool
   (Fashion-MNIST from ``data/fashion_mnist`` if present, else random tensors of the same shape)
   with a small CNN, against the bare forward passes over the same DataLoader (batch size
   ``eval_batch_size``) under ``inference_mode``. Goal: strategy ≤ 1.15 × bare.
2. Core-set selecting 1,000 of 60,000 × 512 random features with 1,000 labelled: time, and the peak
   resident memory of a fresh subprocess (``VmHWM`` in ``/proc/self/status``). Goal: peak < 2 GB.
3. baal's Entropy / BALD heuristics on the same predictions as exil's (if ``baal`` imports).

Each timing: one warm-up, then the median of ``--repeats`` runs (``time.perf_counter``); a strategy
and its baseline alternate, so that load from other processes hits both alike.

Run: ``.venv/bin/python benchmarks/bench_strategies.py [--out table.json|table.csv] [--device cuda]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared import print_table, timed_pair, write  # noqa: E402  (benchmarks/shared.py)

from exil.common.data.base import PoolDataModule
from exil.common.data.items import TensorItems  # noqa: E402
from exil.common.errors import ExilError  # noqa: E402
from exil.common.modules.classifier import Classifier  # noqa: E402
from exil.common.strategies import heuristics  # noqa: E402
from exil.common.strategies.bald import BALD  # noqa: E402
from exil.common.strategies.context import QueryContext  # noqa: E402
from exil.common.strategies.coreset import CoreSet  # noqa: E402
from exil.common.strategies.uncertainty import Entropy  # noqa: E402

POOL, K, PASSES, BATCH = 60_000, 1_000, 10, 512
CORESET_N, CORESET_LABELLED, CORESET_D = 60_000, 1_000, 512
GB = 1024**3


class SmallCNN(nn.Module):
    """conv(1→8) → pool → conv(8→16) → pool → linear(784→128): 128-d features for 1×28×28 images."""

    out_features = 128

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 7 * 7, self.out_features), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Identity(nn.Module):
    """Features = inputs (the core-set rows embed given random features)."""

    def __init__(self, d: int):
        super().__init__()
        self.out_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class TensorPool(PoolDataModule):
    """A pool of given tensors (random stand-ins when no data set is at hand)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, **kwargs: Any):
        super().__init__(**kwargs)
        self._x, self._y = x, y

    def load(self):
        items = TensorItems(x=self._x, y=self._y)
        return items, None, TensorItems(x=self._x[:100], y=torch.arange(100) % 10)


# ------------------------------------------------------------------ helpers
def fashion_mnist_or_random() -> tuple[PoolDataModule, str]:
    try:
        from exil.common.data.mnist import FashionMNISTDataModule

        dm = FashionMNISTDataModule(data_dir=str(ROOT / "data"), eval_batch_size=BATCH)
        dm.setup()
        return dm, f"Fashion-MNIST from {ROOT / 'data' / 'fashion_mnist'}"
    except (ImportError, ExilError) as e:
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(POOL, 1, 28, 28, generator=g), torch.randint(0, 10, (POOL,), generator=g)
        return TensorPool(x, y, eval_batch_size=BATCH), f"random 1×28×28 tensors (no Fashion-MNIST: {e})"


def row(name, seconds=None, ratio=None, peak_gb=None, goal="", ok=None, note="") -> dict[str, Any]:
    return {"row": name, "seconds": seconds, "ratio": ratio, "peak_gb": peak_gb, "goal": goal,
            "result": "" if ok is None else ("pass" if ok else "FAIL"), "note": note}  # fmt: skip


# ------------------------------------------------------- 1. scoring overhead
def bench_scoring(device: torch.device, repeats: int) -> tuple[list[dict], dict[str, torch.Tensor]]:
    dm, source = fashion_mnist_or_random()
    candidates = np.arange(POOL)
    torch.manual_seed(0)
    model = Classifier(SmallCNN(), num_classes=10, dropout=0.5).to(device).eval()

    def ctx() -> QueryContext:  # a fresh context per run: nothing cached between repeats
        return QueryContext(model, dm, candidates, device, torch.Generator().manual_seed(0))

    @torch.inference_mode()
    def bare(passes: int) -> None:
        model.eval()
        model.dropout.train(passes > 1)
        for batch in dm.pool_dataloader(candidates):
            x = batch["x"].to(device, non_blocking=True)
            for _ in range(passes):
                model(x)
        model.eval()

    rows = []
    t_bare, t_ent, (_, ent_sel) = timed_pair(lambda: bare(1), lambda: Entropy().select(ctx(), K), repeats, device)
    rows += [
        row("(a) bare forward, pool of 60k", t_bare, note=source),
        row("(b) Entropy.select(ctx, 1000)", t_ent, t_ent / t_bare, goal="≤ 1.15 × (a)", ok=t_ent / t_bare <= 1.15),
    ]
    t_mc, t_bald, (_, bald_sel) = timed_pair(
        lambda: bare(PASSES), lambda: BALD(passes=PASSES).select(ctx(), K), repeats, device
    )
    rows += [
        row(f"(c) bare forward, T={PASSES} dropout passes", t_mc, note="a loop of T passes per batch"),
        row(f"(d) BALD(passes={PASSES}).select(ctx, 1000)", t_bald, t_bald / t_mc, goal="≤ 1.15 × (c)",
            ok=t_bald / t_mc <= 1.15, note="through module.mc_logits (the Classifier runs its backbone once, the head T times)"),  # fmt: skip
    ]
    assert len(ent_sel.indices) == len(bald_sel.indices) == K
    c = ctx()
    return rows, {"probs": c.probs("pool"), "mc": c.mc_probs(PASSES)}


# ------------------------------------------------------------- 2. core-set
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def coreset_worker(device: str, repeats: int) -> None:
    """Run in a fresh process: prints one JSON line with the selection time and memory peaks."""
    g = torch.Generator().manual_seed(0)
    n = CORESET_N + CORESET_LABELLED
    dm = TensorPool(torch.randn(n, CORESET_D, generator=g), torch.randint(0, 10, (n,), generator=g), eval_batch_size=4096)
    dm.setup()
    labelled = np.arange(CORESET_N, n)
    dm.label(labelled, dm._y[labelled].tolist())
    ctx = QueryContext(Classifier(Identity(CORESET_D), 10), dm, dm.unlabelled_indices, device,
                       torch.Generator().manual_seed(0))  # fmt: skip
    ctx.embeddings("pool"), ctx.embeddings("labelled")  # the forward passes are not what is measured here
    cuda = ctx.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        gpu_before = torch.cuda.memory_allocated()
    rss_before = _status_kb("VmRSS")
    try:  # reset the high-water mark to the current RSS (Linux ≥ 4.0), so the peak is the selection's
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    times = []
    for rep in range(repeats + 1):
        start = time.perf_counter()
        sel = CoreSet().select(ctx, K)
        if cuda:
            torch.cuda.synchronize()
        if rep:
            times.append(time.perf_counter() - start)
    assert len(np.unique(sel.indices)) == K
    peak = _status_kb("VmHWM")
    gpu_growth = (torch.cuda.max_memory_allocated() - gpu_before) / GB if cuda else None
    print(json.dumps({"seconds": statistics.median(times), "peak_gb": peak * 1024 / GB,
                      "growth_gb": (peak - rss_before) * 1024 / GB, "gpu_growth_gb": gpu_growth,
                      "reset": reset}))  # fmt: skip


def bench_coreset(device: torch.device, repeats: int) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, __file__, "--coreset-worker", "--device", str(device), "--repeats", str(repeats)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if proc.returncode != 0:
        return [row("core-set 1000 of 60k × 512", note=f"worker failed: {proc.stderr.strip()[-300:]}", ok=False)]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    how = "peak after a reset at the start" if r["reset"] else "peak since process start"
    gpu = "" if r["gpu_growth_gb"] is None else f"; GPU memory peak adds {r['gpu_growth_gb']:.3f} GB"
    return [
        row("core-set 1000 of 60k×512, 1k labelled", r["seconds"], peak_gb=r["peak_gb"], goal="peak < 2 GB",
            ok=r["peak_gb"] < 2.0,
            note=f"fresh process VmHWM ({how}); selection adds {r['growth_gb']:.3f} GB over the data{gpu}"),
    ]  # fmt: skip


# ----------------------------------------------------------------- 3. baal
def bench_baal(preds: dict[str, torch.Tensor], repeats: int) -> list[dict]:
    try:
        from baal.active.heuristics import BALD as BaalBALD
        from baal.active.heuristics import Entropy as BaalEntropy
    except Exception as e:  # noqa: BLE001 - any import failure means "no baal here"
        return [row("baal heuristics", note=f"baal not importable: {type(e).__name__}: {e}")]
    probs, mc = preds["probs"].cpu(), preds["mc"].cpu()
    probs_np, mc_np = probs.numpy(), mc.permute(1, 2, 0).contiguous().numpy()  # baal: (N, C) and (N, C, T)
    rows = []
    for name, ours, theirs in [
        ("entropy", lambda: heuristics.entropy(probs), lambda: BaalEntropy().get_uncertainties(probs_np)),
        ("BALD", lambda: heuristics.bald(mc), lambda: BaalBALD().get_uncertainties(mc_np)),
    ]:
        t_baal, t_ours, (s_baal, s_ours) = timed_pair(theirs, ours, repeats, torch.device("cpu"))
        diff = float(np.abs(s_ours.double().numpy() - np.asarray(s_baal, dtype=np.float64)).max())
        rows += [
            row(f"baal {name} heuristic, same predictions", t_baal, note="numpy"),
            row(f"exil {name} heuristic, same predictions", t_ours, t_ours / t_baal,
                note=f"ratio = exil / baal; max |exil − baal| = {diff:.1e}"),
        ]  # fmt: skip
    return rows


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="also write the table here (.csv, else JSON)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--coreset-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.coreset_worker:
        coreset_worker(args.device, args.repeats)
        return
    device = torch.device(args.device)
    rows, preds = bench_scoring(device, args.repeats)
    rows += bench_coreset(device, args.repeats)
    rows += bench_baal(preds, args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print_table(rows, "exil query strategies",
                [("row", "row", None), ("seconds", "seconds", ".3f"), ("ratio", "ratio", ".3f"),
                 ("peak GB", "peak_gb", ".3f"), ("goal", "goal", None), ("result", "result", None),
                 ("note", "note", None)])
    if args.out:
        write(rows, args.out)


if __name__ == "__main__":
    main()
