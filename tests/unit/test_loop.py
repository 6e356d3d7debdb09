"""The loop with a method that morphs its architecture between rounds: checkpoints rebuild it,
and a run that crashes mid-incorporate resumes to the same result."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from exil.common.backbones import build_backbone
from exil.common.data.digits import DigitsDataModule
from exil.common.hooks import RoundHooks
from exil.common.journal import read_journal
from exil.common.loop import ActiveLoop, LoopConfig, seed_for, seed_init
from exil.common.modules.classifier import Classifier
from exil.common.oracle.simulated import SimulatedOracle
from exil.common.run_folder import load_checkpoint, load_module_state
from exil.common.strategies.uncertainty import Entropy


class GrowingClassifier(Classifier):
    """A toy morphing module: every round adds a residual layer before the head."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.extra = nn.ModuleList()

    def features(self, x):
        h = self.backbone(x)
        for layer in self.extra:
            h = h + torch.relu(layer(h))
        return h

    def grow(self) -> None:
        d = self.backbone.out_features
        self.extra.append(nn.Linear(d, d))

    def architecture_spec(self):
        return {"extra_layers": len(self.extra)} if len(self.extra) else {}

    def apply_architecture_spec(self, spec):
        while len(self.extra) < spec.get("extra_layers", 0):
            self.grow()


class GrowingHooks(RoundHooks):
    def __init__(self, crash_in_round: int | None = None):
        self.crash_in_round = crash_in_round

    def incorporate(self, ctx, selection, answers):
        ctx.module.grow()
        if ctx.round == self.crash_in_round:
            raise KeyboardInterrupt("simulated kill after the morph, before the checkpoint")
        return super().incorporate(ctx, selection, answers)


def make_loop(run_dir: Path, hooks: RoundHooks, rounds: int = 3, keep: str = "last") -> ActiveLoop:
    dm = DigitsDataModule(batch_size=32, min_epoch_size=128)
    dm.setup()
    seed_init(0)
    module = GrowingClassifier(build_backbone("exil", "mlp", input_shape=dm.input_shape, hidden=[32]), dm.num_classes)
    cfg = LoopConfig(rounds=rounds, query_size=5, initial_per_class=1, reset_each_round=False, threads=1,
                     keep_checkpoints=keep)

    def make_trainer(r, root, single_device=False):
        return pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                          callbacks=[hooks], default_root_dir=root)

    return ActiveLoop(cfg, module, dm, Entropy(), SimulatedOracle(), hooks, make_trainer, run_dir)


def test_checkpoint_rebuilds_the_morphed_module(tmp_path):
    loop = make_loop(tmp_path, GrowingHooks(), rounds=2)
    loop.run()
    assert loop.module.architecture_spec() == {"extra_layers": 2}
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "round_001_end.pt")
    assert ckpt["arch"] == {"extra_layers": 2}
    fresh = make_loop(tmp_path / "other", GrowingHooks()).module
    assert fresh.architecture_spec() == {}
    load_module_state(fresh, ckpt)
    assert fresh.architecture_spec() == {"extra_layers": 2}
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(fresh.state_dict()[k], v), k


@pytest.mark.parametrize("keep, ends", [("last", ["round_002_end.pt"]),
                                        ("all", ["round_000_end.pt", "round_001_end.pt", "round_002_end.pt"])])
def test_round_end_checkpoints_kept(tmp_path, keep, ends):
    make_loop(tmp_path, GrowingHooks(), rounds=3, keep=keep).run()
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt"))
    assert names == ["init.pt", *ends, "round_003_fit.pt"]


def test_keep_checkpoints_names_its_choices():
    with pytest.raises(Exception, match="'last'.*'all'"):
        LoopConfig(keep_checkpoints="none")


def test_crash_after_morph_resumes_to_the_uninterrupted_result(tmp_path):
    make_loop(tmp_path / "ref", GrowingHooks()).run()
    with pytest.raises(KeyboardInterrupt):
        make_loop(tmp_path / "run", GrowingHooks(crash_in_round=1)).run()
    resumed = make_loop(tmp_path / "run", GrowingHooks())  # a new process: fresh, un-morphed module
    journal = resumed.run()
    assert resumed.asker.reused == 5 and resumed.asker.asked == 5  # round 1 reused, round 2 asked
    assert len(journal.answers()) == 10 + 15  # the initial set (one per class) is asked too
    assert read_journal(tmp_path / "run" / "journal.sqlite")["metrics"] == \
        read_journal(tmp_path / "ref" / "journal.sqlite")["metrics"]
    assert resumed.module.architecture_spec() == {"extra_layers": 3}


def test_answers_before_a_crash_are_not_asked_again(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        make_loop(tmp_path, GrowingHooks(crash_in_round=0)).run()
    loop = make_loop(tmp_path, GrowingHooks(), rounds=1)
    loop.run()
    assert loop.asker.asked == 0 and loop.asker.reused == 5


def test_stage_seeds_depend_only_on_seed_round_and_stage():
    assert seed_for(0, 1, "fit") == seed_for(0, 1, "fit")
    assert len({seed_for(0, 1, "fit"), seed_for(0, 2, "fit"), seed_for(1, 1, "fit"), seed_for(0, 1, "query")}) == 4
    assert 0 <= seed_for(123, 45, "ask") < 2**31


def test_a_person_s_initial_set_is_random_and_skipped_items_are_never_asked_again(tmp_path):
    from exil.common.engine import build_loop
    from exil.common.journal import Journal
    from tests.conftest import compose

    class Person(SimulatedOracle):
        """True labels, but "don't know" for the first item of every round; not ground truth to the loop."""
        labels_from_truth = False
        cheap = False

        def answer(self, question, ctx):
            if question.payload.get("skippable") and question.key not in self.skipped and ctx.round not in self.rounds:
                self.skipped.add(question.key)
                self.rounds.add(ctx.round)
                return "skip"
            return super().answer(question, ctx)

    cfg = compose(["loop.rounds=3", "loop.query_size=4", "loop.initial_per_class=1", "trainer.max_epochs=1",
                   "loop.threads=1", "strategy=entropy"], tmp_path / "run")
    loop = build_loop(cfg, tmp_path / "run")
    loop.oracle = person = Person()
    person.skipped, person.rounds = set(), set()
    loop.run().close()
    j = Journal(tmp_path / "run" / "journal.sqlite")
    initial = [r[1] for r in j.labelled() if r[3] == "initial"]
    assert len(initial) == 10 and len({loop.dm.true_label(i) for i in initial}) < 10  # drawn at random
    assert "random" in j.meta("initial_set")
    skipped = set(j.skipped_items())
    assert len(skipped) == 3 and not skipped & {r[1] for r in j.labelled()}
    queried = [i for r in range(3) for i in j.queries(r)[0]]
    assert len(queried) == len(set(queried)) == 12  # a skipped item is not queried again
    j.close()
