"""Core-set, BADGE and CAL over compact embeddings (float16 in RAM, a float16 memory map on disk).

References are float64 numpy written here from the definitions (explicit differences, explicit outer
products), not the chunked code under test.
"""

import warnings

import numpy as np
import pytest
import torch

from exil.common.strategies import heuristics as H
from exil.common.strategies.badge import gradient_kmeans_pp
from exil.common.strategies.coreset import k_center_greedy

pytestmark = pytest.mark.xdist_group("test_strategies_compact")  # its module-scoped fixture is built once, in one worker


# ------------------------------------------------------------------ references
def kcenter_reference(x: np.ndarray, centres: np.ndarray, k: int):
    """Greedy k-center in float64, with the margin of every pick over the runner-up."""
    x = x.astype(np.float64)
    d = ((x[:, None, :] - centres.astype(np.float64)[None]) ** 2).sum(-1).min(1)
    chosen, scores, margins = [], [], []
    for _ in range(k):
        order = np.argsort(-d)
        i = int(order[0])
        chosen.append(i)
        scores.append(np.sqrt(d[i]))
        margins.append(np.sqrt(d[order[0]]) - np.sqrt(d[order[1]]))
        d = np.minimum(d, ((x - x[i]) ** 2).sum(1))
        d[i] = -np.inf
    return np.array(chosen), np.array(scores), np.array(margins)


def badge_reference_d2(a: np.ndarray, h: np.ndarray, chosen) -> tuple[int, np.ndarray]:
    """The explicit gradient embeddings g_i = a_i ⊗ h_i: argmax ‖g‖, and each later pick's D² to the picks before it."""
    g = (a.astype(np.float64)[:, :, None] * h.astype(np.float64)[:, None, :]).reshape(len(a), -1)
    d2 = [float((g[chosen[0]] ** 2).sum())]
    for t in range(1, len(chosen)):
        d2.append(float(((g[chosen[:t]] - g[chosen[t]]) ** 2).sum(1).min()))
    return int((g**2).sum(1).argmax()), np.array(d2)


def cal_reference(h, p, h_l, p_l, k):
    h, p, h_l, p_l = (np.asarray(v, dtype=np.float64) for v in (h, p, h_l, p_l))
    dist = np.sqrt(((h[:, None, :] - h_l[None]) ** 2).sum(-1))
    order = np.argsort(dist, axis=1)
    nb = order[:, :k]
    gap = np.take_along_axis(dist, order[:, k : k + 1], 1)[:, 0] - np.take_along_axis(dist, order[:, k - 1 : k], 1)[:, 0]
    kl = (p_l[nb] * (np.log(p_l[nb]) - np.log(p[:, None, :]))).sum(-1)
    return kl.mean(1), gap


def memmap(tmp_path, array: np.ndarray) -> torch.Tensor:
    path = tmp_path / "emb.npy"
    np.save(path, array)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the given NumPy array is not writable": only read here
        return torch.from_numpy(np.load(path, mmap_mode="r"))


# ------------------------------------------------------------------ RowBlocks
def test_row_blocks_float32_is_the_matrix_itself_and_float16_reuses_one_small_buffer():
    x32 = torch.randn(50, 3)
    (only,) = list(H.RowBlocks(x32, block_rows=7))
    assert only[0] == 0 and only[1] is x32
    x16 = x32.half()
    blocks = H.RowBlocks(x16, block_rows=7)
    seen = [(s, b.clone()) for s, b in blocks]
    assert [s for s, _ in seen] == list(range(0, 50, 7)) and blocks._buffer.shape == (7, 3)
    assert all(b.dtype == torch.float32 for _, b in seen)
    assert torch.equal(torch.cat([b for _, b in seen]), x16.float())
    np.testing.assert_allclose(blocks.sq_norms().numpy(), x16.double().square().sum(1).numpy(), rtol=1e-6)


# ------------------------------------------------------------------ core-set
@pytest.fixture(scope="module")
def well_separated():
    """300 points in 16-d with 20 labelled (a seed where the float64 greedy's every pick wins by a margin
    above float16 rounding: asserted below)."""
    g = np.random.default_rng(105)
    x = (g.standard_normal((320, 16)) * 10).astype(np.float32)
    return x[:300], x[300:]


def test_kcenter_float16_and_memmap_select_as_float32_and_score_as_float64(well_separated, tmp_path):
    x, c = well_separated
    k = 30
    ref_idx, ref_scores, margins = kcenter_reference(x.astype(np.float16), c.astype(np.float16), k)
    assert margins.min() > 0.05  # well separated: float16 rounds these 10-scale distances by ~0.01
    gen = torch.Generator
    full = k_center_greedy(torch.from_numpy(x), torch.from_numpy(c), k, gen().manual_seed(0))
    half = k_center_greedy(torch.from_numpy(x).half(), torch.from_numpy(c).half(), k, gen().manual_seed(0),
                           chunk_size=64, block_rows=97)
    mapped = k_center_greedy(memmap(tmp_path, x.astype(np.float16)), torch.from_numpy(c).half(), k,
                             gen().manual_seed(0), chunk_size=64, block_rows=97)
    assert full[0].tolist() == half[0].tolist() == mapped[0].tolist() == ref_idx.tolist()
    assert half[1].dtype == torch.float32 and torch.equal(half[1], mapped[1])
    np.testing.assert_allclose(half[1].numpy(), ref_scores, rtol=1e-5)
    ref32 = kcenter_reference(x, c, k)
    np.testing.assert_allclose(full[1].numpy(), ref32[1], rtol=1e-5)


