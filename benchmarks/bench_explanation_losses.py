"""Benchmark: the cost of training through explanations (double backward), as multiples of a plain
cross-entropy step on the same batch and model.

Rows, each one optimiser step (forward, backward, Adam) on a batch of 64 decoy-style 1×28×28 images:

1. plain cross-entropy step of a small CNN (32, 64 channels) — the reference;
2. eXBL step of the same CNN: CE + triplet loss on per-sample Grad-CAM maps (``create_graph``);
3. plain cross-entropy step of the MLP(50, 30) — the reference of 4;
4. RRR step of the MLP: CE + λ‖A ⊙ ∂/∂x Σ log p‖² (double backpropagation);
5. RRR step of the CNN, against row 1.

Each timing: one warm-up, then the median of ``--repeats`` runs of ``--steps`` steps; a method and
its reference alternate so that load from other processes hits both alike. Ratios are the result;
seconds are for orientation only.

Run: ``.venv/bin/python benchmarks/bench_explanation_losses.py [--device cuda]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared import print_table, timed_pair  # noqa: E402  (benchmarks/shared.py)
from common.backbones import build_backbone  # noqa: E402
from common.modules.classifier import Classifier  # noqa: E402
from exbl.exbl import ExBLClassifier  # noqa: E402
from exbl.rrr import RRRClassifier  # noqa: E402

BATCH = 64


def backbone(name: str):
    kw = {"hidden": [50, 30]} if name == "mlp" else {"channels": [32, 64]}
    return build_backbone(source="exil", name=name, weights="none", input_shape=[1, 28, 28], data_dir="data", **kw)


def make(cls, name: str, device: torch.device, **kw):
    torch.manual_seed(0)
    m = cls(backbone(name), num_classes=10, **kw).to(device)
    m.log = lambda *a, **k: None
    return m, torch.optim.Adam(m.parameters(), lr=1e-3)


def batch(device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    irrelevant = torch.zeros(BATCH, 28, 28, dtype=torch.bool)
    irrelevant[:, :4, :4] = True
    b = {"x": torch.rand(BATCH, 1, 28, 28, generator=g), "y": torch.randint(0, 10, (BATCH,), generator=g),
         "irrelevant": irrelevant, "annotated": torch.ones(BATCH, dtype=torch.bool)}
    return {k: v.to(device) for k, v in b.items()}


def stepper(module, opt, b, steps: int):
    def run() -> None:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            module.loss(b).backward()
            opt.step()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    b = batch(device)

    exbl, exbl_opt = make(ExBLClassifier, "small_cnn", device, margin=0.1)
    good = torch.zeros(28, 28)
    good[6:22, 6:22] = 1
    exbl.set_exemplars(good.to(device), (1 - good).to(device))
    cnn, cnn_opt = make(Classifier, "small_cnn", device)
    mlp, mlp_opt = make(Classifier, "mlp", device)
    rrr_mlp, rrr_mlp_opt = make(RRRClassifier, "mlp", device)
    rrr_cnn, rrr_cnn_opt = make(RRRClassifier, "small_cnn", device)

    s = a.steps
    ce_cnn, t_exbl, _ = timed_pair(stepper(cnn, cnn_opt, b, s), stepper(exbl, exbl_opt, b, s),
                                   a.repeats, device)
    ce_mlp, t_rrr_mlp, _ = timed_pair(stepper(mlp, mlp_opt, b, s),
                                      stepper(rrr_mlp, rrr_mlp_opt, b, s), a.repeats, device)
    ce_cnn2, t_rrr_cnn, _ = timed_pair(stepper(cnn, cnn_opt, b, s),
                                       stepper(rrr_cnn, rrr_cnn_opt, b, s), a.repeats, device)
    ms = lambda t: 1000 * t / s  # noqa: E731
    rows = [{"row": name, "ms": ms(t), "ratio": ratio} for name, t, ratio in [
        ("(1) CE step, small CNN", ce_cnn, "1.00×"),
        ("(2) eXBL step (CE + triplet on Grad-CAM), small CNN", t_exbl, f"{t_exbl / ce_cnn:.2f}× (1)"),
        ("(3) CE step, MLP(50, 30)", ce_mlp, "1.00×"),
        ("(4) RRR step (CE + input-gradient penalty), MLP", t_rrr_mlp, f"{t_rrr_mlp / ce_mlp:.2f}× (3)"),
        ("(5) RRR step, small CNN", t_rrr_cnn, f"{t_rrr_cnn / ce_cnn2:.2f}× (1)"),
    ]]
    print_table(rows, f"device {device}, batch {BATCH}, {a.threads} threads, median of {a.repeats} × {s} steps",
                [("row", "row", None), ("ms per step", "ms", ".2f"), ("ratio", "ratio", None)])

if __name__ == "__main__":
    main()
