"""Activation recall / precision / F1, attribution share and run agreement against hand-computed values."""

import numpy as np
import pytest
import torch

from exil.common.explain.metrics import activation_scores, agreement, attribution_share


def test_thresholded_activation_scores_by_hand():
    maps = torch.tensor([[[0.0, 2.0], [1.2, 0.4]]])  # max 2 → normalised [[0, 1], [.6, .2]] → active {(0,1), (1,0)}
    mask = torch.tensor([[[True, True], [False, False]]])
    s = activation_scores(maps, mask, threshold=0.5)
    assert s["recall"].item() == pytest.approx(1 / 2)  # of 2 relevant pixels, (0,1) is active
    assert s["precision"].item() == pytest.approx(1 / 2)  # of 2 active pixels, 1 is relevant
    assert s["f1"].item() == pytest.approx(0.5)


def test_soft_scores_and_empty_cases():
    maps = torch.tensor([[[0.5, 1.0], [0.0, 0.5]], [[0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[[1, 0], [0, 1]], [[0, 0], [0, 0]]]).bool()
    s = activation_scores(maps, mask, threshold=None)
    assert s["recall"][0].item() == pytest.approx((0.5 + 0.5) / 2)
    assert s["precision"][0].item() == pytest.approx(1.0 / 2.0)
    assert torch.isnan(s["recall"][1]) and s["precision"][1] == 0  # empty mask: recall undefined


def test_coarse_maps_are_upsampled_and_signs_ignored():
    maps = -torch.ones(1, 2, 2)  # a Grad-CAM-like 2x2 map, signed like a gradient
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[..., :4, :4] = True
    assert activation_scores(maps, mask)["recall"].item() == 1.0


def test_attribution_share():
    g = torch.zeros(1, 1, 4, 4)
    g[0, 0, 0, 0], g[0, 0, 3, 3] = 3.0, -1.0
    region = torch.zeros(1, 4, 4, dtype=torch.bool)
    region[0, 0, 0] = True
    assert attribution_share(g, region).item() == pytest.approx(0.75)


def test_agreement_is_mean_over_pairs():
    a, b, c = np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0]), np.array([1, 1, 2, 0])
    assert agreement([a, b]) == pytest.approx(0.75)
    assert agreement([a, b, c]) == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    with pytest.raises(ValueError):
        agreement([a])
