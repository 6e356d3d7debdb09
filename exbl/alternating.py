"""Explanation-guided alternating training (Tao & Shokri, "Machine Learning from Explanations",
ICML 2025 workshop, arXiv 2507.04788), ``method=alternating``.

Explanations are binary masks ``M`` of the relevant input. The model is a feature extractor ``f``
(the backbone), a linear mapping layer ``m`` (d → d, initialised to the identity) and a classifier
``c`` (dropout + linear head): ``logits = c(m(f(x)))``. Instead of one weighted joint loss, every
training step takes turns:

1. **label stage** — cross-entropy on the batch, updating ``f`` and ``c`` (``m`` held fixed);
2. **alignment stage** — on the batch's annotated items, ``align_steps`` steps on

       KL( softmax(f(x ⊙ M) / T)  ‖  softmax(m(f(x)) / T) )

   updating ``m`` only (the masked-input features are the target, without gradient), so that the
   mapping carries the features of the whole input to those of its relevant part.

``align`` chooses the variant (as far as the paper can be read, ``mapping`` is its method):

* ``mapping``   — the above;
* ``extractor`` — no mapping layer: the alignment stage updates ``f`` towards ``f(x ⊙ M)``;
* ``joint``     — the ablation the paper reports failing: one loss ``CE + joint_weight · KL`` with
  the mapping layer, all parameters updated together.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from exil.common.modules.classifier import Classifier
from exil.exbl.losses import alignment_kl

VARIANTS = ("mapping", "extractor", "joint")


class AlternatingClassifier(Classifier):
    """Label / alignment stages taking turns (module docstring).

    Args:
        align: ``mapping`` | ``extractor`` | ``joint``.
        align_steps: optimiser steps of the alignment stage per training step.
        temperature: T of the softmaxes in the KL.
        joint_weight: weight of the KL in the ``joint`` variant.
        **kwargs: the Classifier's arguments (its ``optimizer`` builds both stages' optimisers).
    """

    def __init__(self, *args: Any, align: str = "mapping", align_steps: int = 1, temperature: float = 1.0,
                 joint_weight: float = 1.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if align not in VARIANTS:
            raise ValueError(f"unknown align={align!r}; choose one of: {', '.join(VARIANTS)}")
        if self._scheduler is not None:
            raise ValueError("method=alternating steps its optimisers itself and takes no scheduler")
        self.align, self.align_steps, self.temperature, self.joint_weight = align, align_steps, temperature, joint_weight
        d = self.backbone.out_features
        self.mapping = nn.Linear(d, d) if align != "extractor" else nn.Identity()
        if isinstance(self.mapping, nn.Linear):
            with torch.no_grad():
                self.mapping.weight.copy_(torch.eye(d))
                self.mapping.bias.zero_()
        self.automatic_optimization = align == "joint"

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.mapping(h)))

    def _kl(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """Mean alignment KL over the batch's annotated items, or None if it has none."""
        if "relevant" not in batch:
            return None
        keep = batch["annotated"].bool()
        if not keep.any():
            return None
        x = self.inputs(batch)[keep]
        mask = batch["relevant"][keep].to(x.dtype)
        mask = mask.unsqueeze(1) if mask.dim() == x.dim() - 1 else mask
        with torch.no_grad():
            target = self.features(x * mask)
        with torch.set_grad_enabled(self.align != "mapping"):  # mapping: only m learns from the KL, no backward through f
            h = self.features(x)
        return alignment_kl(target, self.mapping(h), self.temperature).mean()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        n = len(batch["y"])
        if self.align == "joint":
            ce = self.cross_entropy(self(self.inputs(batch)), batch)
            kl = self._kl(batch)
            loss = ce if kl is None else ce + self.joint_weight * kl
            self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
            return loss
        label_opt, align_opt = self.optimizers()
        ce = self.cross_entropy(self(self.inputs(batch)), batch)
        label_opt.zero_grad()
        self.manual_backward(ce)
        label_opt.step()
        self.log("train/loss", ce, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        for _ in range(self.align_steps):
            kl = self._kl(batch)
            if kl is None:
                break
            align_opt.zero_grad()
            self.manual_backward(kl)
            align_opt.step()
            self.log("train/align_kl", kl.detach(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return ce.detach()

    def configure_optimizers(self):
        if self.align == "joint":
            return self._optimizer(self.parameters())
        aligned = self.mapping if self.align == "mapping" else self.backbone
        label_params = [p for name, p in self.named_parameters() if not name.startswith("mapping.")]
        return [self._optimizer(label_params), self._optimizer(list(aligned.parameters()))]
