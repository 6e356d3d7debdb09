"""Benchmark of exil's batched LIME against the ``lime`` package and against bare forward passes.

For two models — an MLP 784→50→30→10 (Ross et al.'s decoy-MNIST net) and a small CNN (conv3x3
blocks of 32 and 64 channels, average-pooled, linear head) — briefly trained on the decoy
Fashion-MNIST pool, explain 100 decoy Fashion-MNIST test images (``data/fashion_mnist``; random
1×28×28 images if it is missing) with 1,000 perturbations each on a 4×4-pixel grid (49 segments),
hide_color 0, k = 5 (``auto`` → forward selection in both), batch size 1,000:

(c) bare forward passes of the model over the 100 × 1,000 perturbed images, built beforehand
    (the reference), under ``inference_mode``;
(a) exil: ``explain_batch`` over the 100 images at once, with ``sampling="bernoulli"`` (what
    ``lime``'s image explainer draws). Goal on the CNN: (a) ≤ 1.3 × (c);
(b) ``lime``: ``LimeImageExplainer.explain_instance`` once per image, ``segmentation_fn`` returning
    the same grid, ``top_labels=1``. Goal on the MLP: (b) / (a) ≥ 10;
and the agreement of the top-5 segments of exil and lime (mean Jaccard index over the images),
next to exil's agreement with itself under another seed (LIME's own sampling noise).

Timings: a warm-up of each on 5 images, then (a) and (c) alternate, the median of ``--repeats``
runs (default 5 for the MLP, 1 for the CNN, whose 100,000 forward passes take about a minute on two
CPU threads); (b) runs once. ``torch.set_num_threads(2)``. Exil's self-agreement is measured on the first 20 images.

Run: ``.venv/bin/python benchmarks/bench_lime.py [--out table.json|table.csv] [--device cuda]``
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: lime draws a progress bar per image

import argparse
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

from shared import print_table, sync, timed_pair, write  # noqa: E402  (benchmarks/shared.py)

from exil.common.backbones import build_backbone  # noqa: E402
from exil.common.errors import ExilError  # noqa: E402
from exil.common.explain.lime import LimeConfig, explain_batch, sample_masks  # noqa: E402
from exil.common.explain.segmentation import grid  # noqa: E402

N_IMAGES, SAMPLES, CELL, K, BATCH = 100, 1000, 4, 5, 1000
SHAPE = (1, 28, 28)


def decoy_fashion_mnist() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(train x, train y, 100 test images, their labels, where they come from)."""
    try:
        from exil.common.data.decoy import DecoyFashionMNISTDataModule

        dm = DecoyFashionMNISTDataModule(data_dir=str(ROOT / "data"))
        dm.setup()
        train = dm.pool.__getitems__(list(range(10_000)))
        test = dm.test.__getitems__(list(range(N_IMAGES)))
        source = f"decoy Fashion-MNIST from {ROOT / 'data' / 'fashion_mnist'}"
        return train["x"], train["y"], test["x"], test["y"], source
    except (ImportError, ExilError) as e:
        g = torch.Generator().manual_seed(0)
        n = 10_000 + N_IMAGES
        x, y = torch.rand(n, *SHAPE, generator=g), torch.randint(0, 10, (n,), generator=g)
        return x[:10_000], y[:10_000], x[10_000:], y[10_000:], f"random 1×28×28 images (no Fashion-MNIST: {e})"


def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    mlp = build_backbone(source="exil", name="mlp", input_shape=SHAPE, hidden=[50, 30])
    cnn = build_backbone(source="exil", name="small_cnn", input_shape=SHAPE, channels=[32, 64])
    return {"MLP 784→50→30→10": nn.Sequential(mlp, nn.Linear(mlp.out_features, 10)),
            "CNN conv32-conv64": nn.Sequential(cnn, nn.Linear(cnn.out_features, 10))}  # fmt: skip


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, epochs: int = 1) -> float:
    """A few Adam epochs (batch 128), so that explanations have something to explain; train accuracy."""
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(128):
            loss = nn.functional.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.inference_mode():
        return float((model(x.to(device)).argmax(1).cpu() == y).float().mean())


def row(name, seconds=None, ratio=None, goal="", ok=None, note="") -> dict[str, Any]:
    return {"row": name, "seconds": seconds, "ratio": ratio, "goal": goal,
            "result": "" if ok is None else ("pass" if ok else "FAIL"), "note": note}  # fmt: skip


def jaccard(a: list[set[int]], b: list[set[int]]) -> float:
    return float(np.mean([len(p & q) / len(p | q) for p, q in zip(a, b)]))


def top_sets(components: torch.Tensor) -> list[set[int]]:
    return [set(r) for r in components.tolist()]


