"""eXBL, alternating training and RRR: losses by hand, what each training stage updates, exemplar
choice, and the relevance annotations reaching the loss."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from exil.common.backbones import build_backbone
from exil.common.data.decoy import DecoyDigitsDataModule
from exil.common.journal import pack_tensors, unpack_tensors
from exil.common.run_folder import load_module_state
from exil.exbl.alternating import AlternatingClassifier
from exil.exbl.exbl import ExBLClassifier
from exil.exbl.losses import alignment_kl, map_distance, rrr_penalty, triplet_explanation_loss
from exil.exbl.rrr import RRRClassifier


def mlp(shape=(1, 8, 8), hidden=(16,)):
    return build_backbone(source="exil", name="mlp", weights="none", input_shape=list(shape), data_dir="data",
                          hidden=list(hidden))


def cnn(shape=(1, 8, 8)):
    return build_backbone(source="exil", name="small_cnn", weights="none", input_shape=list(shape),
                          data_dir="data", channels=[4, 8])


def quiet(m):
    m.log = lambda *a, **k: None
    return m


def test_rrr_penalty_by_hand():
    g = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    a = torch.tensor([[[True, False], [False, True]], [[True, True], [True, True]]])
    assert rrr_penalty(g, a).tolist() == [1 + 16, 4]
    assert rrr_penalty(g, a, torch.tensor([True, False])).tolist() == [17, 0]


def test_rrr_loss_matches_the_closed_form_of_a_linear_model():
    """Linear logits Wx + b: ∂/∂x Σ_k log p_k = Σ_k W_k − C · Σ_j p_j W_j."""
    torch.manual_seed(0)
    m = quiet(RRRClassifier(mlp(hidden=()), num_classes=3, l2_grads=10.0))
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    irr = torch.rand(5, 8, 8) > 0.5
    batch = {"x": x, "y": y, "irrelevant": irr, "annotated": torch.ones(5, dtype=torch.bool)}
    W = m.head.weight  # (3, 64)
    p = torch.softmax(m(x), -1)
    grad = (W.sum(0) - 3 * p @ W).view(5, 1, 8, 8)
    expected = F.cross_entropy(m(x), y) + 10.0 * ((grad * irr.unsqueeze(1)) ** 2).flatten(1).sum(1).mean()
    assert m.loss(batch).item() == pytest.approx(expected.item(), rel=1e-5)
    batch["annotated"] = torch.zeros(5, dtype=torch.bool)  # no annotations: plain cross-entropy
    assert m.loss(batch).item() == pytest.approx(F.cross_entropy(m(x), y).item(), rel=1e-6)


def test_triplet_and_distances_by_hand():
    maps = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    good, bad = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert map_distance(maps, bad, "rms").item() == pytest.approx(np.sqrt(2 / 4))
    assert map_distance(maps, bad, "l1").item() == pytest.approx(0.5)
    assert map_distance(maps, bad, "cosine").item() == pytest.approx(1.0)
    assert triplet_explanation_loss(maps, good, bad, margin=1.0).item() == pytest.approx(1 - np.sqrt(0.5), abs=1e-5)
    assert triplet_explanation_loss(maps, bad, good, margin=0.1).item() == pytest.approx(np.sqrt(0.5) + 0.1, abs=1e-5)


def test_alignment_kl_is_kl_divergence_with_a_fixed_target():
    t, a = torch.randn(4, 6), torch.randn(4, 6, requires_grad=True)
    ref = F.kl_div(F.log_softmax(a, -1), F.softmax(t, -1), reduction="none").sum(-1)
    assert torch.allclose(alignment_kl(t, a), ref, atol=1e-6)
    t.requires_grad_(True)
    alignment_kl(t, a).sum().backward()
    assert t.grad is None and a.grad is not None


def test_exbl_triplet_trains_through_gradcam_and_exemplars_survive_a_checkpoint():
    torch.manual_seed(0)
    m = quiet(ExBLClassifier(cnn(), num_classes=3, margin=0.5))
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    assert m.loss({"x": x, "y": y}).item() == pytest.approx(F.cross_entropy(m(x), y).item(), rel=1e-6)
    good = torch.zeros(8, 8)
    good[2:6, 2:6] = 1
    bad = torch.zeros(8, 8)
    bad[:2, :2] = 1
    m.set_exemplars(good, bad)
    loss = m.loss({"x": x, "y": y})
    assert loss.item() > F.cross_entropy(m(x), y).item()
    loss.backward()
    conv = next(p for n, p in m.named_parameters() if "backbone" in n)
    assert conv.grad is not None and conv.grad.abs().sum() > 0
    # a fresh module rebuilt from config takes the exemplars from the checkpoint
    ckpt = {"arch": m.architecture_spec(), "state_dict": m.state_dict()}
    fresh = ExBLClassifier(cnn(), num_classes=3)
    assert not fresh.has_exemplars
    load_module_state(fresh, ckpt)
    assert torch.equal(fresh.good_map, good) and torch.equal(fresh.bad_map, bad)


def test_triplet_loss_moves_gradcam_towards_the_good_exemplar():
    torch.manual_seed(0)
    m = quiet(ExBLClassifier(cnn(), num_classes=2, margin=1.0, triplet_weight=5.0))
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 2
    good = torch.zeros(8, 8)
    good[:, :4] = 1
    bad = 1 - good
    m.set_exemplars(good, bad)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    before = map_distance(m.explanation_maps(x, y), good).mean()
    for _ in range(60):
        opt.zero_grad()
        m.loss({"x": x, "y": y}).backward()
        opt.step()
    after = map_distance(m.explanation_maps(x, y), good).mean()
    assert after < before - 0.05, (before, after)


def _batch(n=8):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 8, 8, generator=g)
    rel = torch.zeros(n, 8, 8, dtype=torch.bool)
    rel[:, 2:6, 2:6] = True
    return {"x": x, "y": torch.arange(n) % 3, "relevant": rel, "annotated": torch.ones(n, dtype=torch.bool)}


class _Opt:
    """Stands in for Lightning's optimizer wrapper in manual optimisation."""

    def __init__(self, opt):
        self.opt = opt

    def zero_grad(self):
        self.opt.zero_grad()

    def step(self):
        self.opt.step()


