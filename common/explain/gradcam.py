"""Grad-CAM (Selvaraju et al., ICCV 2017), per sample and class-specific, differentiable.

For an activation map ``A ∈ R^{B×K×H×W}`` at a chosen layer and the score ``y^c`` of the target
class ``c`` of each sample (its logit),

    α^c_k = 1/(HW) Σ_ij ∂y^c / ∂A^k_ij          (global-average-pooled gradients)
    L^c   = ReLU( Σ_k α^c_k A^k )                (B × H × W)

then optionally upsampled (bilinear) to the input size and divided by its per-sample maximum so
that every map lies in [0, 1]. Samples are independent in eval mode, so one backward pass of the
summed target scores gives every sample's own gradients. With ``create_graph=True`` the map stays
differentiable in the model's parameters and can enter a training loss (eXBL's triplet loss).

The layer is a dotted module path (``backbone.body.3``); by default the last module, in execution
order, whose output is a 4-D map — for exil's conv backbones the activation ``feature_map`` returns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def last_spatial_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The name of the last leaf module, in execution order, whose output is (B, K, H, W)."""
    order: list[str] = []
    hooks = []
    for name, m in model.named_modules():
        if name and not list(m.children()):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: order.append(name) if torch.is_tensor(out) and out.dim() == 4 else None))
    was = model.training
    model.eval()  # a probe pass: batch norm must not see a one-item batch in training mode, nor update
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    if not order:
        raise ValueError(f"{type(model).__name__} has no layer with a 4-D output: Grad-CAM needs a conv net")
    return order[-1]


class GradCAM:
    """Grad-CAM maps of ``model`` at ``layer`` (see the module docstring).

    Args:
        model: returns logits (B, C) for inputs (B, C_in, H, W).
        layer: dotted path of the module whose output is the activation map; ``None`` picks
            :func:`last_spatial_layer` on the first call.
    """

    def __init__(self, model: nn.Module, layer: str | None = None):
        self.model = model
        self.layer = layer

    def _module(self, x: torch.Tensor) -> nn.Module:
        if self.layer is None:
            self.layer = last_spatial_layer(self.model, x)
        modules = dict(self.model.named_modules())
        if self.layer not in modules:
            raise ValueError(f"no layer {self.layer!r} in {type(self.model).__name__}; layers with a 4-D output "
                             f"end at {last_spatial_layer(self.model, x)!r}")
        return modules[self.layer]

    def __call__(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool = False,
                 upsample: bool = True, normalise: bool = True) -> torch.Tensor:
        """Maps (B, H, W): at the input's resolution if ``upsample``, else at the layer's."""
        return self.forward_with_maps(x, target, create_graph, upsample, normalise)[1]

    def forward_with_maps(self, x: torch.Tensor, target: torch.Tensor, create_graph: bool = False,
                          upsample: bool = True, normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, maps) from one forward pass: a training step uses the logits for its
        cross-entropy and the (differentiable, if ``create_graph``) maps for an explanation loss."""
        captured: list[torch.Tensor] = []
        handle = self._module(x).register_forward_hook(lambda m, i, out: captured.append(out))
        try:
            with torch.enable_grad():
                logits = self.model(x)
        finally:
            handle.remove()
        acts = captured[-1]
        score = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
        (grads,) = torch.autograd.grad(score, acts, create_graph=create_graph)  # keeps the graph iff create_graph
        alpha = grads.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((alpha * acts).sum(dim=1))
        if upsample and cam.shape[-2:] != x.shape[-2:]:
            cam = F.interpolate(cam.unsqueeze(1), size=x.shape[-2:], mode="bilinear", align_corners=False).squeeze(1)
        if normalise:
            cam = cam / cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
        return (logits, cam) if create_graph else (logits.detach(), cam.detach())
