"""HINT: Human Importance-aware Network Tuning (Selvaraju et al., ICCV 2019, "Taking a HINT:
Leveraging Explanations to Make Vision and Language Models More Grounded"), as the XIL typology
trains it (Friedrich et al. 2023), ``method=hint``.

    L = Σ_i w_i CE(f(x_i), y_i) / Σ_i w_i  +  λ · 1/B Σ_i 1/(hw) Σ_cells (E_i − R↓_i)²

``E_i`` is the Grad-CAM map of item ``i`` for its label at ``layer`` (ReLU, divided by its maximum:
in [0, 1]) at the layer's resolution, differentiable (``create_graph=True``); ``R↓_i`` is the
teacher's *relevant* mask downsampled by area to that resolution. Items without an annotation
contribute 0. Unlike RRR-G, which pushes the explanation off the irrelevant region, HINT pulls it
onto the relevant one.

Selvaraju et al. align the network's importance with the human's through a pairwise ranking
loss over image regions (``Σ_{(i,j): H_i > H_j} max(0, g_j − g_i)``: a region people rank higher must
get a higher Grad-CAM importance). With binary masks most pairs tie, so we implement the typology's
form — the mean squared error between the normalised map and the mask — which is zero exactly
when the map equals the (downsampled) mask. The map is scale-free, as in RRR-G
(:mod:`exil.exbl.rrr_g`): with λ ≥ 10 the alignment term wins over the labels (measured on decoy digits,
``conf/method/hint.yaml``).
"""

from __future__ import annotations

from typing import Any

import torch

from exil.exbl.losses import hint_loss
from exil.exbl.penalised import PenalisedClassifier, gradcam_of


class HINTClassifier(PenalisedClassifier):
    """:class:`~exil.common.modules.classifier.Classifier` trained with the HINT loss (module docstring).

    Args:
        layer: dotted module path of the Grad-CAM layer (``None``: the last layer with a spatial output).
        hint_weight: λ, the weight of the alignment term (0 = plain cross-entropy).
        **kwargs: the Classifier's arguments.
    """

    weight_name, field, penalty_log = "hint_weight", "relevant", "hint"

    def __init__(self, *args: Any, layer: str | None = None, hint_weight: float = 0.3, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.layer, self.hint_weight = layer, hint_weight
        self.gradcam = gradcam_of(self, layer, "hint")

    def logits_and_penalty(self, x: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, maps = self.gradcam.forward_with_maps(x, batch["y"], create_graph=True, upsample=False)
        return logits, hint_loss(maps, batch["relevant"], batch.get("annotated")).mean()
