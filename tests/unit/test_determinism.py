"""Same seed, same queries — whatever else the hooks compute, draw or ask for first, and in whatever order.

The loop seeds every global RNG once per stage from (seed, round, stage); hooks get one cached
``ctx.query_context()``; the strategy's generator is its own (what hooks draw from ``ctx.generator`` never
shifts it); MC dropout's masks derive from (stage seed, passes), not from how many draws came before."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from exil.common.backbones import build_backbone
from exil.common.data.digits import DigitsDataModule
from exil.common.hooks import RoundHooks
from exil.common.loop import ActiveLoop, LoopConfig, seed_init
from exil.common.modules.classifier import Classifier
from exil.common.oracle.simulated import SimulatedOracle
from exil.common.strategies.bald import BALD
from exil.common.strategies.random import RandomSampling


class Busy(RoundHooks):
    """Hooks that do extra work around the strategy's query: draw from the hooks' generator and from the global
    RNG, compute MC-dropout outputs with another T, and the probabilities of other items — before the query
    (``first=True``) or after it."""

    def __init__(self, first: bool):
        super().__init__()
        self.first = first

    def extra(self, ctx):
        torch.randperm(50, generator=ctx.generator)
        torch.rand(7)
        np.random.rand(3)
        ctx.query_context().mc_probs(3)
        self.predict_proba(ctx, ctx.candidates[:9])

    def query(self, ctx, k):
        if self.first:
            self.extra(ctx)
        out = super().query(ctx, k)
        if not self.first:
            self.extra(ctx)
        return out


def queries(tmp_path, hooks, strategy) -> list[list[int]]:
    dm = DigitsDataModule(batch_size=32, min_epoch_size=64)
    dm.setup()
    seed_init(3)
    module = Classifier(build_backbone("exil", "mlp", input_shape=dm.input_shape, hidden=[32], dropout=0.3),
                        dm.num_classes)
    cfg = LoopConfig(rounds=2, query_size=6, initial_per_class=1, threads=1, seed=3)

    def make_trainer(r, root, single_device=False):
        return pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                          callbacks=[hooks], default_root_dir=root)

    journal = ActiveLoop(cfg, module, dm, strategy, SimulatedOracle(), hooks, make_trainer, tmp_path).run()
    out = [journal.queries(r)[0] for r in range(2)]
    journal.close()
    return out


@pytest.mark.parametrize("strategy", [lambda: BALD(passes=4), RandomSampling], ids=["bald", "random"])
def test_extra_calls_in_any_order_leave_the_queries_alone(tmp_path, strategy):
    plain = queries(tmp_path / "plain", RoundHooks(), strategy())
    before = queries(tmp_path / "before", Busy(first=True), strategy())
    after = queries(tmp_path / "after", Busy(first=False), strategy())
    assert plain == before == after
    assert len(set(plain[0]) | set(plain[1])) == 12


def test_query_context_is_cached_per_stage(tmp_path):
    seen = []

    class Look(RoundHooks):
        def query(self, ctx, k):
            seen.append(ctx.query_context() is ctx.query_context())
            seen.append(ctx.query_context(ctx.candidates[:5]) is ctx.query_context(ctx.candidates[:5]))
            return super().query(ctx, k)

    queries(tmp_path, Look(), RandomSampling())
    assert seen and all(seen)
