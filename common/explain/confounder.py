"""What the field reports on data with a known confounder (the decoy swatch): worst-group accuracy and the
wrong-reason score, per round, for every method.

**Worst-group accuracy** (Sagawa et al. 2020's figure for spurious correlations). Test items are grouped
by (true class ``y``, whether the confounder codes the true class: ``decoy_y == y``). On decoy data the
test swatch shows a random class, so "agrees" holds for about 1 item in C; a model that reads the swatch
is right on the agreeing groups and wrong on the others. ``test/worst_group_acc`` is the lowest accuracy
over the groups of at least :data:`MIN_GROUP` items (on decoy digits' 540 test images an agreeing group holds
about 5, and one item would swing it by 0.2: those groups count in the pooled figures only);
``test/acc_confounder_agrees`` / ``..._disagrees`` pool the classes.

**Wrong-reason score** (the XIL typology's WR, Friedrich et al. 2023): for each test item, the share
of its explanation's absolute attribution that falls on the confounder region ``R``,
``WR = Σ_{p ∈ R} |E_p| / Σ_p |E_p|``, averaged over items (:func:`exil.common.explain.metrics.attribution_share`),
for the explanation of the *predicted* class by

* ``input_gradients``: ``|∂ logit_ŷ / ∂x|`` (max over channels) — any differentiable model;
* ``gradcam``: Grad-CAM at the last spatial layer, upsampled to the input — conv nets only (skipped, not an
  error, for a model with no spatial layer such as the MLP);
* ``lime``: LIME on a grid of square cells as large as the confounder (so that it is exactly one cell),
  every cell's weight spread over its pixels (``|β_s|`` on the pixels of cell ``s``) — costlier, so on the
  first ``lime_items`` test items.

Returned keys: ``test/worst_group_acc``, ``test/acc_confounder_agrees``, ``test/acc_confounder_disagrees``,
``test/wr_<explainer>``. A score of 0 means the model's explanation never looks at the confounder; the
share of the image the confounder covers (4 of 64 pixels for decoy digits, ≈ 0.06) is what an explanation
spread evenly would give.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from exil.common.data.views import read, targets_of
from exil.common.explain.evaluate import explainer
from exil.common.explain.lime import LimeConfig, explain_batch
from exil.common.explain.metrics import as_mask, attribution_share
from exil.common.explain.segmentation import grid

EXPLAINERS = ("input_gradients", "gradcam", "lime")


def _inputs(module: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The model input of a batch: an exil module says (``inputs``); any other model takes ``x``."""
    return module.inputs(batch) if hasattr(module, "inputs") else batch["x"]


def has_confounder(datamodule: Any) -> bool:
    """The data names a confounder region and the label it codes on each test item."""
    return bool(getattr(datamodule, "confounder_field", None) and getattr(datamodule, "confounder_label_field", None))


#: groups with fewer test items are left out of the worst group (their items still count in the pooled accuracies)
MIN_GROUP = 10


def group_accuracy(preds: np.ndarray, y: np.ndarray, confounder_y: np.ndarray, min_group: int = MIN_GROUP
                   ) -> dict[str, float]:
    """Worst-group accuracy over (class, confounder agrees with the class) — over the groups of at least
    ``min_group`` items, else over all non-empty groups — and the two pooled accuracies."""
    preds, y, confounder_y = (np.asarray(a).astype(np.int64) for a in (preds, y, confounder_y))
    right = preds == y
    agrees = confounder_y == y
    groups = [(y == c) & (agrees == a) for c in np.unique(y) for a in (True, False)]
    big = [g for g in groups if g.sum() >= min_group] or [g for g in groups if g.any()]
    out = {"test/worst_group_acc": float(min(right[g].mean() for g in big))}
    if agrees.any():
        out["test/acc_confounder_agrees"] = float(right[agrees].mean())
    if (~agrees).any():
        out["test/acc_confounder_disagrees"] = float(right[~agrees].mean())
    return out


def lime_maps(module: Any, x: torch.Tensor, target: torch.Tensor, cell: int, generator: torch.Generator,
              num_samples: int = 500) -> torch.Tensor:
    """(B, H, W) LIME attribution maps on a grid of ``cell``-pixel squares: ``|β_s|`` on the pixels of cell ``s``."""
    h, w = x.shape[-2:]
    segments = grid(h, w, cell=cell, device=x.device)
    d = int(segments.max()) + 1
    e = explain_batch(module, x, segments, LimeConfig(num_samples=num_samples, k=d, selection="highest_weights"),
                      target=target, generator=generator)
    beta = e.weights.abs().to(device=x.device, dtype=x.dtype)
    weights = torch.zeros(len(x), d, device=x.device, dtype=x.dtype).scatter_(1, e.components.to(x.device), beta)
    return weights.gather(1, segments.flatten().expand(len(x), -1)).view(len(x), h, w)


