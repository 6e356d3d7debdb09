"""Worst-group accuracy and the wrong-reason score (exil.common.explain.confounder), against closed forms and
hand-counted cases; the simulated teacher's default irrelevant mask on decoy data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from exil.common.data.decoy import DecoyDigitsDataModule
from exil.common.explain.confounder import confounder_metrics, group_accuracy, wrong_reason
from exil.common.oracle.question import OracleContext
from exil.common.oracle.relevance import relevance_masks, relevance_question
from exil.common.oracle.simulated import SimulatedOracle


def test_group_accuracy_counts_by_hand():
    y = np.array([0, 0, 0, 1, 1, 1])
    shown = np.array([0, 1, 1, 1, 0, 0])  # agrees: items 0 and 3
    pred = np.array([0, 1, 0, 1, 1, 0])
    # groups: (0, agree) = {0}: 1/1; (0, other) = {1, 2}: 1/2; (1, agree) = {3}: 1/1; (1, other) = {4, 5}: 1/2
    out = group_accuracy(pred, y, shown, min_group=1)
    assert out["test/worst_group_acc"] == 0.5
    # with groups of at least 2 items, the two one-item agreeing groups are left out of the minimum
    assert group_accuracy(pred, y, shown, min_group=2)["test/worst_group_acc"] == 0.5
    right_when_agreeing = np.where(shown == y, y, 1 - y)  # right only where the confounder agrees
    assert group_accuracy(right_when_agreeing, y, shown, min_group=2)["test/worst_group_acc"] == 0.0
    assert out["test/acc_confounder_agrees"] == 1.0 and out["test/acc_confounder_disagrees"] == 0.5


class Linear(nn.Module):
    """logits = W x: the input gradient of logit c is W[c] everywhere, so WR has a closed form."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x.flatten(1) @ self.w.T


def test_input_gradient_wrong_reason_is_the_closed_form_share_of_the_weights():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 16, generator=g)
    x = torch.rand(5, 1, 4, 4, generator=g)
    region = torch.zeros(5, 4, 4, dtype=torch.bool)
    region[:, :2, :2] = True
    target = torch.tensor([0, 1, 2, 0, 1])
    share = wrong_reason(Linear(w), x, region, target, "input_gradients")
    a = w.abs().view(3, 4, 4)
    expected = a[:, :2, :2].sum((1, 2)) / a.sum((1, 2))
    torch.testing.assert_close(share, expected[target])


def test_lime_wrong_reason_finds_a_model_that_reads_only_the_corner_and_one_that_ignores_it():
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    region = torch.zeros(6, 8, 8, dtype=torch.bool)
    region[:, :2, :2] = True
    corner = torch.zeros(2, 64)
    corner[1, [0, 1, 8, 9]] = 5.0  # class 1's logit is the corner's brightness, nothing else
    centre = torch.zeros(2, 64)
    centre[1, [27, 28, 35, 36]] = 5.0
    target = torch.ones(6, dtype=torch.long)
    reads = wrong_reason(Linear(corner), x, region, target, "lime", cell=2, generator=torch.Generator().manual_seed(0))
    ignores = wrong_reason(Linear(centre), x, region, target, "lime", cell=2, generator=torch.Generator().manual_seed(0))
    assert (reads > 0.9).all() and (ignores < 0.1).all(), (reads, ignores)


def test_gradcam_wrong_reason_is_skipped_for_a_model_without_a_spatial_layer():
    x = torch.rand(2, 1, 4, 4)
    assert wrong_reason(Linear(torch.randn(2, 16)), x, torch.zeros(2, 4, 4, dtype=torch.bool),
                        torch.zeros(2, dtype=torch.long), "gradcam") is None


def test_a_swatch_reader_has_the_worst_groups_and_the_highest_wrong_reason_on_decoy_digits():
    dm = DecoyDigitsDataModule(patch_size=2)
    dm.setup()

    class SwatchReader(nn.Module):
        """Predicts the class whose shade the brightest corner 2x2 patch shows (Ross et al.'s code)."""

        def forward(self, x):
            corners = torch.stack([x[..., :2, :2], x[..., :2, -2:], x[..., -2:, :2], x[..., -2:, -2:]], 1)
            shade = corners.flatten(2).mean(2).amax(1)  # the swatch is the only flat patch of that shade
            classes = (255 - 255 * shade) / 25
            return -(classes[:, None] - torch.arange(10.0) - 0.3).pow(2)  # smooth, and sloped at every class

    model = SwatchReader()
    test = dm._ground_truth_test
    x = test.__getitems__(list(range(len(test))))["x"]
    preds = model(x).argmax(1).numpy()
    out = confounder_metrics(model, dm, torch.device("cpu"), preds, ["input_gradients"])
    assert out["test/acc_confounder_agrees"] > 0.9 and out["test/worst_group_acc"] < 0.2
    assert out["test/wr_input_gradients"] > 0.5


@pytest.mark.parametrize("setting, irrelevant_is", [("auto", "decoy"), (None, "complement"), ("decoy", "decoy")])
def test_the_simulated_teacher_marks_the_confounder_by_default(setting, irrelevant_is):
    dm = DecoyDigitsDataModule(patch_size=2)
    dm.setup()
    ctx = OracleContext(dm, dm.class_names, None)
    teacher = SimulatedOracle(irrelevant_field=setting)
    masks = relevance_masks({k: v for k, v in _encode(teacher.relevance(relevance_question(3, (8, 8)), ctx)).items()})
    decoy = dm.ground_truth(3, "decoy")[0]
    if irrelevant_is == "decoy":
        assert torch.equal(masks["irrelevant"], decoy) and int(decoy.sum()) == 4
    else:
        assert torch.equal(masks["irrelevant"], ~dm.ground_truth(3, "mask")[0])


def _encode(answer):
    from exil.common.oracle.relevance import encode_mask

    return {k: encode_mask(v) for k, v in answer.items()}
