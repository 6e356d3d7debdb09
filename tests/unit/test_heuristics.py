"""The acquisition formulas of common/strategies/heuristics.py against hand-computed values."""

import math

import pytest
import torch

from exil.common.strategies import heuristics as H
from exil.common.strategies.badge import gradient_kmeans_pp
from exil.common.strategies.coreset import k_center_greedy

LN2 = math.log(2)


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_entropy_hand_values():
    p = t([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])
    # ln 2; 0 (0·log 0 = 0, no NaN); −(.25 ln .25 + .75 ln .75) = .346574 + .215762 = .562335
    assert torch.allclose(H.entropy(p), t([LN2, 0.0, 0.562335]), atol=1e-6)
    # −(.7 ln .7 + .2 ln .2 + .1 ln .1) = .249672 + .321888 + .230259 = .801819
    assert H.entropy(t([0.7, 0.2, 0.1])).item() == pytest.approx(0.801819, abs=1e-6)


def test_margin_and_least_confidence_hand_values():
    p = t([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0]])
    assert torch.allclose(H.margin(p), t([-0.5, -0.05, 0.0]), atol=1e-6)  # −(p1 − p2)
    assert torch.allclose(H.least_confidence(p), t([0.3, 0.6, 0.5]), atol=1e-6)  # 1 − max p
    # the ranking the names promise: the tie (last row) is the most uncertain by margin
    assert H.margin(p).argmax().item() == 2


def test_bald_hand_values():
    mc = t(
        [  # (T=2, N=4, C=2)
            [[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.9, 0.1]],
            [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]],
        ]
    )
    # agreeing confident: 0 − 0 = 0; disagreeing confident: H(.5,.5) − 0 = ln 2;
    # agreeing uncertain: ln 2 − ln 2 = 0;
    # mixed: H(.7,.3) − (H(.9,.1) + ln 2)/2 = .610864 − (.325083 + .693147)/2 = .101749
    assert torch.allclose(H.bald(mc), t([0.0, LN2, 0.0, 0.101749]), atol=1e-6)


def test_kl_divergence_hand_values():
    p, q = t([0.9, 0.1]), t([0.5, 0.5])
    # .9 ln 1.8 + .1 ln .2 = .529008 − .160944 = .368064
    assert H.kl_divergence(p, q).item() == pytest.approx(0.368064, abs=1e-6)
    assert H.kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-7)
    assert torch.isfinite(H.kl_divergence(t([0.5, 0.5]), t([1.0, 0.0])))  # q = 0: large but finite


def test_min_sq_distances_chunked_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(37, 5, generator=g), torch.randn(23, 5, generator=g)
    brute = torch.cdist(x.double(), c.double()).square().amin(1).float()
    for chunk in (1, 4, 7, 4096):
        assert torch.allclose(H.min_sq_distances(x, c, chunk), brute, atol=1e-4)


def test_knn_chunked_equals_brute_force():
    g = torch.Generator().manual_seed(1)
    q, r = torch.randn(29, 4, generator=g), torch.randn(17, 4, generator=g)
    d_ref, i_ref = torch.cdist(q.double(), r.double()).square().topk(5, dim=1, largest=False)
    for chunk in (1, 3, 6, 4096):
        d, i = H.knn(q, r, 5, chunk)
        assert torch.equal(i, i_ref)
        assert torch.allclose(d, d_ref.float(), atol=1e-4)
    assert H.knn(q, r, 100)[1].shape == (29, 17)  # k is capped at the number of refs


def test_contrastive_scores_hand_example():
    h_l, p_l = t([[0.0, 0.0], [10.0, 0.0]]), t([[0.9, 0.1], [0.1, 0.9]])
    h, p = t([[1.0, 0.0], [9.0, 0.0]]), t([[0.5, 0.5], [0.1, 0.9]])
    # one neighbour: KL([.9,.1] ‖ [.5,.5]) = .368064; KL([.1,.9] ‖ [.1,.9]) = 0
    assert torch.allclose(H.contrastive_scores(h, p, h_l, p_l, 1), t([0.368064, 0.0]), atol=1e-6)
    # two neighbours: (.368064 + KL([.1,.9] ‖ [.5,.5]) = .368064)/2; (0 + .8 ln 9 = 1.757780)/2
    assert torch.allclose(H.contrastive_scores(h, p, h_l, p_l, 2), t([0.368064, 0.878890]), atol=1e-6)
    assert torch.allclose(H.contrastive_scores(h, p, h_l, p_l, 2, chunk_size=1), t([0.368064, 0.878890]), atol=1e-6)


def test_gradient_embedding_factors():
    # p − onehot(argmax p)
    assert torch.allclose(H.gradient_embedding_factors(t([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])),
                          t([[-0.3, 0.2, 0.1], [0.1, 0.3, -0.4]]), atol=1e-7)