def wrong_reason(module: Any, x: torch.Tensor, region: torch.Tensor, target: torch.Tensor, explainer: str,
                 cell: int = 2, generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Per-item share of ``explainer``'s attribution on ``region`` (B,); ``None`` where the explainer does not
    apply to the model (Grad-CAM of a model without a spatial layer)."""
    maps = _explainers(module, [explainer], cell, generator)[explainer](x, target)
    return None if maps is None else attribution_share(maps, region)


def _explainers(module: Any, names: Sequence[str], cell: int, generator: torch.Generator | None
                ) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor | None] | None]:
    """Map makers ``(x, target) -> (B, H, W)`` for ``names``, built once (Grad-CAM finds its layer once);
    Grad-CAM's maker returns ``None`` for a model without a spatial layer. Input gradients and Grad-CAM are
    :func:`exil.common.explain.evaluate.explainer`'s."""
    unknown = [e for e in names if e not in EXPLAINERS]
    if unknown:
        raise ValueError(f"unknown wrong-reason explainer(s) {unknown}; choose from {', '.join(EXPLAINERS)}")
    gen = generator or torch.Generator().manual_seed(0)
    out: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor | None] | None] = {}
    for name in names:
        if name == "lime":
            out[name] = lambda x, target: lime_maps(module, x, target, cell, gen)
        elif name == "gradcam":
            cam = explainer("gradcam", module)

            def gradcam(x, target, cam=cam):
                try:
                    return cam(x, target)
                except ValueError:  # no layer with a spatial output: Grad-CAM has nothing to explain
                    return None
            out[name] = gradcam
        else:
            out[name] = explainer(name, module)
    return out


def confounder_metrics(module: Any, datamodule: Any, device: torch.device, preds: np.ndarray | None,
                       explainers: Sequence[str] = EXPLAINERS, max_items: int | None = None,
                       lime_items: int = 100, seed: int = 0) -> dict[str, float]:
    """The metrics of the module docstring on the test set; ``{}`` for data without a confounder. One pass over
    the test set: every batch gives its confounder labels, the first ``max_items`` items their explanations."""
    if not has_confounder(datamodule):
        return {}
    test = datamodule._ground_truth_test
    region_field, label_field = datamodule.confounder_field, datamodule.confounder_label_field
    n = len(test) if max_items is None else min(max_items, len(test))
    cell = int(getattr(datamodule, "confounder_cell", 0) or 0)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    confounder_y: list[np.ndarray] = []
    makers = None
    was = module.training
    module.eval()
    try:
        for start in range(0, len(test), datamodule.eval_batch_size):
            batch = read(test, list(range(start, min(len(test), start + datamodule.eval_batch_size))))
            confounder_y.append(np.asarray(batch[label_field]))
            x = _inputs(module, batch)
            if start >= n or x.dim() != 4:  # wrong-reason maps are for images, on the first n items
                continue
            x = x[: n - start].to(device)
            region = as_mask(batch[region_field][: n - start]).to(device)
            if makers is None:
                makers = _explainers(module, explainers, cell or max(1, round(min(x.shape[-2:]) / 7)), gen)
            with torch.no_grad():
                target = module(x).argmax(-1)
            for name, explain in makers.items():
                if explain is None:
                    continue
                rows = slice(0, max(0, lime_items - counts.get(name, 0))) if name == "lime" else slice(None)
                if rows.stop == 0:
                    continue
                maps = explain(x[rows], target[rows])
                if maps is None:
                    makers[name] = None  # not for this model: not tried again on the next batch
                    continue
                share = attribution_share(maps, region[rows])
                sums[name] = sums.get(name, 0.0) + float(share.sum())
                counts[name] = counts.get(name, 0) + len(share)
    finally:
        module.train(was)
    out: dict[str, float] = {}
    y = targets_of(test)
    if preds is not None and len(preds) == len(y):
        out.update(group_accuracy(np.asarray(preds), y, np.concatenate(confounder_y)))
    out.update({f"test/wr_{k}": sums[k] / counts[k] for k in sums if counts[k]})
    return out


def example_items(datamodule: Any, n: int = 8) -> np.ndarray:
    """The first ``n`` test items (one per class first) whose confounder shows another class than theirs: a model
    that reads the confounder gets them wrong. The same items in every run of a dataset, so sheets compare."""
    test = datamodule._ground_truth_test
    y = targets_of(test)
    cy = np.asarray(read(test, list(range(len(test))))[datamodule.confounder_label_field])
    disagree = np.flatnonzero(cy != y)
    first = [int(disagree[y[disagree] == c][0]) for c in np.unique(y[disagree])][:n]
    rest = [int(i) for i in disagree if int(i) not in first][: n - len(first)]
    return np.sort(np.asarray(first + rest, dtype=np.int64))


def example_maps(module: Any, datamodule: Any, device: torch.device, n: int = 8) -> dict[str, np.ndarray]:
    """Input-gradient maps of the model's predicted class on :func:`example_items`, with what a sheet shows
    beside them: the images, labels, predictions, the class the confounder shows and the confounder region."""
    test = datamodule._ground_truth_test
    items = example_items(datamodule, n)
    batch = read(test, items.tolist())
    x = _inputs(module, batch).to(device)
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            pred = module(x).argmax(-1)
        maps = explainer("input_gradients", module)(x, pred)
    finally:
        module.train(was)
    return {"items": items, "x": x.detach().cpu().numpy(), "maps": maps.detach().cpu().numpy(),
            "y": np.asarray(batch["y"]), "pred": pred.cpu().numpy(),
            "confounder_y": np.asarray(batch[datamodule.confounder_label_field]),
            "region": as_mask(batch[datamodule.confounder_field]).cpu().numpy()}