def _manual(m):
    opts = [_Opt(o) for o in m.configure_optimizers()]
    m.optimizers = lambda: opts
    m.manual_backward = lambda loss: loss.backward()
    return quiet(m)


def _snapshot(m):
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def test_alternating_label_stage_leaves_the_mapping_and_alignment_changes_only_it():
    torch.manual_seed(0)
    m = _manual(AlternatingClassifier(mlp(), num_classes=3, align="mapping", align_steps=0))
    assert torch.equal(m.mapping.weight, torch.eye(16))
    before = _snapshot(m)
    m.training_step(_batch(), 0)  # label stage only
    after = _snapshot(m)
    assert torch.equal(after["mapping.weight"], before["mapping.weight"])
    assert not torch.equal(after["head.weight"], before["head.weight"])
    m.align_steps = 1
    kl_before = m._kl(_batch()).item()
    _, align_opt = m.optimizers()
    for _ in range(20):  # alignment stage alone: only the mapping moves, and the KL falls
        align_opt.zero_grad()
        m._kl(_batch()).backward()
        align_opt.step()
    moved = {n for n, p in _snapshot(m).items() if not torch.equal(p, after[n])}
    assert moved == {"mapping.weight", "mapping.bias"}
    assert m._kl(_batch()).item() < kl_before


def test_alternating_variants():
    torch.manual_seed(0)
    ext = _manual(AlternatingClassifier(mlp(), num_classes=3, align="extractor"))
    assert isinstance(ext.mapping, nn.Identity)
    before = _snapshot(ext)
    ext.training_step(_batch(), 0)
    assert all(not torch.equal(p, before[n]) for n, p in ext.named_parameters() if n.startswith("backbone"))
    joint = quiet(AlternatingClassifier(mlp(), num_classes=3, align="joint", joint_weight=2.0))
    assert joint.automatic_optimization
    b = _batch()
    expected = F.cross_entropy(joint(b["x"]), b["y"]) + 2.0 * joint._kl(b)
    assert joint.training_step(b, 0).item() == pytest.approx(expected.item(), rel=1e-6)
    b["annotated"][:] = False  # no annotated item: no alignment term
    assert joint._kl(b) is None
    with pytest.raises(ValueError, match="mapping, extractor, joint"):
        AlternatingClassifier(mlp(), num_classes=3, align="both")


def test_annotations_pack_compactly_and_round_trip():
    fields = {"relevant": torch.rand(28, 28) > 0.5, "w": torch.randn(3, 2), "n": torch.arange(4)}
    blob = pack_tensors(fields)
    back = unpack_tensors(blob)
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in fields.items())
    assert len(pack_tensors({"relevant": fields["relevant"]})) < 200  # 98 bytes of bits + header


def test_imbalanced_subset_follows_the_exponential_profile():
    dm = DecoyDigitsDataModule(pool_size=300, class_imbalance=0.1, patch_size=2)
    dm.setup()
    counts = np.bincount(dm._targets, minlength=10)
    assert counts.sum() == 300 and counts[0] > counts[5] > counts[9]
    assert counts[9] / counts[0] == pytest.approx(0.1, abs=0.03)


def test_exbl_on_mobilenet_v2_with_frozen_layers_trains_only_the_rest():
    """The paper's set-up: MobileNetV2 with its first 50 layers frozen; Grad-CAM at the last conv block."""
    bb = build_backbone(source="torchvision", name="mobilenet_v2", weights="none", input_shape=[3, 64, 64],
                        data_dir="data", freeze_layers=50)
    m = quiet(ExBLClassifier(bb, num_classes=2))
    good = torch.zeros(64, 64)
    good[16:48, 16:48] = 1
    m.set_exemplars(good, 1 - good)
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    m.loss({"x": x, "y": y}).backward()
    frozen = [p for p in m.backbone.parameters() if not p.requires_grad]
    trained = [p for p in m.backbone.parameters() if p.requires_grad]
    assert frozen and trained and all(p.grad is None for p in frozen)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    assert m.explanation_maps(x, y).shape == (4, 64, 64)
