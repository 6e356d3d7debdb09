"""ALICE's controlled task (marked sub-classes) and the fine-tuning rate of later rounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exil.alice.model import AliceClassifier
from exil.alice.parser import GARMENT_PARTS, SemanticParser
from exil.common.backbones import build_backbone
from exil.common.data.fashion_marks import MARKED, FashionMarksDataModule, draw_marks, mark_pattern
from exil.common.errors import ConfigError


def test_the_two_patterns_have_the_same_mean_and_contrast_and_differ_only_in_fine_structure():
    c, s = mark_pattern("checked", 6).float(), mark_pattern("striped", 6).float()
    assert c.mean() == s.mean() == 127.5 and set(c.unique().tolist()) == set(s.unique().tolist()) == {0.0, 255.0}
    # 2x2 block means (what a stride-2 view averages) are identical for both
    pool = torch.nn.functional.avg_pool2d
    assert torch.equal(pool(c[None, None], 2), pool(s[None, None], 2))
    assert not torch.equal(c, s)
    assert (c[:, 1:] != c[:, :-1]).all() and (s[:, 1:] == s[:, :-1]).all()  # checked alternates along rows too


def test_marks_are_drawn_inside_the_image_around_their_centres_and_nothing_else_changes():
    x = torch.full((2, 1, 20, 20), 7, dtype=torch.uint8)
    out = draw_marks(x, torch.tensor([[10.0, 10.0], [19.5, 0.5]]), ["checked", "striped"], 4)
    assert torch.equal(x, torch.full_like(x, 7))  # a new tensor
    changed = out != 7
    assert changed[0, 0, 8:12, 8:12].any() and not changed[0, 0, :8].any() and not changed[0, 0, 12:].any()
    assert torch.equal(out[1, 0, 0:4, 16:20], mark_pattern("striped", 4))  # shifted inside at the corner
    assert (out[1, 0, 4:] == 7).all() and (out[1, 0, :, :16] == 7).all()


def _dm(tmp_path, **kw):
    from tests.unit.test_data import write_idx_folder

    write_idx_folder(tmp_path / "fm", n_train=200, n_test=100)
    dm = FashionMarksDataModule(root=str(tmp_path / "fm"), images_per_class=4, image_size=32, mark=4, test_size=None,
                                **kw)
    dm.setup()
    return dm


def test_sub_classes_are_distinct_real_images_each_with_its_own_mark_at_the_named_part(tmp_path):
    dm = _dm(tmp_path)
    batch = dm.pool.__getitems__(list(range(len(dm.pool))))
    y = batch["y"].numpy()
    assert len(dm.class_names) == 8 and np.bincount(y).tolist() == [4] * 8
    assert dm.coarse_labels(np.arange(8)).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    x = (batch["x"][:, 0] * 255).round().byte()
    for n in range(len(y)):  # the patch at the part's location is the sub-class's pattern
        base = sorted(MARKED)[y[n] // 2]
        from exil.common.data.fashion_parts import GARMENT_PART_NAMES

        cx, cy = batch["parts"][n, GARMENT_PART_NAMES.index(MARKED[base]), :2].tolist()
        c0, r0 = int(min(max(round(cx - 2), 0), 28)), int(min(max(round(cy - 2), 0), 28))
        assert torch.equal(x[n, r0:r0 + 4, c0:c0 + 4], mark_pattern(("checked", "striped")[y[n] % 2], 4))
    # test: only images of the four marked garments, every seed the same test set
    test = dm.test.__getitems__(list(range(len(dm.test))))["y"].numpy()
    other = _dm(tmp_path / "again", seed=5)
    assert len(test) == 40 and np.array_equal(test, other.test.__getitems__(list(range(len(other.test))))["y"].numpy())


def test_the_expert_names_the_marked_part_for_sub_classes_and_the_garments_otherwise(tmp_path):
    dm = _dm(tmp_path)
    parser = SemanticParser(GARMENT_PARTS)
    for k, base in enumerate(sorted(MARKED)):
        assert parser.parse(dm.contrast_explanation(2 * k, 2 * k + 1)) == {MARKED[base]}
        assert dm.contrast_explanation(2 * k + 1, 2 * k) == dm.contrast_explanation(2 * k, 2 * k + 1)
    assert "waistband" in dm.contrast_explanation(0, 3)  # T-shirt vs trousers: the proxy's garment sentence


def test_a_mark_too_large_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="dataset.mark"):
        FashionMarksDataModule(root=str(tmp_path), image_size=32, mark=20)


def _model(**kw) -> AliceClassifier:
    torch.manual_seed(0)
    backbone = build_backbone("exil", "small_cnn", input_shape=(1, 16, 16), channels=[4, 8])
    return AliceClassifier(backbone, num_classes=5, queries=3, **kw)


def test_later_rounds_fine_tune_the_encoder_at_a_lower_rate_and_new_heads_at_the_full_rate():
    from functools import partial

    m = _model(optimizer=partial(torch.optim.SGD, lr=0.01), finetune_lr=0.1,
               scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=2, gamma=0.9))
    first = m.configure_optimizers()["optimizer"]
    assert [g["lr"] for g in first.param_groups] == [0.01]  # round 0: one rate for all
    m.morph([(1, 3)])
    conf = m.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    rest, encoder = opt.param_groups
    assert {id(p) for p in encoder["params"]} == {id(p) for p in m.backbone.parameters()}
    assert {id(p) for p in rest["params"]} | {id(p) for p in encoder["params"]} == {id(p) for p in m.parameters()}
    assert rest["lr"] == 0.01 and encoder["lr"] == pytest.approx(0.001)
    for _ in range(2):
        opt.step(), sched.step()
    assert encoder["lr"] == pytest.approx(0.0009) and rest["lr"] == pytest.approx(0.009)  # the schedule scales both
    with pytest.raises(ConfigError, match="finetune_lr"):
        _model(finetune_lr=0)


def test_the_crop_of_the_named_part_holds_the_whole_mark_magnified(tmp_path):
    from exil.alice.grounding import PartBoxes
    from exil.common.data.parts import crop_to_boxes

    dm = _dm(tmp_path)
    items = np.arange(8)  # the T-shirts: 4 checked, 4 striped
    rows, boxes = PartBoxes(size=0.25).boxes(dm, items, ["collar"], torch.Generator().manual_seed(0))
    assert len(rows) == 8 and torch.allclose(boxes[:, 2:] - boxes[:, :2], torch.full((8, 2), 8.0))
    batch = dm.pool.__getitems__(items.tolist())
    x = (batch["x"] * 255).round()
    for n in range(8):
        x0, y0, x1, y1 = boxes[n].tolist()
        marked = (x[n, 0] == 0) | (x[n, 0] == 255)
        inside = marked[int(y0):int(y1), int(x0):int(x1)]
        # every pixel of the 4 x 4 patch lies inside the 8 x 8 box
        pattern = mark_pattern(("checked", "striped")[n >= 4], 4).float()
        found = any(torch.equal(x[n, 0, r:r + 4, c:c + 4], pattern)
                    for r in range(int(y0), int(y1) - 3) for c in range(int(x0), int(x1) - 3))
        assert found and inside.any()
    crops = crop_to_boxes(batch["x"], boxes)
    assert crops.shape == batch["x"].shape  # resized to the full 32 px: the mark spans 16 px


def test_labels_per_explanation_reads_the_random_sampling_curve_by_hand():
    from reproduce.alice import labels_per_explanation

    curve = [(15, 0.80), (20, 0.90), (25, 0.95), (30, 0.94)]  # the last row dips: the curve is taken as its running max
    # 0.85 is halfway from 15 to 20 images per class: 2.5 extra per class × 8 classes / 4 explanations = 5
    assert labels_per_explanation(curve, 0.85, explanations=4, k=15, classes=8) == "5"
    assert labels_per_explanation(curve, 0.79, explanations=4, k=15, classes=8) == "0"
    assert labels_per_explanation(curve, 0.96, explanations=4, k=15, classes=8) == "> 30"  # beyond the last row
