"""LIME and its segmentations against references: scikit-learn's Ridge, a loop-by-loop greedy selection
(the ``lime`` package's algorithm), and linear models whose relevant components are known."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import pairwise_distances
from torch import nn

from exil.common.errors import ConfigError
from exil.common.explain.lime import (
    LimeConfig,
    Moments,
    explain_batch,
    explain_features,
    explain_texts,
    explain_tokens,
    forward_selection,
    highest_weights,
    kernel_weights,
    ridge,
    sample_masks,
    vote,
)
from exil.common.explain.segmentation import grid, quickshift, segmenter, slic


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ segmentations
def test_grid_numbers_cells_row_major_and_shrinks_the_last_ones():
    assert grid(3, 5, 2).tolist() == [[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [3, 3, 4, 4, 5]]
    seg = grid(28, 28, 4)
    assert seg.shape == (28, 28) and seg.dtype == torch.long
    assert torch.equal(torch.bincount(seg.flatten()), torch.full((49,), 16))
    assert grid(4, 6, (2, 3)).tolist() == [[0, 0, 0, 1, 1, 1]] * 2 + [[2, 2, 2, 3, 3, 3]] * 2


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", ["slic", "quickshift"])
def test_superpixels_have_the_image_shape_and_consecutive_labels(kind, channels):
    image = torch.rand(channels, 32, 24, generator=gen())
    seg = slic(image, compactness=0.1) if kind == "slic" else quickshift(image, kernel_size=2, max_dist=10)
    assert seg.shape == (32, 24) and seg.dtype == torch.long
    assert torch.equal(seg.unique(), torch.arange(int(seg.max()) + 1)) and seg.max() > 0


def test_segmenter_builds_each_kind_by_name():
    image = torch.rand(3, 16, 16, generator=gen())
    assert torch.equal(segmenter("grid", cell=8)(image), grid(16, 16, 8))
    assert segmenter("slic", n_segments=4)(image).shape == (16, 16)
    with pytest.raises(ConfigError, match="valid: grid, slic, quickshift"):
        segmenter("watershed")


# ------------------------------------------------------------------ perturbations and kernel
def test_count_sampling_switches_off_one_to_all_valid_components():
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    z = sample_masks(valid, 2000, "count", gen())
    assert z[:, 0].all() and z[1, :, 4:].all()  # the instance itself; padding always on
    off = (~z[:, 1:]).sum(-1)
    assert off.min() == 1 and off[0].max() == 6 and off[1].max() == 4
    counts = torch.bincount(off[0], minlength=7)[1:].double()  # uniform in 1..6
    assert (counts / counts.sum() - 1 / 6).abs().max() < 0.03
    assert torch.equal(z, sample_masks(valid, 2000, "count", gen()))
    assert not torch.equal(z, sample_masks(valid, 2000, "count", gen(1)))


def test_bernoulli_sampling_keeps_each_component_with_probability_half():
    z = sample_masks(torch.ones(1, 10, dtype=torch.bool), 4000, "bernoulli", gen())
    assert z[0, 0].all() and abs(z[0, 1:].double().mean() - 0.5) < 0.02


def test_kernel_is_lime_exponential_kernel_on_cosine_distance():
    z = sample_masks(torch.ones(1, 7, dtype=torch.bool), 50, "count", gen())
    z[0, 1] = False  # the all-off sample: distance 1
    d = pairwise_distances(z[0].double().numpy(), np.ones((1, 7)), metric="cosine").ravel()
    expected = np.sqrt(np.exp(-(d**2) / 0.25**2))
    assert np.allclose(kernel_weights(z, torch.ones(1, 7, dtype=torch.bool), 0.25)[0].numpy(), expected)


# ------------------------------------------------------------------ local linear models
def local_data(n_inst=3, n=60, d=6, seed=0):
    g = gen(seed)
    z = (torch.rand(n_inst, n, d, generator=g) < 0.5).double()
    y = z @ torch.randn(d, generator=g, dtype=torch.float64)
    y = y + 0.3 * torch.randn(n_inst, n, generator=g, dtype=torch.float64)
    w = torch.rand(n_inst, n, generator=g, dtype=torch.float64)
    return z, y, w


def test_weighted_ridge_matches_sklearn_with_sample_weight():
    z, y, w = local_data()
    subset = torch.tensor([[0, 2, 5], [1, 2, 3], [4, 0, 1]])
    coef, intercept, r2 = ridge(Moments.of(z, y, w), subset, alpha=1.0)
    for i in range(3):
        cols = z[i][:, subset[i]].numpy()
        ref = Ridge(alpha=1.0).fit(cols, y[i].numpy(), sample_weight=w[i].numpy())
        assert np.allclose(coef[i].numpy(), ref.coef_, atol=1e-8)
        assert np.isclose(intercept[i].item(), ref.intercept_, atol=1e-8)
        assert np.isclose(r2[i].item(), ref.score(cols, y[i].numpy(), sample_weight=w[i].numpy()), atol=1e-8)


def greedy_reference(z, y, w, k):
    """lime's LimeBase.forward_selection: one unregularised sklearn fit per candidate and step."""
    chosen = []
    for _ in range(k):
        scores = {}
        for j in range(z.shape[1]):
            if j not in chosen:
                cols = z[:, chosen + [j]]
                scores[j] = Ridge(alpha=0).fit(cols, y, sample_weight=w).score(cols, y, sample_weight=w)
        chosen.append(max(scores, key=scores.get))
    return chosen