def test_kcenter_compact_without_labels_draws_the_same_first_centre():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(1)) * 10
    a = k_center_greedy(x, None, 12, torch.Generator().manual_seed(5))
    b = k_center_greedy(x.half(), x[:0].half(), 12, torch.Generator().manual_seed(5), block_rows=64)
    assert torch.equal(a[0], b[0]) and torch.isnan(b[1][0])


# ------------------------------------------------------------------ BADGE
def test_badge_float16_and_memmap_select_as_float32_with_float64_distances(tmp_path):
    g = torch.Generator().manual_seed(2)
    h = torch.randn(600, 12, generator=g) * 3
    p = (torch.randn(600, 4, generator=g) * 2).softmax(-1)
    a = H.gradient_embedding_factors(p)
    k = 15
    full = gradient_kmeans_pp(a, h, k, torch.Generator().manual_seed(9))
    half = gradient_kmeans_pp(a.half(), h.half(), k, torch.Generator().manual_seed(9), block_rows=101)
    mapped = gradient_kmeans_pp(a.half(), memmap(tmp_path, h.half().numpy()), k, torch.Generator().manual_seed(9),
                                block_rows=101)
    assert full[0] == half[0] == mapped[0] and half[1] == mapped[1]
    first, d2 = badge_reference_d2(a.half().float().numpy(), h.half().float().numpy(), half[0])
    assert half[0][0] == first
    np.testing.assert_allclose(half[1], d2, rtol=1e-4)
    np.testing.assert_allclose(full[1], badge_reference_d2(a.numpy(), h.numpy(), full[0])[1], rtol=1e-4)


# ------------------------------------------------------------------ CAL
def test_cal_float16_and_memmap_score_as_float64_and_rank_as_float32(tmp_path):
    g = torch.Generator().manual_seed(0)
    h_l = torch.randn(40, 8, generator=g) * 10
    h = torch.randn(200, 8, generator=g) * 10
    p, p_l = (torch.randn(200, 5, generator=g) * 2).softmax(-1), (torch.randn(40, 5, generator=g) * 2).softmax(-1)
    args16 = (h.half(), p.half(), h_l.half(), p_l.half())
    ref16, gap = cal_reference(*(v.float().numpy() for v in args16), k=3)
    s32 = H.contrastive_scores(h, p, h_l, p_l, 3, chunk_size=64)
    s16 = H.contrastive_scores(*args16, 3, chunk_size=64)
    smap = H.contrastive_scores(memmap(tmp_path, h.half().numpy()), *args16[1:], 3, chunk_size=64)
    assert s16.dtype == torch.float32 and torch.equal(s16, smap)
    np.testing.assert_allclose(s16.numpy(), ref16, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s32.numpy(), cal_reference(h, p, h_l, p_l, 3)[0], rtol=1e-4, atol=1e-6)
    # the top 10 by float16 inputs are the top 10 by float32 ones where the ranking has room for rounding
    top32 = s32.topk(11).values
    assert (top32[:-1] - top32[1:]).min() > 5e-3 and gap[s32.topk(10).indices.numpy()].min() > 0.05
    assert s32.topk(10).indices.tolist() == s16.topk(10).indices.tolist()


# ------------------------------------------------------------------ per-item scores over a big pool
def test_entropy_and_bald_in_blocks_of_items_equal_the_whole_expression(monkeypatch):
    g = torch.Generator().manual_seed(8)
    probs = (torch.randn(1000, 7, generator=g) * 2).softmax(-1)
    mc = (torch.randn(6, 1000, 7, generator=g) * 2).softmax(-1)
    whole_h = -torch.special.xlogy(probs, probs).sum(-1)
    whole_b = -torch.special.xlogy(mc.mean(0), mc.mean(0)).sum(-1) + torch.special.xlogy(mc, mc).sum(-1).mean(0)
    monkeypatch.setattr(H, "ROWS", 97)
    assert torch.equal(H.entropy(probs), whole_h)
    assert torch.equal(H.entropy(mc), -torch.special.xlogy(mc, mc).sum(-1))  # (T, N, C), T < ROWS: one block
    np.testing.assert_allclose(H.bald(mc).numpy(), whole_b.numpy(), atol=1e-6)
    blocked = H.bald(mc)
    monkeypatch.setattr(H, "ROWS", 10**9)  # the whole expression: equal up to the last bit of the mean over passes
    np.testing.assert_allclose(blocked.numpy(), H.bald(mc).numpy(), rtol=1e-6, atol=1e-7)
