"""The shape every explanation loss of ``exbl`` shares: ``L = CE + λ · penalty``.

A subclass names the constructor argument that holds λ (``weight_name``: ``l2_grads``, ``l2_influence``, ...),
the annotation its penalty reads (``field``: ``irrelevant`` or ``relevant``) and how the penalty is logged
(``penalty_log``), and computes ``(logits, penalty)`` from one forward pass (:meth:`logits_and_penalty`).
:meth:`PenalisedClassifier.loss` does the rest once: plain cross-entropy when λ = 0 or the batch carries no
annotation, else the weighted sum, with both terms logged per epoch. :func:`gradcam_of` is the Grad-CAM the
map-based losses (RRR-G, HINT) train through, refusing a backbone without a feature map when the run is built.
"""

from __future__ import annotations

from typing import Any

import torch

from exil.common.errors import ConfigError
from exil.common.explain.gradcam import GradCAM
from exil.common.modules.classifier import Classifier


class PenalisedClassifier(Classifier):
    """:class:`~exil.common.modules.classifier.Classifier` trained with ``CE + λ · penalty`` (module docstring)."""

    weight_name: str = ""
    field: str = "irrelevant"
    penalty_log: str = ""

    def logits_and_penalty(self, x: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits of ``x`` and the batch-mean penalty, from the same forward pass."""
        raise NotImplementedError

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        x = self.inputs(batch)
        weight = getattr(self, self.weight_name)
        if not weight or self.field not in batch:
            return self.cross_entropy(self(x), batch)
        logits, penalty = self.logits_and_penalty(x, batch)
        ce = self.cross_entropy(logits, batch)
        n = len(batch["y"])
        self.log("train/ce", ce, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.log(f"train/{self.penalty_log}", penalty, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return ce + weight * penalty


def gradcam_of(module: Classifier, layer: str | None, method: str) -> GradCAM:
    """The Grad-CAM of ``module`` at ``layer``; without a layer, the backbone must have a feature map."""
    if layer is None and not hasattr(module.backbone, "feature_map"):
        raise ConfigError(f"method={method} explains with Grad-CAM and needs a conv backbone (one with a feature "
                          f"map, e.g. backbone=small_cnn), not {type(module.backbone).__name__}")
    return GradCAM(module, layer)
