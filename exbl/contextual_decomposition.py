"""Contextual decomposition (CD) of a classifier's logits, differentiable, batched (CDEP's explainer).

Murdoch, Liu & Yu (2018) for LSTMs; Singh, Murdoch & Yu (2019, "Hierarchical interpretations for
neural network predictions", §3) for CNNs, with the layer rules of the code Rieger et al. (2020,
CDEP) train through. The input splits into ``β⁰ = x ⊙ M`` (the masked region) and ``γ⁰ = x ⊙ (1 − M)``
(the rest); every layer maps the pair ``(β, γ)`` to a pair whose sum is the layer's output on
``β + γ``, so at the end ``β + γ`` are the logits and ``β`` is the part due to the region:

* linear (Linear, Conv2d): ``β' = Wβ + b·|Wβ| / (|Wβ| + |Wγ|)``, ``γ' = Wγ + b·|Wγ| / (|Wβ| + |Wγ|)``
  — the bias split in proportion to the two parts' magnitudes (each magnitude plus 1e-20, as the XIL
  typology's copy does, so that the shares always sum to 1 and ``β' + γ' = W(β + γ) + b`` exactly);
* ReLU: ``β' = relu(β)``, ``γ' = relu(β + γ) − relu(β)``;
* max-pooling: both parts are read at the positions where ``β + γ`` has its maximum;
* average pooling, global average, flatten: linear without bias, applied to each part;
* dropout: the identity (CD explains the evaluation-mode network).

Supported: exil's ``mlp`` and ``small_cnn`` / ``tiny_cnn`` backbones under a
:class:`~exil.common.modules.classifier.Classifier` head; any other backbone raises a ``ConfigError``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from exil.common.backbones.small import MLP, SmallCNN
from exil.common.errors import ConfigError

SUPPORTED = "exil's mlp, small_cnn and tiny_cnn (source: exil)"

#: the share of a part with magnitude 0, so that two zero parts split a bias in halves
_EPS = 1e-20


def cd_layers(classifier: nn.Module) -> list[nn.Module]:
    """The classifier as the sequence of layers CD walks: the backbone's, then dropout and the head."""
    backbone = classifier.backbone
    if isinstance(backbone, MLP):
        layers = list(backbone.net)
    elif isinstance(backbone, SmallCNN):
        pool = nn.AdaptiveAvgPool2d(1) if backbone.pool == "avg" else nn.Identity()
        layers = [*backbone.body, pool, nn.Flatten()]
    else:
        raise ConfigError(f"contextual decomposition (method=cdep) supports {SUPPORTED} backbones, "
                          f"not {type(backbone).__name__}: pick backbone=mlp or backbone=small_cnn")
    layers += [classifier.dropout, classifier.head]
    unknown = {type(m).__name__ for m in layers if not isinstance(m, tuple(_RULES))}
    if unknown:
        raise ConfigError(f"contextual decomposition has no rule for {sorted(unknown)}; it supports {SUPPORTED}")
    return layers


def decompose(layers: list[nn.Module], x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(β, γ)``, the parts of the output of ``layers`` due to ``x ⊙ mask`` and to the rest.

    ``mask`` is (B, H, W) or broadcastable to ``x``; the result keeps the graph to ``x`` and to the
    layers' parameters, so a loss on it trains the network.
    """
    m = mask.to(x.dtype)
    if m.dim() == x.dim() - 1:
        m = m.unsqueeze(1)
    beta, gamma = x * m, x * (1 - m)
    for layer in layers:
        beta, gamma = _RULES[_rule_type(layer)](layer, beta, gamma)
    return beta, gamma


def _rule_type(layer: nn.Module) -> type:
    return next(t for t in _RULES if isinstance(layer, t))


def _both(fn, beta: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn`` (linear, no bias) applied to both parts in one call."""
    return fn(torch.cat([beta, gamma])).chunk(2)


def _affine(layer: nn.Module, beta: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise ConfigError(f"contextual decomposition needs zero padding, not {layer.padding_mode!r}")
        wb, wg = _both(lambda t: F.conv2d(t, layer.weight, None, layer.stride, layer.padding, layer.dilation,
                                          layer.groups), beta, gamma)
        bias = None if layer.bias is None else layer.bias.view(1, -1, 1, 1)
    else:
        wb, wg = _both(lambda t: F.linear(t, layer.weight), beta, gamma)
        bias = layer.bias
    if bias is None:
        return wb, wg
    size_b, size_g = wb.abs() + _EPS, wg.abs() + _EPS
    share = size_b / (size_b + size_g)
    return wb + share * bias, wg + (1 - share) * bias


def _relu(layer: nn.Module, beta: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rb = F.relu(beta)
    return rb, F.relu(beta + gamma) - rb


def _max_pool(layer: nn.MaxPool2d, beta: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out, idx = F.max_pool2d(beta + gamma, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                            layer.ceil_mode, return_indices=True)
    flat = idx.flatten(2)
    pick = lambda t: t.flatten(2).gather(2, flat).view_as(out)  # noqa: E731
    return pick(beta), pick(gamma)


def _linear_no_bias(layer: nn.Module, beta: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _both(layer, beta, gamma)


def _identity(layer: nn.Module, beta: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return beta, gamma


_RULES = {
    nn.Linear: _affine,
    nn.Conv2d: _affine,
    nn.ReLU: _relu,
    nn.MaxPool2d: _max_pool,
    nn.AvgPool2d: _linear_no_bias,
    nn.AdaptiveAvgPool2d: _linear_no_bias,
    nn.Flatten: _linear_no_bias,
    nn.Dropout: _identity,
    nn.Identity: _identity,
}
