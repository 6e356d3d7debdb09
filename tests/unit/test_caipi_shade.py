"""CAIPI's ``shade`` counterexamples and the decoy diagnostics, against hand-built cases."""

import torch

from exil.caipi.counterexamples import randomise, shade
from exil.caipi.diagnostics import decoy_diagnostics


def _swatch_case():
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(3, 8, 8, dtype=torch.bool)
    mask[0, :2, :2] = mask[1, 6:, 6:] = mask[2, :2, 6:] = True  # a 2x2 swatch in a different corner each
    x[mask.unsqueeze(1)] = 0.5  # the real swatch: one uniform shade
    return x, mask


def test_shade_is_one_uniform_new_value_inside_the_swatch_and_nothing_else_changes():
    x, mask = _swatch_case()
    out = shade(x, mask, c=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 4, 1, 8, 8)
    for b in range(3):
        for k in range(4):
            inside = out[b, k, 0][mask[b]]
            assert torch.all(inside == inside[0])  # one shade over the whole swatch
            assert inside[0] != 0.5 and 0.0 <= float(inside[0]) <= 1.0  # a new value in [0, 1]
            assert torch.equal(out[b, k, 0][~mask[b]], x[b, 0][~mask[b]])  # outside untouched
    shades = out[:, :, 0][mask.unsqueeze(1).expand(3, 4, 8, 8)].view(3, 4, 4)[..., 0]
    assert len(set(shades.flatten().tolist())) == 12  # each copy of each item draws its own shade
    assert torch.equal(out, shade(x, mask, c=4, generator=torch.Generator().manual_seed(0)))  # replays


def test_shade_values_are_uniform_on_the_interval():
    x = torch.zeros(1, 1, 2, 2)
    mask = torch.ones(1, 2, 2, dtype=torch.bool)
    v = shade(x, mask, c=20000, generator=torch.Generator().manual_seed(0), low=0.2, high=0.6)[0, :, 0, 0, 0]
    assert 0.2 <= float(v.min()) and float(v.max()) <= 0.6
    assert abs(float(v.mean()) - 0.4) < 0.005 and abs(float(v.var()) - 0.4 ** 2 / 12) < 0.001  # U[a, b] moments


def test_randomise_is_per_pixel_noise_unlike_shade():
    x, mask = _swatch_case()
    out = randomise(x, mask, c=2, generator=torch.Generator().manual_seed(0))
    inside = out[0, 0, 0][mask[0]]
    assert len(set(inside.tolist())) == 4  # every pixel its own value


class _Reader(torch.nn.Module):
    """A stand-in classifier that reads the class from one pixel: the swatch's (0, 0) or the object's (4, 4)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    @staticmethod
    def inputs(batch):
        return batch["x"]

    def forward(self, x):
        v = x[:, 0, self.at[0], self.at[1]]
        k = torch.round((1 - v) * 255 / 25).long().clamp(0, 9)  # the decoy code: shade = (255 - 25 k) / 255
        return torch.nn.functional.one_hot(k, 10).float()


class _TestSet:
    decoy_args = {"shade_step": 25}

    def __init__(self, n=2000):
        g = torch.Generator().manual_seed(0)
        self.decoy_y = torch.randint(10, (n,), generator=g)
        self.y = (self.decoy_y + 1 + torch.randint(9, (n,), generator=g)) % 10  # never the decoy's label
        x = torch.zeros(n, 1, 8, 8)
        x[:, 0, 4, 4] = (255 - 25 * self.y.float()) / 255  # the object codes the true label
        self.decoy = torch.zeros(n, 1, 8, 8, dtype=torch.bool)
        self.decoy[:, :, :2, :2] = True
        x[self.decoy] = ((255 - 25 * self.decoy_y.float()) / 255).repeat_interleave(4)
        self.x = x

    def test_ground_truth_dataloader(self):
        return [{"x": self.x[i:i + 512], "y": self.y[i:i + 512], "decoy": self.decoy[i:i + 512],
                 "decoy_y": self.decoy_y[i:i + 512]} for i in range(0, len(self.x), 512)]


def test_decoy_diagnostics_tell_a_swatch_reader_from_an_object_reader():
    data = _TestSet()
    reader = decoy_diagnostics(_Reader((0, 0)), data, torch.device("cpu"))
    assert reader["test/decoy_agreement"] == 1.0  # always predicts the swatch's label
    assert abs(reader["test/acc_noise_swatch"] - 0.1) < 0.03  # on noise it reads a random class (1 in 10)
    assert reader["test/acc_label_swatch"] == 1.0  # shown its own label's shade, it is always right
    honest = decoy_diagnostics(_Reader((4, 4)), data, torch.device("cpu"))
    assert honest == {"test/decoy_agreement": 0.0, "test/acc_noise_swatch": 1.0, "test/acc_label_swatch": 1.0}


def test_decoy_diagnostics_need_a_decoy():
    class Plain:
        def test_ground_truth_dataloader(self):
            return [{"x": torch.zeros(2, 1, 8, 8), "y": torch.zeros(2, dtype=torch.long)}]

    assert decoy_diagnostics(_Reader((0, 0)), Plain(), torch.device("cpu")) == {}
