"""The plain classifier every paper compares against (``method=baseline``).

``logits = W · dropout(backbone(x)) + b``, trained with the per-item weighted
cross-entropy ``Σ_i w_i · CE(logits_i, y_i) / Σ_i w_i`` (all weights are 1
unless a method adds down-weighted extra examples). Test metrics: accuracy and
macro-F1 (torchmetrics).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from exil.common.modules.base import ExilModule, require_dropout


class Classifier(ExilModule):
    """Backbone + dropout + linear head.

    Args:
        backbone: a feature extractor with an ``out_features`` attribute (see ``exil.common.backbones``).
        num_classes: number of classes (filled in from the data module).
        optimizer: a partially-applied optimizer (``_partial_: true`` in YAML) taking the parameters.
        dropout: dropout before the head (MC dropout for BALD uses it).
        scheduler: optional partially-applied LR scheduler taking the optimizer.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer] = partial(torch.optim.Adam, lr=1e-3),
        dropout: float = 0.0,
        scheduler: Callable[..., Any] | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.out_features, num_classes)
        self.num_classes = num_classes
        self._optimizer = optimizer
        self._scheduler = scheduler
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_f1 = MulticlassF1Score(num_classes, average="macro")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(h))

    @torch.no_grad()
    def mc_logits(self, x: torch.Tensor, passes: int) -> torch.Tensor:
        """MC dropout. When the backbone has no dropout, its features are the same in every pass, so
        they are computed once and only the head runs ``passes`` times — the same result as
        ``passes`` full forward passes at the cost of about one."""
        if any(isinstance(m, nn.modules.dropout._DropoutNd) for m in self.backbone.modules()):
            return super().mc_logits(x, passes)
        require_dropout(self, [self.dropout])
        h = self.features(x)
        was = self.dropout.training
        self.dropout.train()
        try:
            return torch.stack([self.classify(h) for _ in range(passes)])
        finally:
            self.dropout.train(was)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.cross_entropy(self(self.inputs(batch)), batch)

    @staticmethod
    def cross_entropy(logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """The per-item weighted cross-entropy of the module docstring."""
        per_item = F.cross_entropy(logits, batch["y"], reduction="none")
        w = batch.get("weight")
        if w is None:
            return per_item.mean()
        w = w.to(per_item.dtype)
        return (per_item * w).sum() / w.sum().clamp_min(1e-12)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["y"]), sync_dist=True)
        return loss

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted class of each item (B,): the argmax of the logits. A model with its own decision
        rule (ALICE's hierarchy) overrides this, and validation and test use it."""
        return self(x).argmax(-1)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        acc = (self.predict(self.inputs(batch)) == batch["y"]).float().mean()
        self.log("val/acc", acc, on_epoch=True, batch_size=len(batch["y"]), sync_dist=True)

    def on_test_epoch_start(self) -> None:
        self._test_preds: list[torch.Tensor] = []

    @property
    def test_predictions(self) -> torch.Tensor | None:
        """Predicted labels of the last test pass, in test-set order (the loop saves them per round)."""
        preds = getattr(self, "_test_preds", None)
        return torch.cat(preds).numpy() if preds else None

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        pred = self.predict(self.inputs(batch))
        self._test_preds.append(pred.detach().cpu())
        self.test_acc.update(pred, batch["y"])
        self.test_f1.update(pred, batch["y"])
        self.log("test/acc", self.test_acc, on_epoch=True)
        self.log("test/macro_f1", self.test_f1, on_epoch=True)

    def configure_optimizers(self):
        return self.optimizers_for(self.parameters())

    def optimizers_for(self, params, adjust: Callable[[torch.optim.Optimizer], None] | None = None) -> Any:
        """The configured optimizer over ``params`` (parameters or parameter groups) and, if configured, its
        scheduler, in Lightning's ``configure_optimizers`` form. ``adjust(opt)`` runs before the scheduler is
        built, so that the schedule starts from the adjusted rates."""
        opt = self._optimizer(params)
        if adjust is not None:
            adjust(opt)
        if self._scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self._scheduler(opt)}
