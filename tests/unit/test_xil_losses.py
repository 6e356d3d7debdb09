"""RBR, RRR-G, HINT and CDEP (the XIL typology's losses in exbl/): each against an independent
reference — per-item autograd, finite differences, closed forms of linear and bias-free networks,
hand-computed cases — and each shown to move a model's explanation off a decoy it would use."""

import pytest
import torch
import torch.nn.functional as F

from exil.common.backbones import build_backbone
from exil.common.errors import ConfigError
from exil.exbl.cdep import CDEPClassifier
from exil.exbl.contextual_decomposition import decompose
from exil.exbl.hint import HINTClassifier
from exil.exbl.losses import cdep_penalty, downsample_mask, head_gradient_sq_norm, hint_loss, rrr_g_penalty
from exil.exbl.rbr import RBRClassifier
from exil.exbl.rrr_g import RRRGClassifier


def mlp(hidden=(16,), shape=(1, 8, 8)):
    return build_backbone(source="exil", name="mlp", weights="none", input_shape=list(shape), data_dir="data",
                          hidden=list(hidden))


def cnn(shape=(1, 8, 8), pool="avg", channels=(4, 8)):
    return build_backbone(source="exil", name="small_cnn", weights="none", input_shape=list(shape), data_dir="data",
                          channels=list(channels), pool=pool)


def quiet(m):
    m.log = lambda *a, **k: None
    return m


def corner_mask(n, size=8, k=2):
    a = torch.zeros(n, size, size, dtype=torch.bool)
    a[:, :k, :k] = True
    return a


# --- RBR ---------------------------------------------------------------------------------------

def test_head_gradient_norm_is_the_per_item_autograd_norm():
    torch.manual_seed(0)
    head = torch.nn.Linear(5, 3)
    a, y = torch.randn(4, 5), torch.tensor([0, 2, 1, 2])
    expected = []
    for i in range(4):
        gw, gb = torch.autograd.grad(F.cross_entropy(head(a[i:i + 1]), y[i:i + 1]), [head.weight, head.bias])
        expected.append(gw.pow(2).sum() + gb.pow(2).sum())
    got = head_gradient_sq_norm(a, torch.softmax(head(a), -1), y)
    assert torch.allclose(got, torch.stack(expected), rtol=1e-5)


def test_rbr_loss_matches_a_brute_force_influence_per_item():
    """I_i = ∇_x ½‖∇_head CE_i‖², each item alone with autograd (no closed form), masked and squared."""
    torch.manual_seed(0)
    m = quiet(RBRClassifier(mlp(hidden=(12, 7)), num_classes=3, l2_influence=5.0)).double()
    x, y = torch.rand(6, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    irr = torch.rand(6, 8, 8) > 0.5
    annotated = torch.tensor([True, True, False, True, True, True])
    penalties = []
    for i in range(6):
        xi = x[i:i + 1].clone().requires_grad_(True)
        grads = torch.autograd.grad(F.cross_entropy(m(xi), y[i:i + 1]), [m.head.weight, m.head.bias], create_graph=True)
        (infl,) = torch.autograd.grad(0.5 * sum(g.pow(2).sum() for g in grads), xi)
        penalties.append((infl[0, 0] * irr[i]).pow(2).sum() * annotated[i])
    expected = F.cross_entropy(m(x), y) + 5.0 * torch.stack(penalties).mean()
    batch = {"x": x, "y": y, "irrelevant": irr, "annotated": annotated}
    assert m.loss(batch).item() == pytest.approx(expected.item(), rel=1e-9)
    assert torch.stack(penalties).sum() > 0


# --- contextual decomposition ------------------------------------------------------------------

def test_cd_of_a_linear_model_is_its_two_linear_parts():
    """logits = W x (no bias): β = W(x ⊙ M), γ = W(x ⊙ (1 − M)) exactly."""
    torch.manual_seed(0)
    m = CDEPClassifier(mlp(hidden=()), num_classes=4)
    torch.nn.init.zeros_(m.head.bias)
    x, mask = torch.rand(5, 1, 8, 8), torch.rand(5, 8, 8) > 0.5
    beta, gamma = m.decomposition(x, mask)
    W = m.head.weight
    assert torch.allclose(beta, (x[:, 0] * mask).flatten(1) @ W.T, atol=1e-6)
    assert torch.allclose(gamma, (x[:, 0] * ~mask).flatten(1) @ W.T, atol=1e-6)


def test_cd_splits_a_bias_in_proportion_to_the_parts():
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -3.0]]))
        lin.bias.fill_(2.0)
    x = torch.tensor([[1.0, 1.0]])
    beta, gamma = decompose([lin], x, torch.tensor([[True, False]]))
    # Wβ = 1, Wγ = −3: the bias 2 splits 1/4 : 3/4
    assert beta.item() == pytest.approx(1 + 2 * 0.25) and gamma.item() == pytest.approx(-3 + 2 * 0.75)


