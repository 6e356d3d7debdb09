"""eXBL: learning from exemplary explanations (Hagos, Curran & Mac Namee 2023, arXiv 2307.06026), ``method=exbl``.

After a first training round, the teacher picks one good and one bad Grad-CAM explanation among
the training images (``choose_exemplars``); the model is then trained further with

    L = CE  +  w · 1/B Σ_i max(d(E_i, E⁺) − d(E_i, E⁻) + margin, 0)

where ``E_i`` is the Grad-CAM of image ``i`` for its label at ``layer`` (per sample and
class-specific — the authors' TensorFlow code took the first sample's map for the whole batch),
computed from the same forward pass as the cross-entropy with ``create_graph=True`` so the loss
trains the network through its explanation. ``E⁺`` / ``E⁻`` are the exemplars' maps, fixed.

The exemplar maps are buffers of the module: :meth:`ExBLClassifier.architecture_spec` records their
size, so a checkpoint rebuilds them before its weights are loaded.
"""

from __future__ import annotations

from typing import Any

import torch

from exil.common.explain.gradcam import GradCAM
from exil.common.modules.classifier import Classifier
from exil.exbl.losses import DISTANCES, triplet_explanation_loss


class ExBLClassifier(Classifier):
    """:class:`~exil.common.modules.classifier.Classifier` with eXBL's triplet explanation loss.

    Args:
        layer: dotted module path of the Grad-CAM layer (``None``: the last layer with a spatial output).
        triplet_weight: w, the weight of the triplet term.
        margin: the triplet margin.
        distance: ``rms`` (Euclidean per pixel), ``l1`` or ``cosine`` between maps.
        **kwargs: the Classifier's arguments.
    """

    changes_architecture = True  # the loop refuses loop.reset_each_round=true before round 0

    def __init__(self, *args: Any, layer: str | None = None, triplet_weight: float = 1.0, margin: float = 0.1,
                 distance: str = "rms", **kwargs: Any):
        super().__init__(*args, **kwargs)
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; choose one of: {', '.join(DISTANCES)}")
        self.layer, self.triplet_weight, self.margin, self.distance = layer, triplet_weight, margin, distance
        self.gradcam = GradCAM(self, layer)
        self.register_buffer("good_map", None)  # set by set_exemplars (or a checkpoint's spec)
        self.register_buffer("bad_map", None)

    @property
    def has_exemplars(self) -> bool:
        return self.good_map is not None

    def set_exemplars(self, good: torch.Tensor, bad: torch.Tensor) -> None:
        """Fix the good and bad exemplar maps (H, W) that the triplet loss uses from now on."""
        if good.shape != bad.shape or good.dim() != 2:
            raise ValueError(f"exemplar maps must be two (H, W) maps of one size, got {tuple(good.shape)}, {tuple(bad.shape)}")
        self._make_buffers(list(good.shape))
        self.good_map.copy_(good.detach())
        self.bad_map.copy_(bad.detach())

    def _make_buffers(self, size: list[int]) -> None:
        if self.good_map is None or list(self.good_map.shape) != size:
            self.register_buffer("good_map", torch.zeros(size, device=self.device))
            self.register_buffer("bad_map", torch.zeros(size, device=self.device))

    def architecture_spec(self) -> dict[str, Any]:
        return {"exemplar_size": list(self.good_map.shape)} if self.has_exemplars else {}

    def apply_architecture_spec(self, spec: dict[str, Any]) -> None:
        unknown = set(spec) - {"exemplar_size"}
        if unknown:
            raise ValueError(f"ExBLClassifier cannot apply {sorted(unknown)}")
        if "exemplar_size" in spec:
            self._make_buffers(list(spec["exemplar_size"]))

    def explanation_maps(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Grad-CAM maps (B, H, W) in [0, 1] at the input's resolution, without a graph."""
        return self.gradcam(x, target)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        x = self.inputs(batch)
        if not self.has_exemplars or not self.triplet_weight:
            return self.cross_entropy(self(x), batch)
        logits, maps = self.gradcam.forward_with_maps(x, batch["y"], create_graph=True)
        ce = self.cross_entropy(logits, batch)
        triplet = triplet_explanation_loss(maps, self.good_map, self.bad_map, self.margin, self.distance).mean()
        n = len(batch["y"])
        self.log("train/ce", ce, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.log("train/triplet", triplet, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return ce + self.triplet_weight * triplet
