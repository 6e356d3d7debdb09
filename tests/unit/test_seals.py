"""SEALS (common/strategies/seals.py) through a real QueryContext, PoolDataModule and Classifier.

The reference neighbourhoods are brute-force float64 numpy kNN over the model's own features, computed here.
"""

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

pytest.importorskip("faiss")

from exil.common.errors import ConfigError  # noqa: E402
from exil.common.journal import Journal  # noqa: E402
from exil.common.modules.classifier import Classifier  # noqa: E402
from exil.common.run_folder import RunFolderDamaged, save_checkpoint  # noqa: E402
from exil.common.strategies import heuristics as H  # noqa: E402
from exil.common.strategies.bald import BALD  # noqa: E402
from exil.common.strategies.context import QueryContext  # noqa: E402
from exil.common.strategies.seals import SEALS, import_faiss  # noqa: E402
from exil.common.strategies.uncertainty import Entropy  # noqa: E402
from tests.unit.test_strategies import Mlp, TinyPool  # noqa: E402  (the strategies' small pool and model)


def make(n=400, labelled=range(0, 400, 40), seed=0):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)
    dm = TinyPool(x, y, eval_batch_size=37)
    dm.setup()
    labelled = list(labelled)
    dm.label(labelled, [int(y[i]) for i in labelled])
    torch.manual_seed(0)
    model = Classifier(Mlp(6, 8, act=torch.tanh), num_classes=3, dropout=0.5)
    return dm, model


def ctx_of(dm, model, seed=0):
    return QueryContext(model, dm, dm.unlabelled_indices, "cpu", torch.Generator().manual_seed(seed))


def brute_force(model, dm, labelled, k, metric):
    """⋃ over labelled items of their k nearest other pool items (float64, exact), minus the labelled."""
    with torch.no_grad():
        h = model.eval().features(dm._x).double().numpy()
    if metric == "cosine":
        h = h / np.linalg.norm(h, axis=1, keepdims=True)
    d = ((h[labelled][:, None, :] - h[None]) ** 2).sum(-1)
    d[np.arange(len(labelled)), labelled] = np.inf
    near = np.unique(np.argsort(d, axis=1, kind="stable")[:, :k])
    return np.setdiff1d(near, labelled)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_restriction_is_the_brute_force_knn_union(metric):
    dm, model = make()
    s = SEALS(neighbours=7, metric=metric)
    s.prepare(ctx_of(dm, model))
    labelled = dm.labelled_indices
    assert np.array_equal(s.restricted(labelled), brute_force(model, dm, labelled, 7, metric))


@pytest.mark.parametrize("index", ["hnsw", "ivf"])
def test_approximate_indexes_find_nearly_all_true_neighbours(index):
    dm, model = make()
    s = SEALS(neighbours=7, index=index, ivf_probe=8)
    s.prepare(ctx_of(dm, model))
    got, want = s.restricted(dm.labelled_indices), brute_force(model, dm, dm.labelled_indices, 7, "cosine")
    assert len(np.intersect1d(got, want)) >= 0.9 * len(want) and np.isin(got, dm.unlabelled_indices).all()


def test_candidates_grow_as_labels_arrive_and_equal_a_fresh_strategy():
    dm, model = make(labelled=range(0, 400, 80))
    s = SEALS(neighbours=5)
    s.select(ctx_of(dm, model), 3)
    first = s.restricted(dm.labelled_indices)
    queried = []
    for r in range(3):
        sel = s.select(ctx_of(dm, model, seed=r), 10)
        queried.append(sel.indices)
        dm.label(sel.indices, [0] * len(sel.indices))
    s.select(ctx_of(dm, model), 1)  # takes in the last round's labels
    grown = s.restricted(dm.labelled_indices)
    labelled = dm.labelled_indices
    assert len(grown) > len(first) and np.isin(np.setdiff1d(first, labelled), grown).all()
    assert np.array_equal(grown, brute_force(model, dm, labelled, 5, "cosine"))
    fresh = SEALS(neighbours=5)
    fresh.prepare(ctx_of(dm, model))
    assert np.array_equal(fresh.restricted(labelled), grown)
    assert int(s._seen.sum()) == len(labelled)  # every labelled item was queried once


