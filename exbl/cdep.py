"""CDEP: Contextual Decomposition Explanation Penalization (Rieger, Singh, Murdoch & Yu, ICML 2020,
"Interpretations are useful: penalizing explanations to align neural networks with prior
knowledge"), ``method=cdep``.

    L = Σ_i w_i CE(f(x_i), y_i) / Σ_i w_i  +  λ · 1/B Σ_i 1/C Σ_k softmax([β_ik, γ_ik])_0

where ``(β_i, γ_i)`` is the contextual decomposition of item ``i``'s logits into the part due to
the teacher's irrelevant region ``A_i`` (``β``, from ``x_i ⊙ A_i``) and the part due to the rest
(``γ``) (:mod:`exbl.contextual_decomposition`), and ``softmax([β, γ])_0 = σ(β − γ)``. The paper
writes the penalty as a distance ``‖β(x_s) − expl_{x_s}‖`` between the region's CD score
and the prior (zero importance); this softmax form is what its code trains with on decoy MNIST
(and the XIL typology's copy of it): the irrelevant region's share of each class score, squashed
to (0, 1). Items without an annotation contribute 0 (they are not decomposed at all).

CD has rules only for some layers: the backbone must be exil's ``mlp`` or ``small_cnn``/``tiny_cnn``
(a ``ConfigError`` says so when the module is built).
"""

from __future__ import annotations

from typing import Any

import torch

from common.modules.classifier import Classifier
from exbl.contextual_decomposition import cd_layers, decompose
from exbl.losses import cdep_penalty


class CDEPClassifier(Classifier):
    """:class:`~common.modules.classifier.Classifier` trained with the CDEP loss (module docstring).

    Args:
        cd_weight: λ, the weight of the CD penalty (0 = plain cross-entropy).
        **kwargs: the Classifier's arguments.
    """

    def __init__(self, *args: Any, cd_weight: float = 1.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cd_weight = cd_weight
        cd_layers(self)  # a backbone CD cannot decompose fails here, when the run is built

    def decomposition(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(β, γ)`` (B, C): the logits' parts due to ``x ⊙ mask`` and to the rest; ``β + γ`` are the logits."""
        return decompose(cd_layers(self), x, mask)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        x = self.inputs(batch)
        ce = self.cross_entropy(self(x), batch)
        if not self.cd_weight or "irrelevant" not in batch:
            return ce
        annotated = batch.get("annotated")
        rows = torch.arange(len(x), device=x.device) if annotated is None else annotated.nonzero().squeeze(1)
        penalty = ce.new_zeros(())
        if len(rows):
            beta, gamma = self.decomposition(x[rows], batch["irrelevant"][rows])
            penalty = cdep_penalty(beta, gamma).sum() / len(x)
        n = len(batch["y"])
        self.log("train/ce", ce, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.log("train/cdep_penalty", penalty, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return ce + self.cd_weight * penalty