@pytest.mark.parametrize("backbone, size", [(lambda: mlp(hidden=(16, 9)), 8), (cnn, 8), (lambda: cnn(pool="flatten"), 8),
                                           (lambda: cnn(shape=(1, 7, 7), channels=(3, 5, 6)), 7)])
def test_cd_parts_sum_to_the_logits(backbone, size):
    torch.manual_seed(0)
    m = CDEPClassifier(backbone(), num_classes=5)
    x, mask = torch.rand(4, 1, size, size), torch.rand(4, size, size) > 0.5
    beta, gamma = m.decomposition(x, mask)
    assert torch.allclose(beta + gamma, m(x), atol=1e-5)
    beta, gamma = m.decomposition(x, torch.ones(4, size, size, dtype=torch.bool))  # everything is the region
    assert torch.allclose(beta, m(x), atol=1e-5) and gamma.abs().max() < 1e-6


def test_cd_of_a_bias_free_relu_net_is_the_net_on_the_masked_input():
    """Without biases every layer of β sees only β, so β = f(x ⊙ M) (and γ = f(x) − f(x ⊙ M))."""
    torch.manual_seed(0)
    m = CDEPClassifier(mlp(hidden=(16, 9)), num_classes=3)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Linear):
            torch.nn.init.zeros_(mod.bias)
    x, mask = torch.rand(5, 1, 8, 8), torch.rand(5, 8, 8) > 0.3
    beta, gamma = m.decomposition(x, mask)
    assert torch.allclose(beta, m(x * mask.unsqueeze(1)), atol=1e-6)
    assert torch.allclose(gamma, m(x) - m(x * mask.unsqueeze(1)), atol=1e-6)


def test_cd_max_pool_reads_both_parts_where_their_sum_peaks():
    pool = torch.nn.MaxPool2d(2)
    x = torch.tensor([[[[1.0, 5.0], [2.0, 3.0]]]])
    beta, gamma = decompose([pool], x, torch.tensor([[[False, True], [True, False]]]))
    assert beta.item() == 5.0 and gamma.item() == 0.0  # the peak 5 is in the region
    beta, gamma = decompose([pool], x, torch.tensor([[[True, False], [False, False]]]))
    assert beta.item() == 0.0 and gamma.item() == 5.0


def test_cdep_refuses_backbones_it_cannot_decompose():
    bb = build_backbone(source="exil", name="pairwise_equal", weights="none", input_shape=[1, 3, 3], data_dir="data")
    with pytest.raises(ConfigError, match="mlp, small_cnn and tiny_cnn"):
        CDEPClassifier(bb, num_classes=2)


