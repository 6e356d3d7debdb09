"""CAIPI's colors problem, the pairwise-equality features and the L1/L2 linear learner."""

import numpy as np
import pytest
import torch

from exil.common.backbones import build_backbone
from exil.common.data.colors import ColorsDataModule, generate, rule0, rule1, rule_mask
from exil.common.modules.linear import LinearClassifier


def test_rules_by_hand():
    img = np.zeros((2, 5, 5), dtype=int)
    img[0, 0, 1:4] = [1, 2, 3]  # corners all 0 (rule 0 true), top middle 1,2,3 all differ (rule 1 true)
    img[1, 0, 0] = 2  # corners differ; top middle 0,0,0 equal
    assert rule0(img).tolist() == [True, False] and rule1(img).tolist() == [True, False]
    assert rule_mask(0).sum() == 4 and rule_mask(1)[0, 1:4].all() and rule_mask(1).sum() == 3


def test_generated_images_agree_on_both_rules_and_are_balanced():
    images, labels = generate(400, seed=1)
    assert (rule0(images) == rule1(images)).all() and (rule0(images) == labels.astype(bool)).all()
    assert labels.sum() == 200 and images.min() >= 0 and images.max() <= 3


def test_datamodule_hides_the_rule_mask():
    dm = ColorsDataModule(rule=1, size=200)
    dm.setup()
    assert dm.input_shape == (1, 5, 5) and "mask" not in dm.pool[0]
    assert torch.equal(dm.ground_truth(0, "mask")[0], torch.from_numpy(rule_mask(1)))


def test_pairwise_equal_features():
    f = build_backbone(source="exil", name="pairwise_equal", input_shape=[1, 5, 5])
    assert f.out_features == 300
    x = torch.zeros(1, 1, 5, 5)
    assert f(x).sum() == 300  # all equal
    x[0, 0, 0, 0] = -1  # a hidden pixel equals no other: loses its 24 pairs
    assert f(x).sum() == 300 - 24


def test_linear_learner_penalties():
    torch.manual_seed(0)
    bb = build_backbone(source="exil", name="mlp", input_shape=[4], hidden=[])
    m = LinearClassifier(bb, num_classes=2, l1=0.1, l2=0.01)
    b = {"x": torch.randn(8, 4), "y": torch.arange(8) % 2}
    ce = torch.nn.functional.cross_entropy(m(b["x"]), b["y"])
    w = m.head.weight
    assert m.loss(b).item() == pytest.approx((ce + 0.1 * w.abs().sum() + 0.01 * (w ** 2).sum()).item(), rel=1e-6)
