"""CAIPI's counterexamples and the correct_explanation question, against hand-built cases."""

import pytest
import torch

from exil.caipi.counterexamples import alternatives, randomise, substitute
from exil.caipi.questions import component_masks, correction_question, wrongly_relevant
from exil.common.data.decoy import DecoyDigitsDataModule
from exil.common.explain.segmentation import grid
from exil.common.journal import Journal
from exil.common.oracle.asker import Asker
from exil.common.oracle.base import validate
from exil.common.oracle.question import InvalidAnswer, OracleContext
from exil.common.oracle.simulated import SimulatedOracle
from exil.common.oracle.terminal import TerminalOracle

pytestmark = pytest.mark.xdist_group("test_caipi_corrections")  # its module-scoped fixture is built once, in one worker


def test_randomise_changes_only_the_masked_entries():
    x = torch.zeros(2, 1, 4, 4)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = mask[1, 3, :] = True
    out = randomise(x, mask, c=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 1, 4, 4)
    changed = out != 0
    assert torch.equal(changed.any(1).squeeze(1), mask)
    assert not torch.equal(out[0, 0], out[0, 1])  # each copy draws its own values
    again = randomise(x, mask, c=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_alternatives_are_every_other_value_of_the_component():
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0]])  # colours 0..3 of a 4-pixel "image"
    mask = torch.tensor([[True, False, False, False]])
    out = alternatives(x, mask, values=[0.0, 1.0, 2.0, 3.0])
    assert out.shape == (1, 4, 4)
    assert out[0, :3, 0].tolist() == [1.0, 2.0, 3.0]  # the three other colours, the current one skipped
    assert (out[0, :, 1:] == x[0, 1:]).all()
    assert alternatives(x, mask, values=[0.0, 1.0, 2.0, 3.0], c=2).shape == (1, 2, 4)


def test_substitute_takes_donors_of_the_same_class_and_never_the_item():
    donors = torch.arange(6, dtype=torch.float).view(6, 1).expand(6, 3).clone()  # donor i is all i
    donor_labels = torch.tensor([0, 1, 0, 1, 0, 1])
    x, mask = donors[:2].clone(), torch.tensor([[True, False, True], [True, True, True]])
    out = substitute(x, mask, donor_labels[:2], donors, donor_labels, c=20,
                     generator=torch.Generator().manual_seed(0), exclude=torch.tensor([0, 1]))
    assert set(out[0, :, 0].tolist()) <= {2.0, 4.0} and (out[0, :, 1] == 0).all()
    assert set(out[1, :, 0].tolist()) <= {3.0, 5.0}


@pytest.fixture(scope="module")
def dm():
    d = DecoyDigitsDataModule(patch_size=2)
    d.setup()
    return d


def test_simulated_correction_marks_the_components_on_the_decoy(dm, tmp_path):
    item = 0
    decoy = dm.ground_truth(item, "decoy")[0]
    segments = grid(8, 8, cell=2)
    on_decoy = int(segments[decoy][0])
    shown = [on_decoy, int(segments[4, 4])]
    q = correction_question(item, shown, prediction=3, segments=segments)
    ctx = OracleContext(dm, dm.class_names, tmp_path)
    ross = SimulatedOracle(irrelevant_field="decoy")
    assert validate(q, ross.answer(q, ctx), ctx) == [on_decoy]
    # knowing only the object: a component that covers none of it is wrongly relevant
    relevant = dm.ground_truth(item, "mask")[0]
    expected = [c for c in shown if not (component_masks(segments, [c])[0] & relevant).any()]
    assert SimulatedOracle().answer(q, ctx) == expected


def test_wrongly_relevant_by_hand():
    masks = torch.tensor([[[1, 0], [0, 0]], [[0, 1], [0, 0]], [[0, 0], [1, 1]]]).bool()
    irr = torch.tensor([[0, 1], [0, 0]]).bool()
    assert wrongly_relevant(masks, [7, 8, 9], irrelevant=irr) == [8]
    rel = torch.tensor([[1, 0], [0, 1]]).bool()
    assert wrongly_relevant(masks, [7, 8, 9], relevant=rel) == [8]


def test_correction_validator_and_terminal(dm, tmp_path):
    segments = grid(8, 8, cell=2)
    q = correction_question(5, [3, 9, 12], prediction=1, segments=segments)
    ctx = OracleContext(dm, dm.class_names, tmp_path / "oracle")
    assert validate(q, "12, 3", ctx) == [3, 12] and validate(q, "none", ctx) == [] and validate(q, [9], ctx) == [9]
    for bad in ("4", "three", [True], {"a": 1}):
        with pytest.raises(InvalidAnswer):
            validate(q, bad, ctx)
    typed = iter(["5", "9"])
    said = []
    oracle = TerminalOracle(input_fn=lambda p: next(typed), print_fn=lambda *a: said.append(" ".join(map(str, a))))
    assert Asker(oracle, Journal(tmp_path / "j.sqlite"), ctx)(0, q) == [9]
    assert (ctx.out_dir / "round_000_item_5_why.png").exists() and any("not shown" in s for s in said)


def test_patched_extras_store_only_what_changed_and_train_as_whole_items(tmp_path):
    from exil.common.data.pool_state import Extra, patch
    from exil.common.journal import Journal

    dm = DecoyDigitsDataModule(patch_size=2)
    dm.setup()
    dm.label([0, 1], [dm.true_label(0), dm.true_label(1)])
    x = dm.pool_item(0)["x"]
    cx = randomise(x.unsqueeze(0), dm.ground_truth(0, "decoy"), c=2, generator=torch.Generator().manual_seed(0))[0]
    extras = [Extra(patch("x", x, cx[j]), label=dm.true_label(0), weight=0.5, origin=0, kind="counterexample")
              for j in range(2)]
    assert extras[0].fields["x@index"].numel() == 4  # the 2x2 swatch
    j = Journal(tmp_path / "j.sqlite")
    with j.transaction():
        j.add_extras(1, extras)
    dm.add_extras(j.extras())
    batch = next(iter(dm.train_dataloader()))
    served = batch["x"][batch["extra"]]
    assert len(served) == 2 and {tuple(s.flatten().tolist()) for s in served} == {tuple(c.flatten().tolist()) for c in cx}
    assert set(batch["weight"][batch["extra"]].tolist()) == {0.5}


def test_a_round_whose_predictions_are_all_wrong_says_why_nothing_is_corrected():
    """Issue 22: CAIPI asked nothing when every prediction was wrong, silently; now it says so (and asks only
    the labels)."""
    from types import SimpleNamespace

    import numpy as np

    from exil.caipi.hooks import CaipiHooks
    from exil.common.strategies.base import Selection

    hooks = CaipiHooks()
    hooks.predict_proba = lambda ctx, idx: np.tile(np.eye(3)[0], (len(idx), 1))  # class 0 for every item
    asked, said = [], []
    ctx = SimpleNamespace(round=2, strategy=SimpleNamespace(name="entropy"), say=said.append,
                          ask_many=lambda qs: asked.extend(qs) or [1 for _ in qs])  # the teacher says class 1
    out = hooks.ask(ctx, Selection(np.array([4, 9]), np.array([0.5, 0.4])))
    assert [q.kind for q in asked] == ["label", "label"] and {o["label"] for o in out.values()} == {1}
    assert len(said) == 1 and "predicted all 2 asked items wrongly" in said[0] and "labels are used" in said[0]