def test_forward_selection_matches_the_greedy_loop():
    z, y, w = local_data(d=8, n=80)
    valid = torch.ones(3, 8, dtype=torch.bool)
    got = forward_selection(Moments.of(z, y, w), 4, valid)
    for i in range(3):
        assert got[i].tolist() == greedy_reference(z[i].numpy(), y[i].numpy(), w[i].numpy(), 4)
    valid[:, 0] = False  # an invalid component is never chosen
    assert not (forward_selection(Moments.of(z, y, w), 4, valid) == 0).any()


def test_highest_weights_are_the_largest_ridge_coefficients():
    z, y, w = local_data(d=8)
    got = highest_weights(Moments.of(z, y, w), 3, torch.ones(3, 8, dtype=torch.bool))
    for i in range(3):
        coef = Ridge(alpha=0.01).fit(z[i].numpy(), y[i].numpy(), sample_weight=w[i].numpy()).coef_
        assert got[i].tolist() == np.argsort(-np.abs(coef))[:3].tolist()


def test_vote_keeps_the_components_chosen_in_most_runs():
    # one instance, three runs choosing {0, 1}, {0, 2}, {1, 0}: 0 three times, 1 twice, 2 once
    selected = torch.tensor([[0, 1], [0, 2], [1, 0]])
    chosen, votes = vote(selected, torch.ones(3, 2), torch.ones(1, 4, dtype=torch.bool), runs=3, k=2)
    assert chosen.tolist() == [[0, 1]] and votes.tolist() == [[3, 2]]
    # a tie in votes goes to the larger summed |β|
    chosen, _ = vote(torch.tensor([[2], [3]]), torch.tensor([[0.1], [0.5]]), torch.ones(1, 4, dtype=torch.bool), 2, 1)
    assert chosen.tolist() == [[3]]


# ------------------------------------------------------------------ images
SEG = grid(28, 28, 4)
RELEVANT = {10: -3.0, 3: 2.0, 20: 1.5}  # segment → weight of its mean intensity


class SegmentLinear(nn.Module):
    """logit_0 = Σ_s w_s · mean intensity of segment s (on the 4-pixel grid), logit_1 = −logit_0."""

    def __init__(self):
        super().__init__()
        w = torch.zeros(49)
        for s, v in RELEVANT.items():
            w[s] = v
        w[40] = 0.3  # a weak fourth component
        self.register_buffer("w", w)

    def forward(self, x):
        sums = torch.zeros(x.shape[0], 49, device=x.device).index_add_(1, SEG.flatten().to(x.device), x.flatten(1))
        means = sums / 16
        s = means @ self.w
        return torch.stack([s, -s], 1)


def images(b=3):
    return 0.5 + 0.5 * torch.rand(b, 1, 28, 28, generator=gen(1))


