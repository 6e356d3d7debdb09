"""Input gradients and Grad-CAM against hand-derived values on nets whose derivatives are known."""

import torch
from torch import nn

from exil.common.backbones import build_backbone
from exil.common.explain.gradcam import GradCAM, last_spatial_layer
from exil.common.explain.gradients import log_prob_gradients, saliency_map, score_gradients
from exil.common.modules.classifier import Classifier


def linear(k_in=6, k_out=4, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(k_in, k_out)


def test_log_prob_gradients_of_a_linear_model():
    """Σ_k log p_k = Σ_k z_k − K·logsumexp(z), so ∂/∂x = Wᵀ(1 − K·p)."""
    m = linear()
    x = torch.randn(5, 6)
    p = torch.softmax(m(x), -1)
    expected = (1 - 4 * p) @ m.weight
    assert torch.allclose(log_prob_gradients(m, x), expected, atol=1e-5)


def test_score_gradients_of_a_linear_model_are_the_target_rows():
    m = linear()
    x = torch.randn(5, 6)
    y = torch.tensor([0, 3, 1, 1, 2])
    assert torch.allclose(score_gradients(m, x, y), m.weight[y], atol=1e-6)
    p = torch.softmax(m(x), -1)  # ∂ log p_y / ∂x = W_y − Σ_k p_k W_k
    assert torch.allclose(score_gradients(m, x, y, log_prob=True), m.weight[y] - p @ m.weight, atol=1e-5)


def test_saliency_is_the_channel_max_of_absolute_gradients():
    m = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
    x = torch.randn(2, 2, 3, 3)
    y = torch.tensor([2, 0])
    w = m[1].weight[y].view(2, 2, 3, 3)
    assert torch.allclose(saliency_map(m, x, y), w.abs().amax(dim=1), atol=1e-6)


def test_input_gradients_are_differentiable_for_a_loss():
    m = linear()
    x = torch.randn(5, 6)
    penalty = log_prob_gradients(m, x, create_graph=True).pow(2).sum()
    penalty.backward()
    assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0


class GapNet(nn.Module):
    """A = identity 1×1 conv of the input, y = W · mean_ij(A): Grad-CAM is ReLU(Σ_k W_ck A^k) / HW."""

    def __init__(self, channels=3, classes=4):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        torch.manual_seed(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_grad_cam_on_a_net_with_a_closed_form():
    net = GapNet()
    x = torch.randn(2, 3, 5, 5)
    y = torch.tensor([1, 3])
    cam = GradCAM(net, "conv")(x, y, upsample=False, normalise=False)
    w = net.fc.weight[y]  # (B, K): α_k = W_ck / HW
    expected = torch.relu(torch.einsum("bk,bkhw->bhw", w, x) / 25)
    assert torch.allclose(cam, expected, atol=1e-6)
    norm = GradCAM(net, "conv")(x, y)
    assert torch.allclose(norm.flatten(1).amax(1), torch.ones(2)) and norm.min() >= 0


def test_grad_cam_is_per_sample_and_class_specific():
    torch.manual_seed(0)
    model = Classifier(build_backbone("exil", "small_cnn", input_shape=(1, 28, 28), channels=[4, 8]), 10).eval()
    x = torch.rand(4, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3])
    cam = GradCAM(model)
    batch = cam(x, y)
    one_by_one = torch.cat([cam(x[i:i + 1], y[i:i + 1]) for i in range(4)])
    assert batch.shape == (4, 28, 28)
    assert torch.allclose(batch, one_by_one, atol=1e-5)
    assert not torch.allclose(cam(x, torch.tensor([5, 5, 5, 5])), batch)


def test_default_layer_is_the_last_activation_map():
    model = Classifier(build_backbone("exil", "small_cnn", input_shape=(1, 8, 8), channels=[4, 8]), 10)
    assert last_spatial_layer(model, torch.rand(2, 1, 8, 8)) == "backbone.body.4"  # ReLU after the 2nd conv


def test_grad_cam_is_differentiable_for_a_training_loss():
    torch.manual_seed(0)
    model = Classifier(build_backbone("exil", "small_cnn", input_shape=(1, 8, 8), channels=[4, 8]), 10)
    cam = GradCAM(model)(torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2]), create_graph=True)
    cam.mean().backward()
    conv = model.backbone.body[0].weight
    assert conv.grad is not None and conv.grad.abs().sum() > 0
