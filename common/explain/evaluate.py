"""Explanation quality of a model on the test set, against the test set's ground-truth masks.

For every test item the model's explanation of its *predicted* class (or of the true label, with
``target="label"``) is computed in batches on ``device`` and scored with
:func:`exil.common.explain.metrics.activation_scores` against the item's ``mask`` (relevant pixels).
Returned, as means over items with a non-empty mask:

* ``test/expl_recall``, ``test/expl_precision``, ``test/expl_f1`` — Activation Recall / Precision / F1;
* ``test/decoy_share`` — when the data has a ``decoy`` field (decoy MNIST): the share of the
  explanation's mass on the decoy swatch (Ross et al. 2017's diagnostic of a model that uses it).

Explainers (``EXPLAINERS``): ``gradcam`` (Grad-CAM at ``layer``, conv nets) and ``input_gradients``
(|∂ logit_target / ∂x|, any differentiable model, e.g. an MLP).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from exil.common.explain.gradcam import GradCAM
from exil.common.explain.gradients import score_gradients
from exil.common.explain.metrics import activation_scores, attribution_share


def _gradcam(module: torch.nn.Module, layer: str | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    cam = GradCAM(module, layer)
    return lambda x, target: cam(x, target)


def _input_gradients(module: torch.nn.Module, layer: str | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, target: score_gradients(module, x, target).abs().amax(dim=1)


EXPLAINERS = {"gradcam": _gradcam, "input_gradients": _input_gradients}


def explainer(name: str, module: torch.nn.Module, layer: str | None = None):
    if name not in EXPLAINERS:
        raise ValueError(f"unknown explainer {name!r}; choose one of: {', '.join(EXPLAINERS)}")
    return EXPLAINERS[name](module, layer)


def explanation_quality(module: Any, datamodule: Any, device: torch.device, explainer_name: str = "gradcam",
                        layer: str | None = None, target: str = "predicted", threshold: float | None = 0.5,
                        max_items: int | None = None) -> dict[str, float]:
    """The metrics of the module docstring; ``{}`` when the test set has no ``mask`` field."""
    loader = datamodule.test_ground_truth_dataloader()
    was_training = module.training
    module.eval()
    explain = explainer(explainer_name, module, layer)
    sums = {"recall": 0.0, "precision": 0.0, "f1": 0.0, "decoy": 0.0}
    n = n_decoy = seen = 0
    try:
        for batch in loader:
            if "mask" not in batch:
                return {}
            if max_items is not None and seen >= max_items:
                break
            x = module.inputs(batch).to(device)
            if target == "predicted":
                with torch.no_grad():
                    tgt = module(x).argmax(-1)
            else:
                tgt = batch["y"].to(device)
            maps = explain(x, tgt)
            s = activation_scores(maps, batch["mask"].to(device), threshold)
            ok = ~torch.isnan(s["recall"])
            for k in ("recall", "precision", "f1"):
                sums[k] += float(s[k][ok].sum())
            n += int(ok.sum())
            if "decoy" in batch:
                sums["decoy"] += float(attribution_share(maps, batch["decoy"].to(device)).sum())
                n_decoy += len(x)
            seen += len(x)
    finally:
        module.train(was_training)
    out = {f"test/expl_{k}": sums[k] / max(n, 1) for k in ("recall", "precision", "f1")}
    if n_decoy:
        out["test/decoy_share"] = sums["decoy"] / n_decoy
    return out