def test_cdep_penalties_and_loss_by_hand():
    beta, gamma = torch.tensor([[0.0, 2.0], [1.0, -1.0]]), torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    assert cdep_penalty(beta, gamma).tolist() == [1.0, 1.0]  # l1: mean_k |β_k|
    by_softmax = F.softmax(torch.stack([beta, gamma], -1), -1)[..., 0].mean(-1)
    assert torch.allclose(cdep_penalty(beta, gamma, form="softmax"), by_softmax)
    assert cdep_penalty(beta, gamma, form="softmax")[0].item() == pytest.approx(
        (0.5 + torch.sigmoid(torch.tensor(2.0)).item()) / 2)
    assert cdep_penalty(beta, gamma, torch.tensor([False, True])).tolist() == [0.0, 1.0]
    torch.manual_seed(0)
    m = quiet(CDEPClassifier(cnn(), num_classes=3, cd_weight=4.0))
    x, y, irr = torch.rand(6, 1, 8, 8), torch.arange(6) % 3, corner_mask(6)
    annotated = torch.tensor([True, False, True, True, False, True])
    beta, _ = m.decomposition(x, irr)
    expected = F.cross_entropy(m(x), y) + 4.0 * (beta.abs().mean(-1) * annotated).mean()
    batch = {"x": x, "y": y, "irrelevant": irr, "annotated": annotated}
    assert m.loss(batch).item() == pytest.approx(expected.item(), rel=1e-5)
    batch["annotated"] = torch.zeros(6, dtype=torch.bool)
    assert m.loss(batch).item() == pytest.approx(F.cross_entropy(m(x), y).item(), rel=1e-6)
    # its cross-entropy reads the logits off the decomposition (β + γ): the same gradient as a plain forward
    grads = torch.autograd.grad(m.loss(batch), list(m.parameters()))
    plain = torch.autograd.grad(F.cross_entropy(m(x), y), list(m.parameters()))
    assert all(torch.allclose(g, p, atol=1e-6) for g, p in zip(grads, plain))
    with pytest.raises(ValueError, match="l1, softmax"):
        CDEPClassifier(cnn(), num_classes=3, penalty="l2")


# --- RRR-G and HINT ----------------------------------------------------------------------------

def test_mask_downsampling_is_the_covered_fraction():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, :3] = True  # three pixels of the top row
    assert downsample_mask(mask, (2, 2)).tolist() == [[[0.5, 0.25], [0.0, 0.0]]]


def test_rrr_g_penalty_and_hint_by_hand():
    maps = torch.tensor([[[1.0, 0.5], [0.0, 0.2]]])
    irr = torch.zeros(1, 4, 4, dtype=torch.bool)
    irr[0, :2, :] = True  # the whole top half: A↓ = [[1, 1], [0, 0]]
    assert rrr_g_penalty(maps, irr).item() == pytest.approx(1.0 + 0.25)
    assert rrr_g_penalty(maps, irr, torch.tensor([False])).item() == 0.0
    rel = ~irr
    assert hint_loss(maps, rel).item() == pytest.approx((1 + 0.25 + 1 + 0.64) / 4)
    assert hint_loss(downsample_mask(rel, (2, 2)), rel).item() == 0.0  # a map equal to the mask


@pytest.mark.parametrize("penalty, field", [(rrr_g_penalty, "irrelevant"), (hint_loss, "relevant")])
def test_gradcam_penalties_have_the_finite_difference_gradient(penalty, field):
    """The double-backward graph through Grad-CAM gives the directional derivative of the penalty."""
    torch.manual_seed(0)
    cls = RRRGClassifier if field == "irrelevant" else HINTClassifier
    m = cls(cnn(), num_classes=3).double()
    x, y = torch.rand(5, 1, 8, 8, dtype=torch.float64), torch.arange(5) % 3
    mask = corner_mask(5, k=4) if field == "irrelevant" else ~corner_mask(5, k=4)
    params = list(m.parameters())

    def value():
        _, maps = m.gradcam.forward_with_maps(x, y, create_graph=True, upsample=False)
        return penalty(maps, mask).mean()

    grads = torch.autograd.grad(value(), params, allow_unused=True)
    direction = [torch.randn_like(p) for p in params]
    analytic = sum((g * d).sum() for g, d in zip(grads, direction) if g is not None)
    eps = 1e-6
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(eps * d)
    plus = value().item()
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.sub_(2 * eps * d)
    minus = value().item()
    assert analytic.item() == pytest.approx((plus - minus) / (2 * eps), rel=1e-4, abs=1e-8)
    assert analytic.abs() > 1e-4


@pytest.mark.parametrize("cls", [RRRGClassifier, HINTClassifier])
def test_gradcam_methods_use_the_penalty_and_refuse_a_backbone_without_a_map(cls):
    torch.manual_seed(0)
    m = quiet(cls(cnn(), num_classes=3))
    x, y, irr = torch.rand(4, 1, 8, 8), torch.arange(4) % 3, corner_mask(4)
    batch = {"x": x, "y": y, "irrelevant": irr, "relevant": ~irr, "annotated": torch.ones(4, dtype=torch.bool)}
    assert m.loss(batch).item() > F.cross_entropy(m(x), y).item()
    batch["annotated"][:] = False
    assert m.loss(batch).item() == pytest.approx(F.cross_entropy(m(x), y).item(), rel=1e-6)
    with pytest.raises(ConfigError, match="conv backbone"):
        cls(mlp(), num_classes=3)