def run_lime(model: nn.Module, images: torch.Tensor, segments: np.ndarray, device: torch.device) -> list[set[int]]:
    """lime's image explainer, one image after the other; the top-5 segments of the top label."""
    from lime.lime_image import LimeImageExplainer

    @torch.inference_mode()
    def classifier_fn(batch: np.ndarray) -> np.ndarray:  # lime passes (N, H, W, 3): grey repeated to RGB
        x = torch.from_numpy(batch[..., 0]).float().unsqueeze(1).to(device)
        return model(x).softmax(-1).cpu().numpy()

    explainer = LimeImageExplainer(kernel_width=0.25, random_state=0)
    sets = []
    for image in images[:, 0].numpy().astype(np.float64):
        e = explainer.explain_instance(image, classifier_fn, top_labels=1, hide_color=0, num_features=K,
                                       num_samples=SAMPLES, batch_size=BATCH, segmentation_fn=lambda _: segments,
                                       random_seed=0)  # fmt: skip
        sets.append({f for f, _ in e.local_exp[e.top_labels[0]][:K]})
    return sets


def bench_model(name: str, model: nn.Module, images: torch.Tensor, device: torch.device, repeats: int,
                lime_ok: str | None) -> list[dict]:
    cfg = LimeConfig(num_samples=SAMPLES, k=K, batch_size=BATCH, sampling="bernoulli")
    seg = grid(28, 28, CELL)
    x = images.to(device)
    z = sample_masks(torch.ones(len(x), 49, dtype=torch.bool), SAMPLES, "bernoulli", torch.Generator().manual_seed(0))
    z = z.view(-1, 49).to(device)
    on = z.gather(1, seg.flatten().to(device).expand(len(z), -1)).view(-1, *SHAPE)
    perturbed = torch.where(on, x.repeat_interleave(SAMPLES, 0), 0.0)  # built once: (c) times only the model

    @torch.inference_mode()
    def bare(n: int) -> None:
        for chunk in perturbed[: n * SAMPLES].split(BATCH):
            model(chunk)

    def exil(n: int, seed: int = 0):
        return explain_batch(model, x[:n], seg, cfg, hide_color=0.0, generator=torch.Generator().manual_seed(seed))

    bare(5), exil(5)  # warm-up on a few images: a full CNN pass takes a minute
    t_bare, t_exil, (_, e) = timed_pair(lambda: bare(len(x)), lambda: exil(len(x)), repeats, device, warmup=False)
    self_agree = jaccard(top_sets(e.components[:20]), top_sets(exil(20, seed=1).components))
    rows = [
        row(f"{name}: (c) bare forward, {len(x)}×{SAMPLES}", t_bare,
            note=f"perturbed images built beforehand; median of {repeats}"),
        row(f"{name}: (a) exil explain_batch", t_exil, t_exil / t_bare, goal="≤ 1.3 × (c)" if "CNN" in name else "",
            ok=(t_exil / t_bare <= 1.3) if "CNN" in name else None,
            note=f"ratio = (a)/(c); mean R² of the local models {float(e.score.mean()):.2f}"),
    ]  # fmt: skip
    if lime_ok is not None:
        return rows + [row(f"{name}: (b) lime explain_instance ×{len(x)}", note=f"skipped: {lime_ok}")]
    grid_np = seg.numpy()
    run_lime(model, images[:1], grid_np, device)  # warm-up
    sync(device)
    start = time.perf_counter()
    lime_sets = run_lime(model, images, grid_np, device)
    t_lime = time.perf_counter() - start
    speedup = t_lime / t_exil
    agree = jaccard(top_sets(e.components), lime_sets)
    return rows + [
        row(f"{name}: (b) lime explain_instance ×{len(x)}", t_lime, t_lime / t_bare, note="ratio = (b)/(c); one run"),
        row(f"{name}: lime / exil speedup", ratio=speedup, goal="≥ 10" if "MLP" in name else "",
            ok=(speedup >= 10) if "MLP" in name else None, note="ratio = (b)/(a)"),
        row(f"{name}: top-5 agreement exil vs lime", ratio=agree,
            note=f"mean Jaccard of the top-5 segments (exil vs exil seed 1, 20 images: {self_agree:.2f})"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="also write the table here (.csv, else JSON)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, help="timed runs of (a) and (c); default 5 for the MLP, 1 for the CNN")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    device = torch.device(args.device)
    try:
        import lime.lime_image  # noqa: F401

        lime_ok = None
    except Exception as e:  # noqa: BLE001 - any import failure means "no lime here"
        lime_ok = f"lime not importable: {type(e).__name__}: {e}"
    train_x, train_y, images, _, source = decoy_fashion_mnist()
    rows = []
    for name, model in models().items():
        model.to(device)
        acc = train(model, train_x, train_y, device)
        rows.append(row(f"{name}: trained 1 epoch on 10k pool images", note=f"train accuracy {acc:.2f}; {source}"))
        repeats = args.repeats or (5 if "MLP" in name else 1)
        rows += bench_model(name, model, images, device, repeats, lime_ok)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print_table(rows, "exil LIME", [("row", "row", None), ("seconds", "seconds", ".3f"), ("ratio", "ratio", ".2f"),
                                    ("goal", "goal", None), ("result", "result", None), ("note", "note", None)])
    if args.out:
        write(rows, args.out)


if __name__ == "__main__":
    main()
