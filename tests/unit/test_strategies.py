"""Query strategies through a real QueryContext, PoolDataModule and Classifier."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from exil.common.data.base import PoolDataModule
from exil.common.data.items import TensorItems
from exil.common.modules.classifier import Classifier
from exil.common.strategies import heuristics as H
from exil.common.strategies.badge import BADGE
from exil.common.strategies.bald import BALD
from exil.common.strategies.cal import CAL
from exil.common.strategies.context import QueryContext
from exil.common.strategies.coreset import CoreSet
from exil.common.strategies.random import RandomSampling
from exil.common.strategies.uncertainty import Entropy, LeastConfidence, Margin

CONF = Path(__file__).resolve().parents[2] / "conf" / "strategy"


class TinyPool(PoolDataModule):
    def __init__(self, x, y, eval_batch_size=7):  # several batches per pass
        super().__init__(eval_batch_size=eval_batch_size)
        self._x, self._y = x, y

    def load(self):
        items = TensorItems(x=self._x, y=self._y)
        return items, None, items


class Mlp(nn.Module):
    def __init__(self, d_in, d_out, act=torch.relu):
        super().__init__()
        self.out_features = d_out
        self.lin = nn.Linear(d_in, d_out)
        self.act = act

    def forward(self, x):
        return self.act(self.lin(x))


class Identity(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.out_features = d

    def forward(self, x):
        return x


def make_ctx(n=40, labelled=(0, 1, 2, 3, 4, 5), seed=0, backbone=None, x=None):
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n, 5, generator=g) if x is None else x
    y = torch.arange(len(x)) % 3
    dm = TinyPool(x, y)
    dm.setup()
    dm.label(labelled, [int(y[i]) for i in labelled])
    torch.manual_seed(0)
    model = Classifier(backbone or Mlp(x.shape[1], 8), num_classes=3, dropout=0.5)
    return QueryContext(model, dm, dm.unlabelled_indices, "cpu", torch.Generator().manual_seed(seed))


ALL = [RandomSampling(), Entropy(), Margin(), LeastConfidence(), BALD(passes=4), CoreSet(chunk_size=8), BADGE(),
       CAL(neighbours=3, chunk_size=8)]


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.name)
def test_selection_is_k_distinct_candidates(strategy):
    ctx = make_ctx()
    sel = strategy.select(ctx, 10)
    assert len(sel.indices) == len(sel.scores) == 10
    assert len(np.unique(sel.indices)) == 10
    assert np.isin(sel.indices, ctx.candidates).all()
    assert not np.isin(sel.indices, ctx.datamodule.labelled_indices).any()
    everything = strategy.select(make_ctx(), 1000)  # k beyond the pool: the whole pool, once each
    assert sorted(everything.indices) == sorted(ctx.candidates)


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.name)
def test_same_seed_same_queries(strategy):
    a = strategy.select(make_ctx(seed=5), 12)
    b = strategy.select(make_ctx(seed=5), 12)
    assert np.array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_random_depends_on_the_seed_only_and_has_no_scores():
    a, b = RandomSampling().select(make_ctx(seed=1), 12), RandomSampling().select(make_ctx(seed=2), 12)
    assert not np.array_equal(a.indices, b.indices)
    assert np.isnan(a.scores).all()


@pytest.mark.parametrize(
    "strategy, formula", [(Entropy(), H.entropy), (Margin(), H.margin), (LeastConfidence(), H.least_confidence)]
)
def test_uncertainty_ranks_the_model_probabilities(strategy, formula):
    ctx = make_ctx()
    with torch.no_grad():
        ctx.module.eval()
        p = ctx.module(ctx.datamodule._x[ctx.candidates]).softmax(-1)
    expected = formula(p)
    sel = strategy.select(ctx, 5)
    assert np.array_equal(sel.indices, ctx.candidates[expected.topk(5).indices.numpy()])
    np.testing.assert_allclose(sel.scores, expected.topk(5).values.numpy(), atol=1e-6)


def test_bald_uses_mc_dropout_passes():
    ctx = make_ctx()
    scores = BALD(passes=6).score(ctx)
    mc = ctx.mc_probs(6)
    assert mc.shape == (6, len(ctx), 3)
    assert torch.allclose(scores, H.bald(mc))
    assert (scores > 0).any() and (scores > -1e-6).all()  # I ≥ 0 (Jensen), > 0 where dropout disagrees


def test_bald_refuses_a_model_without_active_dropout():
    """With p = 0 every pass is the same and BALD would score all zeros: a config error, not a silent top-k."""
    from exil.common.errors import ConfigError

    ctx = make_ctx()
    ctx.module.dropout.p = 0.0
    with pytest.raises(ConfigError, match="method.module.dropout"):
        BALD(passes=3).score(ctx)


def test_coreset_through_context_hand_example():
    # pool item 0 = (0,0) is labelled; candidates a..d as in the heuristics test -> order d, b, c, a
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0], [10.0, 0.0], [10.0, 2.0]])
    ctx = make_ctx(labelled=(0,), x=x, backbone=Identity(2))
    sel = CoreSet(chunk_size=1).select(ctx, 4)
    assert sel.indices.tolist() == [4, 2, 3, 1]
    np.testing.assert_allclose(sel.scores, [math.sqrt(104), 4.0, 2.0, 1.0], atol=1e-5)


def test_coreset_without_labels_draws_the_first_centre():
    a = CoreSet().select(make_ctx(labelled=(), seed=3), 8)
    b = CoreSet().select(make_ctx(labelled=(), seed=3), 8)
    assert np.array_equal(a.indices, b.indices) and np.isnan(a.scores[0]) and np.isfinite(a.scores[1:]).all()


def test_badge_first_pick_is_the_largest_gradient_norm():
    ctx = make_ctx()
    h, p = ctx.features_and_probs("pool")
    g = ((p - nn.functional.one_hot(p.argmax(-1), 3))[:, :, None] * h[:, None, :]).flatten(1)
    sel = BADGE().select(ctx, 6)
    assert sel.indices[0] == ctx.candidates[int(g.norm(dim=1).argmax())]
    assert sel.scores[0] == pytest.approx(float(g.norm(dim=1).max() ** 2), rel=1e-5)


def test_cal_matches_the_formula_on_the_context_outputs():
    ctx = make_ctx()
    h, p = ctx.features_and_probs("pool")
    h_l, p_l = ctx.features_and_probs("labelled")
    # brute force: mean KL(p_neighbour ‖ p_candidate) over the 3 nearest labelled items
    nb = torch.cdist(h.double(), h_l.double()).topk(3, dim=1, largest=False).indices
    expected = torch.stack([
        torch.stack([H.kl_divergence(p_l[j], p[i]) for j in nb[i]]).mean() for i in range(len(h))
    ])
    assert torch.allclose(CAL(neighbours=3, chunk_size=4).score(ctx), expected, atol=1e-6)


def test_cal_needs_labelled_items():
    with pytest.raises(ValueError, match="label some items"):
        CAL().select(make_ctx(labelled=()), 3)


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_strategy_yaml_instantiates(path):
    strategy = instantiate(OmegaConf.load(path))
    assert strategy.name == path.stem


def test_the_strategy_configs_exist():
    assert {"random", "entropy", "margin", "least_confidence", "bald", "coreset", "badge", "cal"} <= {
        p.stem for p in CONF.glob("*.yaml")
    }