def test_gradient_sq_distances_equal_explicit_outer_products():
    g = torch.Generator().manual_seed(2)
    n, m, c, d = 31, 7, 5, 11
    a, h = torch.randn(n, c, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    ac, hc = torch.randn(m, c, generator=g, dtype=torch.float64), torch.randn(m, d, generator=g, dtype=torch.float64)
    explicit = torch.cdist((a[:, :, None] * h[:, None, :]).flatten(1), (ac[:, :, None] * hc[:, None, :]).flatten(1)).square()
    assert torch.allclose(H.gradient_sq_distances(a, h, ac, hc), explicit, atol=1e-9)


def test_badge_first_pick_is_largest_gradient_norm():
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(50, 4, generator=g), -1)
    h = torch.randn(50, 6, generator=g)
    a = H.gradient_embedding_factors(p)
    norms = (a[:, :, None] * h[:, None, :]).flatten(1).norm(dim=1)
    chosen, scores = gradient_kmeans_pp(a, h, 5, torch.Generator().manual_seed(0))
    assert chosen[0] == int(norms.argmax())
    assert scores[0] == pytest.approx(norms.max().item() ** 2, rel=1e-5)
    assert len(set(chosen)) == 5


def test_badge_hand_example_and_fallback():
    # items 0 and 1 are the same gradient (a = [.5,−.5], h = [2]): ‖g‖² = .5·4 = 2, the largest;
    # item 2 (a = [−.5,.5], h = [1]) is at D² = ‖(1,−1) − (−.5,.5)‖² = 4.5 from it, item 1 at 0:
    # the second pick is item 2 with probability 1; the third, every D² being 0, is item 1.
    a, h = t([[0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]]), t([[2.0], [2.0], [1.0]])
    chosen, scores = gradient_kmeans_pp(a, h, 3, torch.Generator().manual_seed(0))
    assert chosen == [0, 2, 1]
    assert scores == pytest.approx([2.0, 4.5, 0.0])


def test_badge_samples_proportional_to_d2():
    # 1-D gradients g = a·h with a = [1], h = [3, 0, 1, 2]: first pick item 0 (norm 3);
    # D² to it = [0, 9, 4, 1] -> second pick ∝ 9 : 4 : 1 over items 1, 2, 3
    a, h = t([[1.0]] * 4), t([[3.0], [0.0], [1.0], [2.0]])
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(4)
    for _ in range(1400):
        counts[gradient_kmeans_pp(a, h, 2, gen)[0][1]] += 1
    assert counts[0] == 0
    assert torch.allclose(counts[1:] / 1400, t([9, 4, 1]) / 14, atol=0.04)


def test_k_center_greedy_hand_example():
    # labelled centre (0,0); candidates a=(1,0) b=(4,0) c=(10,0) d=(10,2).
    # distances to the centre 1, 4, 10, √104 -> d; then a:min(1,√85)=1, b:min(4,√40)=4, c:min(10,2)=2 -> b;
    # then a:min(1,3)=1, c:min(2,6)=2 -> c; then a (1).
    x, centres = t([[1.0, 0.0], [4.0, 0.0], [10.0, 0.0], [10.0, 2.0]]), t([[0.0, 0.0]])
    for chunk in (1, 2, 4096):
        chosen, scores = k_center_greedy(x, centres, 4, torch.Generator().manual_seed(0), chunk)
        assert chosen.tolist() == [3, 1, 2, 0]
        assert torch.allclose(scores, t([math.sqrt(104), 4.0, 2.0, 1.0]), atol=1e-5)


def test_k_center_greedy_chunked_equals_unchunked_and_random_first_centre():
    g = torch.Generator().manual_seed(4)
    x, c = torch.randn(300, 8, generator=g), torch.randn(40, 8, generator=g)
    full = k_center_greedy(x, c, 25, torch.Generator().manual_seed(0), 4096)
    small = k_center_greedy(x, c, 25, torch.Generator().manual_seed(0), 16)
    assert torch.equal(full[0], small[0])
    assert torch.allclose(full[1], small[1], atol=1e-4)
    assert (full[1][:-1] >= full[1][1:] - 1e-5).all()  # greedy distances never grow
    # no labelled set: the first centre comes from the generator, score NaN; same seed, same picks
    one = k_center_greedy(x, None, 10, torch.Generator().manual_seed(7))
    two = k_center_greedy(x, x[:0], 10, torch.Generator().manual_seed(7))
    assert torch.equal(one[0], two[0]) and torch.isnan(one[1][0]) and len(set(one[0].tolist())) == 10
    # duplicates: still never picks an index twice
    dup = k_center_greedy(torch.zeros(5, 2), t([[0.0, 0.0]]), 5, torch.Generator())
    assert sorted(dup[0].tolist()) == [0, 1, 2, 3, 4]


def test_entropy_and_bald_agree_with_baal():
    """Reference values from baal's heuristics where baal is installed (it is not a dependency)."""
    baal = pytest.importorskip("baal.active.heuristics")
    g = torch.Generator().manual_seed(5)
    mc = torch.softmax(3 * torch.randn(6, 40, 7, generator=g, dtype=torch.float64), -1)  # (T, N, C)
    mean = mc.mean(0)
    assert torch.allclose(H.entropy(mean), torch.from_numpy(baal.Entropy().get_uncertainties(mean.numpy())), atol=1e-9)
    baal_bald = baal.BALD().get_uncertainties(mc.permute(1, 2, 0).numpy())  # baal: (N, C, T)
    assert torch.allclose(H.bald(mc), torch.from_numpy(baal_bald), atol=1e-9)
