"""The relevance and choose_exemplars questions: validation, simulated and terminal answers, batched asking."""

import numpy as np
import pytest
import torch

from exil.common.data.decoy import DecoyDigitsDataModule
from exil.common.errors import ExilError
from exil.common.journal import Journal
from exil.common.oracle.asker import Asker
from exil.common.oracle.base import validate
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question
from exil.common.oracle.relevance import decode_mask, encode_mask, relevance_masks, relevance_question
from exil.common.oracle.sheets import grid_mask
from exil.common.oracle.simulated import SimulatedOracle
from exil.common.oracle.terminal import TerminalOracle
from exil.exbl.questions import exemplars_question, pick_by_activation_recall

pytestmark = pytest.mark.xdist_group("test_explanation_questions")  # its module-scoped fixture is built once, in one worker


@pytest.fixture(scope="module")
def dm():
    d = DecoyDigitsDataModule(patch_size=2)
    d.setup()
    return d


@pytest.fixture
def ctx(dm, tmp_path):
    return OracleContext(dm, dm.class_names, tmp_path / "oracle")


def test_mask_encoding_round_trips():
    m = torch.rand(28, 28) > 0.3
    assert torch.equal(decode_mask(encode_mask(m)), m)


def test_relevance_validator_checks_shape_and_normalises(ctx):
    q = relevance_question(3, (8, 8))
    ok = validate(q, {"relevant": np.eye(8, dtype=bool)}, ctx)
    masks = relevance_masks(ok)
    assert torch.equal(masks["relevant"], torch.eye(8).bool()) and torch.equal(masks["irrelevant"], ~torch.eye(8).bool())
    with pytest.raises(InvalidAnswer, match=r"shape \[4, 4\]; this item needs \[8, 8\]"):
        validate(q, {"relevant": np.ones((4, 4), bool)}, ctx)
    with pytest.raises(InvalidAnswer):
        validate(q, "the middle", ctx)


def test_simulated_relevance_is_the_ground_truth_object_and_the_decoy(dm, ctx):
    plain = SimulatedOracle()
    ans = validate(relevance_question(5, (8, 8)), plain.answer(relevance_question(5, (8, 8)), ctx), ctx)
    masks = relevance_masks(ans)
    assert torch.equal(masks["relevant"], dm.ground_truth(5, "mask")[0])
    ross = SimulatedOracle(irrelevant_field="decoy")
    masks = relevance_masks(validate(relevance_question(5, (8, 8)), ross.answer(relevance_question(5, (8, 8)), ctx), ctx))
    assert torch.equal(masks["irrelevant"], dm.ground_truth(5, "decoy")[0]) and int(masks["irrelevant"].sum()) == 4


def test_simulated_relevance_without_masks_says_which_datasets_have_them(tmp_path):
    from exil.common.data.digits import DigitsDataModule

    plain = DigitsDataModule()
    plain.setup()
    c = OracleContext(plain, plain.class_names, tmp_path)
    with pytest.raises(ExilError, match="decoy_mnist"):
        SimulatedOracle().answer(relevance_question(0, (8, 8)), c)


def test_exemplars_by_activation_recall(dm, ctx):
    items = [0, 1, 2, 3]
    masks = torch.stack([dm.ground_truth(i, "mask")[0] for i in items])
    maps = torch.zeros(4, 8, 8)
    maps[1] = masks[1].float()  # perfectly on the object: recall 1
    maps[2, 0, 0] = maps[2, 7, 7] = 1  # on corners: recall ~0
    maps[0] = maps[3] = masks[0].float() * torch.rand(8, 8)
    assert pick_by_activation_recall(maps, masks, items) == {"good": 1, "bad": 2}
    q = exemplars_question(0, items, maps)
    assert validate(q, SimulatedOracle().answer(q, ctx), ctx) == {"good": 1, "bad": 2}


def test_exemplar_validator_takes_positions_or_items(ctx):
    q = exemplars_question(0, [10, 20, 30], torch.zeros(3, 8, 8))
    assert validate(q, "2 0", ctx) == {"good": 30, "bad": 10}
    assert validate(q, {"good": 20, "bad": 10}, ctx) == {"good": 20, "bad": 10}
    for bad in ("1 1", "0 3", "one two", "0", {"good": 11, "bad": 10}):
        with pytest.raises(InvalidAnswer):
            validate(q, bad, ctx)


def test_terminal_exemplars_saves_overlays_and_reasks(dm, ctx, tmp_path):
    typed = iter(["0 0", "1 2"])
    shown = []
    oracle = TerminalOracle(input_fn=lambda prompt: next(typed), print_fn=lambda *a: shown.append(" ".join(map(str, a))))
    asker = Asker(oracle, Journal(tmp_path / "j.sqlite"), ctx)
    q = exemplars_question(0, [4, 5, 6], torch.rand(3, 8, 8), labels=[dm.labels.get(i, 0) for i in (4, 5, 6)])
    assert asker(0, q) == {"good": 5, "bad": 6}
    assert (ctx.out_dir / "round_000_exemplars.png").exists()
    assert any("must differ" in s for s in shown)


def test_terminal_relevance_by_grid_cells(dm, ctx, tmp_path):
    typed = iter(["17", "5 6"])
    oracle = TerminalOracle(grid=4, input_fn=lambda prompt: next(typed), print_fn=lambda *a: None)
    asker = Asker(oracle, Journal(tmp_path / "j.sqlite"), ctx)
    ans = asker(0, relevance_question(7, (8, 8)))
    assert torch.equal(relevance_masks(ans)["relevant"], torch.from_numpy(grid_mask([5, 6], 4, 8, 8)))
    assert relevance_masks(ans)["relevant"][2:4, 2:6].all() and int(relevance_masks(ans)["relevant"].sum()) == 8


def test_asking_many_commits_in_batches_and_reuses(ctx, tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    asker = Asker(SimulatedOracle(), j, ctx)
    qs = [Question("label", key=str(i), item=i) for i in range(50)]
    first = asker.many(0, qs, chunk=16)
    assert first == [ctx.datamodule.true_label(i) for i in range(50)] and asker.asked == 50
    again = Asker(SimulatedOracle(), j, ctx).many(0, qs)
    assert again == first
    assert len(j.answers(0)) == 50
