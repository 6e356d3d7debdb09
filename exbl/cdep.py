"""CDEP: Contextual Decomposition Explanation Penalization (Rieger, Singh, Murdoch & Yu, ICML 2020,
"Interpretations are useful: penalizing explanations to align neural networks with prior
knowledge"), ``method=cdep``.

    L = Σ_i w_i CE(f(x_i), y_i) / Σ_i w_i  +  λ · 1/B Σ_i P(β_i, γ_i)

where ``(β_i, γ_i)`` (each (C,)) is the contextual decomposition of item ``i``'s logits into the part
due to the teacher's irrelevant region ``A_i`` (``β``, from ``x_i ⊙ A_i``) and the part due to the rest
(``γ``), ``β + γ = f(x_i)`` (:mod:`exil.exbl.contextual_decomposition`). Two forms of ``P``
(:func:`~exil.exbl.losses.cdep_penalty`):

* ``l1`` (default): ``1/C Σ_k |β_k|`` — the paper's explanation loss, the L1 distance between the
  region's CD score and the prior explanation, which for an irrelevant region is zero importance;
* ``softmax``: ``1/C Σ_k softmax([β_k, γ_k])_0 = 1/C Σ_k σ(β_k − γ_k)`` — what the authors' decoy-MNIST
  code (and the XIL typology's copy of it) trains with. It has a loophole: adding the same amount to
  every class's ``γ_k`` (through the biases, whose CD share goes mostly to the larger part, ``γ``)
  lowers it without changing a single prediction. Measured on a toy decoy task (tests'
  ``decoy_task``): at λ = 1, ``γ`` grew from 3.9 to 13.6 in mean magnitude, ``β`` stayed at 1.7–2.0,
  and reliance on the decoy did not fall; the ``l1`` form drove ``|β|`` to 0.002 and the accuracy
  with swapped decoys from 0.34 to 0.89.

Items without an annotation contribute 0. Without active dropout (the config's ``dropout: 0``) the
cross-entropy reads its logits from the decomposition, ``β + γ``: one pass for both terms. CD has
rules only for some layers: the backbone must be exil's ``mlp`` or ``small_cnn``/``tiny_cnn`` (a
``ConfigError`` says so when the module is built).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from exil.exbl.contextual_decomposition import cd_layers, decompose
from exil.exbl.losses import CDEP_FORMS, cdep_penalty
from exil.exbl.penalised import PenalisedClassifier


class CDEPClassifier(PenalisedClassifier):
    """:class:`~exil.common.modules.classifier.Classifier` trained with the CDEP loss (module docstring).

    Args:
        cd_weight: λ, the weight of the CD penalty (0 = plain cross-entropy).
        penalty: ``l1`` (the paper's) or ``softmax`` (the authors' code's), see the module docstring.
        **kwargs: the Classifier's arguments.
    """

    weight_name, penalty_log = "cd_weight", "cdep_penalty"

    def __init__(self, *args: Any, cd_weight: float = 1.0, penalty: str = "l1", **kwargs: Any):
        super().__init__(*args, **kwargs)
        if penalty not in CDEP_FORMS:
            raise ValueError(f"unknown CDEP penalty {penalty!r}; choose one of: {', '.join(CDEP_FORMS)}")
        self.cd_weight, self.penalty = cd_weight, penalty
        cd_layers(self)  # a backbone CD cannot decompose fails here, when the run is built

    def decomposition(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(β, γ)`` (B, C): the logits' parts due to ``x ⊙ mask`` and to the rest; ``β + γ`` are the logits."""
        return decompose(cd_layers(self), x, mask)

    def logits_and_penalty(self, x: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        mask, annotated = batch["irrelevant"], batch.get("annotated")
        if annotated is not None:  # unannotated items: an empty region, β = 0
            mask = mask & annotated.view(-1, *[1] * (mask.dim() - 1)).to(mask.device)
        beta, gamma = self.decomposition(x, mask)
        logits = self(x) if self._dropout_active() else beta + gamma  # β + γ are the logits: one pass serves both
        return logits, cdep_penalty(beta, gamma, annotated, form=self.penalty).mean()

    def _dropout_active(self) -> bool:
        """Dropout is on in training: CD explains the network without it, so the CE needs its own pass."""
        return any(isinstance(m, nn.Dropout) and m.p > 0 and m.training for m in self.modules())