def test_lime_finds_the_relevant_segments_of_a_linear_model_with_their_signs():
    for selection in ("forward_selection", "highest_weights"):
        e = explain_batch(SegmentLinear(), images(), SEG, LimeConfig(k=3, selection=selection, num_samples=500),
                          target=torch.zeros(3, dtype=torch.long), generator=gen())  # fmt: skip
        assert e.components.tolist() == [[10, 3, 20]] * 3  # ordered by |weight|
        assert (torch.sign(e.weights) == torch.tensor([-1.0, 1.0, 1.0], dtype=e.weights.dtype)).all()
        assert (e.score > 0.7).all() and e.segments.shape == (3, 28, 28)
    assert e.mask().sum((1, 2)).tolist() == [48] * 3  # three 4×4 segments


def test_lime_explains_the_predicted_class_by_default():
    x = images()
    e = explain_batch(SegmentLinear(), x, SEG, LimeConfig(k=3, num_samples=200), generator=gen())
    assert torch.equal(e.target, SegmentLinear()(x).argmax(1))


def test_lime_is_deterministic_under_a_seed():
    cfg = LimeConfig(k=3, num_samples=200)
    a, b = (explain_batch(SegmentLinear(), images(), SEG, cfg, generator=gen(7)) for _ in range(2))
    c = explain_batch(SegmentLinear(), images(), SEG, cfg, generator=gen(8))
    assert torch.equal(a.components, b.components) and torch.equal(a.weights, b.weights)
    assert not torch.equal(a.weights, c.weights)


@pytest.mark.parametrize("repeats", [1, 3])
def test_a_batch_equals_its_instances_explained_one_at_a_time(repeats):
    cfg = LimeConfig(k=3, num_samples=200, batch_size=256, repeats=repeats)
    x = images(3)
    together = explain_batch(SegmentLinear(), x, SEG, cfg, generator=gen())
    stream = gen()  # one stream: the batch draws each instance's perturbations in turn
    for i in range(3):
        alone = explain_batch(SegmentLinear(), x[i : i + 1], SEG, cfg, generator=stream)
        assert torch.equal(alone.components[0], together.components[i])
        assert torch.allclose(alone.weights[0], together.weights[i], atol=1e-6)
        assert torch.allclose(alone.score[0], together.score[i], atol=1e-6)


def test_repeats_vote_over_runs():
    e = explain_batch(SegmentLinear(), images(2), SEG, LimeConfig(k=3, num_samples=300, repeats=4),
                      target=torch.zeros(2, dtype=torch.long), generator=gen())  # fmt: skip
    assert e.components.tolist() == [[10, 3, 20]] * 2 and (e.votes == 4).all()


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return x.flatten(1)[:, :2]


def test_switched_off_segments_take_the_hide_color_or_their_mean_colour():
    x = torch.rand(2, 3, 4, 4, generator=gen())
    seg = grid(4, 4, 2)  # four 2×2 segments
    for hide in (0.25, None):
        rec = Recorder()
        e = explain_batch(rec, x, seg, LimeConfig(k=1, num_samples=20, batch_size=7), hide_color=hide, generator=gen())
        seen = torch.cat(rec.inputs).view(2, 20, 3, 4, 4)
        assert torch.equal(seen[:, 0], x)
        cell_mean = x.view(2, 3, 2, 2, 2, 2).mean((3, 5), keepdim=True).expand(2, 3, 2, 2, 2, 2).reshape(2, 3, 4, 4)
        fill = torch.full_like(x, 0.25) if hide is not None else cell_mean
        kept = seen == x[:, None]
        assert torch.allclose(torch.where(kept, fill[:, None], seen), fill[:, None].expand_as(seen))
        assert e.components.shape == (2, 1)


def test_images_with_different_numbers_of_segments_share_a_batch():
    seg = torch.stack([grid(28, 28, 4), grid(28, 28, 7)])  # 49 and 16 segments
    e = explain_batch(SegmentLinear(), images(2), seg, LimeConfig(k=3, num_samples=300), generator=gen())
    assert e.components[1].max() < 16 and e.components[0].tolist() == [10, 3, 20]


