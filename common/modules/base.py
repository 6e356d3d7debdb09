"""The module protocol the active loop and the strategies rely on.

An :class:`ExilModule` is a LightningModule that also exposes

* ``inputs(batch)``: the model input of a batch dict (``batch["x"]`` by default);
* ``features(x)``: the representation a strategy embeds (penultimate layer);
* ``classify(h)``: logits from features, so ``forward(x) = classify(features(x))``;
* ``mc_logits(x, T)``: T stochastic passes with dropout on (MC dropout, Gal et al. 2017);
* ``architecture_spec()`` / ``apply_architecture_spec(spec)``: a JSON-serialisable
  description of any change a method made to its own architecture between rounds
  (ALICE merges classes and adds local heads). Checkpoints store the spec, and a
  module rebuilt from config is morphed with it *before* its weights are loaded.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from exil.common.errors import ConfigError


def require_dropout(module: nn.Module, dropouts: list[nn.Module]) -> None:
    """MC dropout needs a dropout layer with p > 0; with none every pass is the same and BALD scores 0."""
    if not any(m.p > 0 for m in dropouts):
        raise ConfigError(f"{type(module).__name__} has no dropout layer with p > 0: MC dropout (strategy=bald) "
                          "needs one, e.g. method.module.dropout=0.2")


class ExilModule(pl.LightningModule):
    """Base class for every exil model; subclasses implement ``features`` and ``classify``."""

    def inputs(self, batch: dict[str, Any]) -> Any:
        return batch["x"]

    def features(self, x: Any) -> torch.Tensor:
        raise NotImplementedError

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: Any) -> torch.Tensor:
        return self.classify(self.features(x))

    @torch.no_grad()
    def mc_logits(self, x: torch.Tensor, passes: int) -> torch.Tensor:
        """Logits of ``passes`` forward passes with dropout active, shape (passes, B, C).

        Each pass draws its own dropout masks; other layers (batch norm) stay in eval mode.
        Passes run one after another on the same batch: repeating the batch T times in one
        forward costs the same FLOPs but T times the activation memory, which is slower on
        a CPU once activations leave the cache.
        """
        dropouts = [m for m in self.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        require_dropout(self, dropouts)
        was = [m.training for m in dropouts]
        for m in dropouts:
            m.train()
        try:
            return torch.stack([self(x) for _ in range(passes)])
        finally:
            for m, t in zip(dropouts, was):
                m.train(t)

    #: the method changes this module's architecture between rounds (ALICE's merges, eXBL's exemplar maps): a
    #: round cannot start over from the initial weights, so the loop refuses ``loop.reset_each_round=true`` at once
    changes_architecture: bool = False

    def architecture_spec(self) -> dict[str, Any]:
        """What rebuilds this module's current architecture from its config; ``{}`` if it never changes."""
        return {}

    def apply_architecture_spec(self, spec: dict[str, Any]) -> None:
        if spec:
            raise ValueError(f"{type(self).__name__} cannot apply an architecture spec: {spec}")
