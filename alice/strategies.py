"""Class-pair query strategies of ALICE (``strategy=jsd_pairs`` | ``strategy=random_pairs``).

ALICE queries *class pairs*, not pool items: a :class:`PairStrategy` gets the pooled features of the
labelled training images, their labels and the pairs it may not choose (asked before, or already in
one super-class) and returns up to ``budget`` pairs (p < q).

* :class:`JSDPairs` (the paper, section 3.1): the pairs with the lowest Jensen–Shannon divergence
  between per-class Ledoit–Wolf Gaussians (:mod:`exil.alice.pairs`), computed in float64, optionally in the
  span of the top ``dims`` principal components of the labelled features. That option exists because
  of what we measured (``make reproduce-alice-pairs``, 3 seeds, after the JSD's correction): with 15
  images per class in 96 dimensions (MobileNetV2 at stride 16 on the Fashion-MNIST proxy), the full-space
  JSD — whose means enter only through how much they widen the mixture's covariance — still calls
  T-shirt–Bag (0, 8) the most confusable pair in two seeds of three (that pair ranks 19.7 ± 6.4 of 45 in
  the test confusion; Spearman ρ(−JSD, confusion) = 0.51 ± 0.04), while the pairs the model confuses are
  Coat–Shirt, Pullover–Shirt, T-shirt–Shirt. In 8 principal dimensions the JSD's first pair ranks
  2.0 ± 1.0 and ρ = 0.75 ± 0.04, the best of full, 64, 32, 16, 8, 4 and 2 dimensions: the default of
  ``experiment=alice_fashion_mnist``;
  ``encoder: initial`` fits the Gaussians on the features of the encoder as it was before any fit (the
  pretrained weights, ``checkpoints/init.pt``) instead of the current one (the paper). Measured on the
  controlled task (``make reproduce-alice-marks``): after 15 epochs on 15 images per class the current
  encoder's class means on its own training images are nearly equidistant (6.2–10.1 apart for all 28
  pairs), so only its first pair is a real confusion, while the initial encoder's three lowest-JSD pairs
  are the three pairs the base model confuses most on the test set;
* :class:`RandomPairs` (the paper's "random pairs" ablation): uniformly random allowed pairs.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from exil.alice.pairs import most_confusable_pairs
from exil.common.abilities import Morphs, Need
from exil.common.errors import ConfigError
from exil.common.strategies.base import QueryStrategy, Selection
from exil.common.strategies.context import QueryContext

ENCODERS = ("current", "initial")


class PairStrategy(QueryStrategy):
    """Chooses class pairs from the labelled images' features; ``encoder`` says whose features: the
    ``current`` model's or the ``initial`` (pretrained) encoder's (module docstring)."""

    name = "pairs"
    encoder = "current"
    needs = (Need("module", Morphs, "ALICE's morphing module (method=alice): it chooses class pairs, not items"),)

    def select(self, ctx: QueryContext, k: int) -> Selection:
        raise ConfigError(f"strategy={self.name} chooses class pairs, not pool items: use it with method=alice")

    @abstractmethod
    def select_pairs(self, features: torch.Tensor, labels: torch.Tensor, num_classes: int, budget: int,
                     exclude: set[tuple[int, int]], generator: torch.Generator) -> list[tuple[int, int]]: ...

    @staticmethod
    def allowed(num_classes: int, exclude: set[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(p, q) for p in range(num_classes) for q in range(p + 1, num_classes) if (p, q) not in exclude]


class JSDPairs(PairStrategy):
    """The most confusable pairs: lowest JSD of the class Gaussians (module docstring).

    Args:
        shrinkage: a fixed shrinkage intensity in [0, 1] instead of Ledoit–Wolf's estimate (None).
        dims: fit the Gaussians in the span of the top ``dims`` principal components of all labelled
            features (None: in the full feature space, as the paper).
        encoder: ``current`` (the paper) or ``initial``: whose features of the labelled images.
    """

    name = "jsd_pairs"

    def __init__(self, shrinkage: float | None = None, dims: int | None = None, encoder: str = "current"):
        if dims is not None and dims < 1:
            raise ConfigError(f"strategy.dims must be ≥ 1 or null, got {dims}")
        if encoder not in ENCODERS:
            raise ConfigError(f"strategy.encoder={encoder!r}; valid: {', '.join(ENCODERS)}")
        self.shrinkage, self.dims, self.encoder = shrinkage, dims, encoder

    def select_pairs(self, features, labels, num_classes, budget, exclude, generator):
        f = features.double()
        if self.dims is not None and self.dims < f.shape[1]:
            f = principal_components(f, self.dims)
        pairs, _ = most_confusable_pairs(f, labels, num_classes, budget, exclude, self.shrinkage)
        return pairs


def principal_components(features: torch.Tensor, dims: int) -> torch.Tensor:
    """The centred features' coordinates on their top ``dims`` principal axes (one thin SVD)."""
    centred = features - features.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return centred @ vh[:dims].T


class RandomPairs(PairStrategy):
    """Uniformly random allowed pairs (the ablation). JSDPairs' options are accepted and ignored, so an
    experiment that sets them can switch to ``strategy=random_pairs`` alone."""

    name = "random_pairs"

    def __init__(self, shrinkage: float | None = None, dims: int | None = None, encoder: str = "current"):
        pass

    def select_pairs(self, features, labels, num_classes, budget, exclude, generator):
        allowed = self.allowed(num_classes, exclude)
        order = torch.randperm(len(allowed), generator=generator)[:budget]
        return [allowed[i] for i in order.tolist()]