# --- behaviour: a decoy the plain model uses, and each loss moving the explanation off it ---------

def decoy_task(n=64, seed=0):
    """Two classes told apart by a faint centre bar (vertical / horizontal) under strong noise, and by
    a bright top-left 2×2 swatch present exactly in class 1: a cleaner cue, which plain training uses.
    The teacher marks the swatch irrelevant and the centre relevant."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.6 * torch.rand(n, 1, 8, 8, generator=g)
    x[y == 0, 0, 2:6, 4] += 0.4
    x[y == 1, 0, 4, 2:6] += 0.4
    x[y == 1, 0, :2, :2] = 1.0
    relevant = torch.zeros(n, 8, 8, dtype=torch.bool)
    relevant[:, 2:6, 2:6] = True
    return {"x": x, "y": y, "irrelevant": corner_mask(n), "relevant": relevant,
            "annotated": torch.ones(n, dtype=torch.bool)}


def share_input_gradient(m, b):
    x = b["x"].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.log_softmax(m(x), -1).sum(), x)
    g = g.abs()[:, 0]
    return ((g * b["irrelevant"]).flatten(1).sum(1) / g.flatten(1).sum(1)).mean().item()


def share_gradcam(m, b):
    maps = m.gradcam(b["x"], b["y"], upsample=False)
    a = downsample_mask(b["irrelevant"], tuple(maps.shape[-2:]))
    return ((maps * a).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp_min(1e-12)).mean().item()


def share_cd(m, b):
    beta, gamma = m.decomposition(b["x"], b["irrelevant"])
    target = b["y"].view(-1, 1)
    beta, gamma = beta.gather(1, target).abs(), gamma.gather(1, target).abs()
    return (beta / (beta + gamma)).mean().item()


CASES = {  # the loss, its backbone, its λ, and the explanation whose share on the swatch it lowers
    "rbr": (RBRClassifier, lambda: mlp(hidden=(32,)), "l2_influence", 100.0, share_input_gradient),
    "rrr_g": (RRRGClassifier, cnn, "l2_gradcam", 1.0, share_gradcam),
    "hint": (HINTClassifier, cnn, "hint_weight", 1.0, share_gradcam),
    "cdep": (CDEPClassifier, lambda: mlp(hidden=(32,)), "cd_weight", 1.0, share_cd),
}


def trained(name, weight_value):
    cls, backbone, weight, _, _ = CASES[name]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = quiet(cls(backbone(), num_classes=2, **{weight: weight_value}))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    b = decoy_task()
    for _ in range(150):
        opt.zero_grad()
        m.loss(b).backward()
        opt.step()
    assert (m(b["x"]).argmax(-1) == b["y"]).float().mean() == 1.0  # it fits the training data
    return m


@pytest.mark.parametrize("name", list(CASES))
def test_training_moves_the_explanation_off_the_decoy(name):
    value, share = CASES[name][3], CASES[name][4]
    b = decoy_task()
    plain, guided = share(trained(name, 0.0), b), share(trained(name, value), b)
    assert guided < 0.5 * plain, (plain, guided)


@pytest.mark.parametrize("name", ["rbr", "cdep"])
def test_rbr_and_cdep_stop_the_model_from_reading_the_decoy(name):
    """With the swatches swapped between the classes, the plain model follows them; the guided one
    follows the bars. (The Grad-CAM losses are not here: a small CNN can hide its use of the swatch
    from the label's Grad-CAM, as negative evidence for the other class, and on this task it does.)"""
    b = decoy_task()
    x = b["x"].clone()
    x[:, 0, :2, :2] = torch.where(b["y"] == 0, 1.0, 0.15).view(-1, 1, 1)

    def swapped_accuracy(m):
        return (m(x).argmax(-1) == b["y"]).float().mean().item()

    plain, guided = swapped_accuracy(trained(name, 0.0)), swapped_accuracy(trained(name, CASES[name][3]))
    assert plain < 0.5 and guided > 0.85, (plain, guided)
