"""Small networks trained from scratch (``source: exil``): MLPs and small CNNs for digits and MNIST.

Each returns pooled features of shape (B, ``out_features``); the classifier head lives in the
module (:class:`exil.common.modules.classifier.Classifier`). Ross et al. (2017)'s decoy-MNIST network,
an MLP with hidden layers of 50 and 30 units and ReLU, is ``mlp`` with ``hidden: [50, 30]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from exil.common.errors import ConfigError


def _shape(input_shape: Sequence[int] | None, name: str) -> tuple[int, ...]:
    if input_shape is None:
        raise ConfigError(f"backbone {name} needs input_shape (filled in from the data module)")
    return tuple(int(d) for d in input_shape)


class MLP(nn.Module):
    """``flatten → [Linear → ReLU (→ Dropout)] per hidden width``; ``out_features`` = last width.

    With ``hidden: []`` it is just the flattened input (a linear model once the head is added).
    """

    def __init__(self, input_shape: Sequence[int] | None, hidden: Sequence[int] = (50, 30), dropout: float = 0.0):
        super().__init__()
        width = math.prod(_shape(input_shape, "mlp"))
        layers: list[nn.Module] = [nn.Flatten()]
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        self.net = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Conv blocks ``Conv3x3(pad 1) → ReLU``, a 2×2 max-pool between consecutive blocks.

    ``feature_map(x)`` is the last block's ReLU output, (B, channels[-1], H', W') with
    ``H' = ceil(H / 2^(len(channels) - 1))`` (the resolution Grad-CAM sees); ``forward`` pools it:
    ``pool: avg`` (global average, ``out_features = channels[-1]``) or ``pool: flatten``
    (``out_features = channels[-1]·H'·W'``). Works for 1×8×8 digits and 1×28×28 MNIST alike.
    """

    def __init__(
        self,
        input_shape: Sequence[int] | None,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        pool: str = "avg",
    ):
        super().__init__()
        shape = _shape(input_shape, "small_cnn")
        if len(shape) != 3:
            raise ConfigError(f"small_cnn needs an image input_shape (C, H, W), got {shape}")
        if not channels:
            raise ConfigError("small_cnn needs at least one conv block (channels: [..])")
        if pool not in ("avg", "flatten"):
            raise ConfigError(f"small_cnn pool must be 'avg' or 'flatten', got {pool!r}")
        layers: list[nn.Module] = []
        c_in, h, w = shape
        for i, c in enumerate(channels):
            if i > 0:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                h, w = math.ceil(h / 2), math.ceil(w / 2)
            layers += [nn.Conv2d(c_in, int(c), kernel_size, padding=kernel_size // 2), nn.ReLU()]
            c_in = int(c)
        self.body = nn.Sequential(*layers)
        self.pool = pool
        self.out_features = c_in if pool == "avg" else c_in * h * w

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.feature_map(x)
        return fmap.mean(dim=(2, 3)) if self.pool == "avg" else fmap.flatten(1)


def tiny_cnn(input_shape: Sequence[int] | None) -> SmallCNN:
    """Two conv blocks of 4 and 8 channels, average-pooled: a CNN for tests that runs in milliseconds."""
    return SmallCNN(input_shape, channels=(4, 8))


class PairwiseEqual(nn.Module):
    """Features ``[x_i == x_j]`` for every pair of input positions i < j (the colors problem's 300
    features "pixel i has the same colour as pixel j", Teso & Kersting 2019). A position set to a
    value no other position has (LIME's hidden pixel, e.g. −1) equals nothing."""

    def __init__(self, input_shape: Sequence[int] | None):
        super().__init__()
        n = math.prod(_shape(input_shape, "pairwise_equal"))
        i, j = torch.triu_indices(n, n, offset=1)
        self.register_buffer("i", i, persistent=False)
        self.register_buffer("j", j, persistent=False)
        self.out_features = len(i)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return (flat[:, self.i] == flat[:, self.j]).to(flat.dtype)


SMALL = {"mlp": MLP, "small_cnn": SmallCNN, "tiny_cnn": tiny_cnn, "pairwise_equal": PairwiseEqual}
