"""Benchmark: ALICE's class-pair selection at the CUB-200 scale (200 classes, 1,280-d features,
15 images per class: 19,900 pairs), exil's low-rank batched JSD vs the straightforward per-pair
loop with d × d Cholesky factorisations (``exil.alice.pairs.jsd_dense``).

The per-pair loop would take many minutes for all pairs, so it runs on ``--loop-pairs`` random pairs
and its per-pair time is the reference; the ratio is per pair, in one run. Both compute the same
numbers (checked here on those pairs, and exactly in tests/unit/test_alice_pairs.py).

Run: ``.venv/bin/python benchmarks/bench_alice_pairs.py [--device cuda]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exil.alice.pairs import class_gaussians, jsd_dense, pair_jsd  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--dim", type=int, default=1280)
    p.add_argument("--per-class", type=int, default=15)
    p.add_argument("--loop-pairs", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    c, n, d = a.classes, a.per_class, a.dim
    labels = torch.arange(c).repeat_interleave(n)
    feats = (torch.randn(c, d, generator=g).repeat_interleave(n, 0) + torch.randn(c * n, d, generator=g)).to(device)
    labels = labels.to(device)

    t0 = time.perf_counter()
    gs = class_gaussians(feats, labels, c)
    pairs = torch.combinations(torch.arange(c, device=device), 2)
    jsd = pair_jsd(gs, pairs)
    best = torch.argsort(jsd)[:10]
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_fast = time.perf_counter() - t0

    sample = torch.randperm(len(pairs), generator=g)[: a.loop_pairs].to(device)
    t0 = time.perf_counter()
    dense = torch.stack([jsd_dense(gs.means[i], gs.covariance(i), gs.means[j], gs.covariance(j))
                         for i, j in pairs[sample].tolist()])
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_loop = (time.perf_counter() - t0) / a.loop_pairs
    err = ((dense - jsd[sample]).abs() / dense.abs()).max().item()
    per_pair_fast = t_fast / len(pairs)
    print(f"device {device}, {a.threads} threads: {c} classes, d = {d}, {n} images per class, {len(pairs)} pairs\n")
    print(f"exil, all pairs (Gaussians + JSD + sort): {t_fast:.2f} s ({1e3 * per_pair_fast:.3f} ms per pair)")
    print(f"per-pair dense loop ({a.loop_pairs} pairs):      {1e3 * t_loop:.1f} ms per pair "
          f"(all pairs: ~{t_loop * len(pairs):.0f} s)")
    print(f"ratio: exil is {t_loop / per_pair_fast:.0f}× faster per pair; max relative difference {err:.1e}")
    print(f"most confusable pairs: {[tuple(pairs[i].tolist()) for i in best[:3]]}")
    print("\npeak memory of the pair selection above the features it is given (each case in a fresh process):")
    for classes, per_class, dim in ((2, 20_000, 1), (10, 6_000, 64), (10, 6_000, 1280), (200, 15, 1280)):
        extra = _peak_above_features(classes, per_class, dim)
        gram = (classes * per_class) ** 2 * 8 / 2**30
        feats = classes * per_class * dim * 8 / 2**20
        print(f"  {classes:>3} classes × {per_class:>6} images, d = {dim:>4}: +{extra / 2**20:7.1f} MB "
              f"(features {feats:.0f} MB; the Gram of all images the old form built: {gram:.1f} GB)")


_CHILD = """
import gc, sys, torch
sys.path.insert(0, {root!r})
from exil.alice.pairs import most_confusable_pairs
torch.set_num_threads(2)
c, n, d = {c}, {n}, {d}
g = torch.Generator().manual_seed(0)
labels = torch.arange(c).repeat_interleave(n)
feats = torch.randn(c * n, d, generator=g, dtype=torch.double)
feats += torch.randn(c, d, generator=g, dtype=torch.double)[labels]
gc.collect()
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current resident size
before = status("VmRSS:")
most_confusable_pairs(feats, labels, c, budget=3)
print(status("VmHWM:") - before)
"""


def _peak_above_features(c: int, n: int, d: int) -> int:
    """Peak resident memory (bytes) of the pair selection above what the process held before it (Linux)."""
    import subprocess
    import sys
    from pathlib import Path

    code = _CHILD.format(root=str(Path(__file__).resolve().parents[1]), c=c, n=n, d=d)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


if __name__ == "__main__":
    main()
