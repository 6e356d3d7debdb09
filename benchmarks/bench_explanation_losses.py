"""Benchmark: the cost of training through explanations (double backward), as multiples of a plain
cross-entropy step on the same batch and model.

Rows, each one optimiser step (forward, backward, Adam) on a batch of 64 decoy-style 1×28×28 images
(every item annotated), each timed in a pair with the plain cross-entropy step of its own network,
the reference of its ratio: a small CNN (32, 64 channels) or the MLP(50, 30).

* eXBL, small CNN: CE + triplet loss on per-sample Grad-CAM maps (``create_graph``);
* RRR, MLP and small CNN: CE + λ‖A ⊙ ∂/∂x Σ log p‖² (double backpropagation);
* RBR, MLP and small CNN: CE + λ‖A ⊙ ∇_x ½‖∇_head CE‖²‖² (double backpropagation);
* RRR-G, small CNN: CE + λ Σ (A↓ ⊙ Grad-CAM)² (``create_graph``);
* HINT, small CNN: CE + λ · mean (Grad-CAM − R↓)² (``create_graph``);
* CDEP, MLP and small CNN: CE + λ · mean_k |β_k| (the default l1 form), contextual decomposition of every item.

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

from exil.common.backbones import build_backbone  # noqa: E402
from exil.common.modules.classifier import Classifier  # noqa: E402
from exil.exbl.cdep import CDEPClassifier  # noqa: E402
from exil.exbl.exbl import ExBLClassifier  # noqa: E402
from exil.exbl.hint import HINTClassifier  # noqa: E402
from exil.exbl.rbr import RBRClassifier  # noqa: E402
from exil.exbl.rrr import RRRClassifier  # noqa: E402
from exil.exbl.rrr_g import RRRGClassifier  # noqa: E402

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
         "irrelevant": irrelevant, "relevant": ~irrelevant, "annotated": torch.ones(BATCH, dtype=torch.bool)}
    return {k: v.to(device) for k, v in b.items()}


def stepper(module, opt, b, steps: int):
    def run() -> None:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            module.loss(b).backward()
            opt.step()
    return run


NETS = {"small_cnn": "small CNN", "mlp": "MLP(50, 30)"}


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
    good = torch.zeros(28, 28)
    good[6:22, 6:22] = 1

    def exbl(net: str):
        m, opt = make(ExBLClassifier, net, device, margin=0.1)
        m.set_exemplars(good.to(device), (1 - good).to(device))
        return m, opt

    methods = [
        ("eXBL (CE + triplet on Grad-CAM)", "small_cnn", exbl),
        ("RRR (CE + input-gradient penalty)", "mlp", lambda net: make(RRRClassifier, net, device)),
        ("RRR", "small_cnn", lambda net: make(RRRClassifier, net, device)),
        ("RBR (CE + head-influence penalty)", "mlp", lambda net: make(RBRClassifier, net, device)),
        ("RBR", "small_cnn", lambda net: make(RBRClassifier, net, device)),
        ("RRR-G (CE + Grad-CAM penalty)", "small_cnn", lambda net: make(RRRGClassifier, net, device)),
        ("HINT (CE + Grad-CAM alignment)", "small_cnn", lambda net: make(HINTClassifier, net, device)),
        ("CDEP (CE + contextual-decomposition penalty)", "mlp", lambda net: make(CDEPClassifier, net, device)),
        ("CDEP", "small_cnn", lambda net: make(CDEPClassifier, net, device)),
    ]
    s = a.steps
    ms = lambda t: 1000 * t / s  # noqa: E731
    rows = []
    for name, net, build in methods:
        ce, ce_opt = make(Classifier, net, device)
        method, method_opt = build(net)
        t_ce, t_method, _ = timed_pair(stepper(ce, ce_opt, b, s), stepper(method, method_opt, b, s), a.repeats, device)
        rows.append({"row": f"{name}, {NETS[net]}", "ms": ms(t_method), "ce_ms": ms(t_ce),
                     "ratio": f"{t_method / t_ce:.2f}× CE"})
    print_table(rows, f"device {device}, batch {BATCH}, {a.threads} threads, median of {a.repeats} × {s} steps",
                [("step", "row", None), ("ms per step", "ms", ".2f"), ("CE ms per step", "ce_ms", ".2f"),
                 ("ratio", "ratio", None)])


if __name__ == "__main__":
    main()