def test_selection_is_the_base_strategy_over_the_unlabelled_candidates_near_the_labelled_set():
    dm, model = make()
    ctx = ctx_of(dm, model)
    sel = SEALS(neighbours=6).select(ctx, 8)
    near = brute_force(model, dm, dm.labelled_indices, 6, "cosine")
    assert np.isin(sel.indices, near).all() and np.isin(sel.indices, ctx.candidates).all()
    # the same as entropy's top 8 among those candidates
    p = ctx.probs("pool")
    ent = H.entropy(p)[np.searchsorted(ctx.candidates, near)]
    assert np.array_equal(sel.indices, near[ent.topk(8).indices.numpy()])


def test_candidates_are_intersected_with_a_subsampled_candidate_list():
    dm, model = make()
    ctx = ctx_of(dm, model)
    sub = ctx.subset(ctx.candidates[::3])
    sel = SEALS(neighbours=6).select(sub, 5)
    assert np.isin(sel.indices, sub.candidates).all()
    assert np.isin(sel.indices, brute_force(model, dm, dm.labelled_indices, 6, "cosine")).all()


@pytest.mark.parametrize("base", [Entropy(), BALD(passes=3)], ids=["entropy", "bald"])
def test_two_fresh_strategies_over_the_same_state_select_the_same(base):
    dm, model = make()
    a = SEALS(base=base, neighbours=6).select(ctx_of(dm, model, seed=4), 9)
    b = SEALS(base=base, neighbours=6).select(ctx_of(dm, model, seed=4), 9)
    assert np.array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_fewer_near_candidates_than_asked_falls_back_to_all_candidates_with_a_note(caplog):
    dm, model = make(labelled=[])
    ctx = ctx_of(dm, model)
    s = SEALS(neighbours=4)
    with caplog.at_level(logging.INFO, logger="exil.common.strategies.seals"):
        sel = s.select(ctx, 5)
    assert s.last["fallback"] and "fewer than the 5 asked for" in caplog.text
    assert np.array_equal(sel.indices, Entropy().select(ctx_of(dm, model), 5).indices)


def test_the_embedding_is_the_runs_initial_weights_when_the_context_names_a_run_folder(tmp_path):
    dm, model = make()
    (tmp_path / "checkpoints").mkdir()
    sha = save_checkpoint(tmp_path / "checkpoints" / "init.pt", model.architecture_spec(), model.state_dict())
    journal = Journal(tmp_path / "journal.sqlite")
    with journal.transaction():
        journal.add_file("init.pt", sha, 0, "initial")
    journal.close()
    expected = brute_force(model, dm, dm.labelled_indices, 6, "cosine")
    with torch.no_grad():  # "training" since: the current weights are not the initial ones
        model.backbone.lin.weight.mul_(-3.0).add_(1.0)
    assert not np.array_equal(brute_force(model, dm, dm.labelled_indices, 6, "cosine"), expected)
    ctx = ctx_of(dm, model)
    ctx.run_dir = tmp_path  # what the loop's query context carries
    s = SEALS(neighbours=6)
    s.prepare(ctx)
    assert np.array_equal(s.restricted(dm.labelled_indices), expected) and "init.pt" in s.last["embedding"]
    assert model.backbone.lin.weight.requires_grad  # the run's module is left alone
    # a replaced init.pt is refused (hash recorded by the journal)
    torch.save({"state_dict": {}}, tmp_path / "checkpoints" / "init.pt")
    with pytest.raises(RunFolderDamaged, match="SHA-256"):
        SEALS().prepare(ctx)


def test_missing_faiss_names_the_package_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ConfigError, match=r"pip install faiss-cpu.*scale"):
        import_faiss()


def test_bad_values_are_refused_and_the_yaml_builds_a_nested_base():
    with pytest.raises(ConfigError, match="index"):
        SEALS(index="annoy")
    with pytest.raises(ConfigError, match="metric"):
        SEALS(metric="dot")
    cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "strategy" / "seals.yaml")
    cfg.base = {"_target_": "exil.common.strategies.bald.BALD", "passes": 4}
    s = instantiate(cfg)
    assert isinstance(s, SEALS) and isinstance(s.base, BALD) and s.base.passes == 4 and s.neighbours == 100
