"""RRR-G: Right for the Right Reasons on Grad-CAM (Schramowski et al., Nature Machine Intelligence
2020, "Making deep neural networks right for the right scientific reasons by interacting with their
explanations", §Methods; the XIL typology's RRR-G, Friedrich et al. 2023), ``method=rrr_g``.

    L = Σ_i w_i CE(f(x_i), y_i) / Σ_i w_i  +  λ · 1/B Σ_i Σ_cells (A↓_i ⊙ E_i)²

``E_i`` is the Grad-CAM map of item ``i`` for its label (:class:`~exil.common.explain.gradcam.GradCAM`:
ReLU of the gradient-weighted activations at ``layer``, divided by its maximum, so in [0, 1]) at the
layer's own resolution, computed from the same forward pass as the cross-entropy with
``create_graph=True``. ``A↓_i`` is the teacher's irrelevant mask *downsampled* to that resolution by
area (the fraction of each cell that is irrelevant, :func:`~exil.exbl.losses.downsample_mask`) — the
typology downsamples the mask too; the map is not upsampled, which would only interpolate it.
Items without an annotation contribute 0. The typology explains the predicted class; we explain
the label, whose evidence the teacher's mask is about.

Two limits, measured (tests and the sweep in ``conf/method/rrr_g.yaml``): the normalised map is
scale-free, so the penalty's gradient grows as the raw map shrinks — with λ = 10 on 30 decoy digits
the net silences its label maps (raw maxima ~1e-2, a third of them all zero, which zeroes the penalty)
and fits the labels slowly (training accuracy 0.53 after a round's 240 steps); and the label's Grad-CAM shows only positive
evidence for the label, so a net can keep reading the decoy as evidence *against* the other classes
while its map is clean (on the tests' two-class decoy task it does).
"""

from __future__ import annotations

from typing import Any

import torch

from exil.exbl.losses import rrr_g_penalty
from exil.exbl.penalised import PenalisedClassifier, gradcam_of


class RRRGClassifier(PenalisedClassifier):
    """:class:`~exil.common.modules.classifier.Classifier` trained with the RRR-G loss (module docstring).

    Args:
        layer: dotted module path of the Grad-CAM layer (``None``: the last layer with a spatial output).
        l2_gradcam: λ, the weight of the Grad-CAM penalty (0 = plain cross-entropy).
        **kwargs: the Classifier's arguments.
    """

    weight_name, penalty_log = "l2_gradcam", "rrr_g_penalty"

    def __init__(self, *args: Any, layer: str | None = None, l2_gradcam: float = 0.1, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.layer, self.l2_gradcam = layer, l2_gradcam
        self.gradcam = gradcam_of(self, layer, "rrr_g")

    def logits_and_penalty(self, x: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, maps = self.gradcam.forward_with_maps(x, batch["y"], create_graph=True, upsample=False)
        return logits, rrr_g_penalty(maps, batch["irrelevant"], batch.get("annotated")).mean()