# ------------------------------------------------------------------ features and text
def test_tabular_lime_finds_the_features_of_a_linear_model():
    w = torch.tensor([0.0, 4.0, 0.0, -3.0, 0.0, 0.0, 2.0, 0.0])
    model = nn.Linear(8, 1)
    with torch.no_grad():
        model.weight.copy_(w[None])
        model.bias.zero_()
    x = torch.rand(5, 8, generator=gen()) + 0.5
    base = x.mean(0)
    # y(z) = w·base + Σ_i z_i w_i (x_i − base_i): an unregularised local model recovers it exactly
    e = explain_features(model, x, LimeConfig(k=3, num_samples=400, softmax=False, alpha=0.0), baseline=base,
                         generator=gen())  # fmt: skip
    assert e.components.sort(1).values.tolist() == [[1, 3, 6]] * 5
    expected = (w * (x - base)).gather(1, e.components).double()
    assert torch.allclose(e.weights, expected, atol=1e-6)
    assert torch.allclose(e.intercept, (base @ w).double().expand(5), atol=1e-6)
    assert torch.allclose(e.score, torch.ones(5, dtype=torch.float64), atol=1e-9)


VOCAB = 30
WORD_SCORE = torch.zeros(VOCAB)
WORD_SCORE[[4, 9, 17]] = torch.tensor([3.0, -2.0, 1.0])


def bag_of_words_model(counts):
    s = counts.float() @ WORD_SCORE
    return torch.stack([s, -s], 1)


def test_bag_of_words_lime_explains_the_words_of_each_document():
    docs = torch.zeros(2, VOCAB)
    docs[0, [1, 4, 9, 17, 22, 25]] = 1
    docs[1, [4, 5, 6, 9]] = 1  # 4 words: a shorter document in the same batch
    e = explain_features(bag_of_words_model, docs, LimeConfig(k=2, num_samples=300), valid=docs != 0,
                         target=torch.zeros(2, dtype=torch.long), generator=gen())  # fmt: skip
    assert e.components.tolist() == [[4, 9], [4, 9]]  # vocabulary indices
    assert (e.weights[:, 0] > 0).all() and (e.weights[:, 1] < 0).all()


def test_token_lime_drops_tokens_from_attention_or_masks_them():
    ids = torch.tensor([[2, 4, 7, 9, 0, 0], [9, 3, 17, 4, 8, 1]])
    attention = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    seen = []

    def model(batch):
        seen.append(batch)
        ids, attended = batch["input_ids"], batch["attention_mask"].float()
        counts = torch.zeros(ids.shape[0], VOCAB).scatter_add_(1, ids, attended)
        return bag_of_words_model(counts)

    for mask_id in (None, 0):
        e = explain_tokens(model, ids, attention, LimeConfig(k=2, num_samples=300), mask_token_id=mask_id,
                           target=torch.zeros(2, dtype=torch.long), generator=gen())  # fmt: skip
        assert e.components.tolist() == [[1, 3], [3, 0]]  # token positions of words 4 and 9
        ids_seen, attention_seen = seen[-1]["input_ids"], seen[-1]["attention_mask"]
        same = ids.repeat_interleave(300, 0)
        if mask_id is None:  # dropped tokens leave the attention
            assert torch.equal(ids_seen, same) and (attention_seen <= attention.repeat_interleave(300, 0)).all()
        else:  # masked tokens stay attended
            assert torch.equal(attention_seen, attention.repeat_interleave(300, 0)) and (ids_seen != same).any()


def test_text_lime_on_lists_of_tokens():
    score = {"great": 2.0, "awful": -3.0}

    def model(texts):
        s = torch.tensor([sum(score.get(t, 0.0) for t in text.split()) for text in texts])
        return torch.stack([s, -s], 1)

    texts = [["a", "great", "film", "not", "awful"], ["awful", "plot"]]
    e = explain_texts(model, texts, LimeConfig(k=1, num_samples=200), target=torch.zeros(2, dtype=torch.long),
                      generator=gen())  # fmt: skip
    assert e.components.tolist() == [[4], [0]] and (e.weights < 0).all()


def test_too_few_components_and_bad_settings_are_reported():
    with pytest.raises(ValueError, match="fewer than k=5"):
        explain_texts(lambda t: torch.zeros(len(t), 2), [["one", "two"]], LimeConfig(k=5))
    with pytest.raises(ConfigError, match="forward_selection"):
        LimeConfig(selection="lasso_path")
