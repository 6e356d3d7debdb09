"""Acquisition heuristics: pure, vectorised functions of model outputs (baal-style).

Each function takes tensors on any device and returns tensors on the same device:
one score per item (higher = more useful to label) or the geometric quantity a
set-based strategy needs (distances, nearest neighbours). Nothing here touches a
model or a data set, so every formula can be tested alone against hand-computed
values. Logarithms are natural (scores in nats).

Functions whose memory would grow as N·M (pool × labelled) work in blocks of
``chunk_size`` rows and columns, so they never hold more than ``chunk_size²``
distances at once.

Big pools keep their (N, d) embeddings compact: float16, or a read-only memory map of a file on disk
(``torch.from_numpy(np.load(path, mmap_mode="r"))``). The set-based functions (core-set, BADGE, CAL)
read such a matrix through :class:`RowBlocks`: ``block_rows`` rows at a time, converted to float32
into one reused buffer, so their extra memory is O(N) + O(block_rows × d) and a full float32 copy is
never made. A float32 (or float64) matrix is read as one block, the matrix itself: the small in-RAM
path is the plain vectorised expression, unchanged.
"""

from __future__ import annotations

import torch

#: items per block of a per-item score over a big pool: its temporaries are O(ROWS · C), not O(N · C)
ROWS = 65536


def entropy(probs: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Predictive entropy ``H(p) = −Σ_c p_c log p_c`` with ``0 · log 0 = 0`` (Shannon 1948).

    Over more than :data:`ROWS` items (the first axis, when it is not the one summed) it runs in blocks of
    items, so the ``p log p`` temporary never has the pool's size; every item's value is the same."""
    d = dim % probs.dim() if probs.dim() else 0
    if probs.dim() < 2 or d == 0 or len(probs) <= ROWS:
        return -torch.special.xlogy(probs, probs).sum(dim)
    out = probs.new_empty(probs.shape[:d] + probs.shape[d + 1 :])
    for i in range(0, len(probs), ROWS):
        block = probs[i : i + ROWS]
        out[i : i + ROWS] = -torch.special.xlogy(block, block).sum(dim)
    return out


def margin(probs: torch.Tensor) -> torch.Tensor:
    """Breaking ties (Scheffer et al. 2001): ``−(p_(1) − p_(2))``, the negated gap between the two most likely classes."""
    top = probs.topk(2, dim=-1).values
    return top[..., 1] - top[..., 0]


def least_confidence(probs: torch.Tensor) -> torch.Tensor:
    """Least confidence (Lewis & Gale 1994): ``1 − max_c p_c``."""
    return 1.0 - probs.amax(-1)


def bald(mc_probs: torch.Tensor) -> torch.Tensor:
    """BALD (Houlsby et al. 2011; Gal et al. 2017, eq. 4) from (T, N, C) MC-dropout probabilities.

    ``I[y; ω | x] ≈ H(1/T Σ_t p_t) − 1/T Σ_t H(p_t)``: the entropy of the mean prediction minus the
    mean entropy of the passes; zero when all passes agree, large when confident passes disagree.
    In blocks of :data:`ROWS` items over a big pool (no (T, N, C) temporary besides the input); the blocked
    mean over passes may round differently from the whole one (last bit), the expression is the same.
    """
    n = mc_probs.shape[1]
    if n <= ROWS:
        return entropy(mc_probs.mean(0)) - entropy(mc_probs).mean(0)
    out = mc_probs.new_empty(mc_probs.shape[1:-1])
    for i in range(0, n, ROWS):
        block = mc_probs[:, i : i + ROWS]
        out[i : i + ROWS] = entropy(block.mean(0)) - entropy(block).mean(0)
    return out


def kl_divergence(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``KL(p ‖ q) = Σ_c p_c (log p_c − log q_c)``, with ``0 · log 0 = 0`` and ``q`` clamped at the smallest normal float."""
    log_q = q.clamp_min(torch.finfo(q.dtype).tiny).log()
    return (torch.special.xlogy(p, p) - p * log_q).sum(dim)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the arithmetic on ``x`` runs in: its own if float32 / float64, else float32 (float16, bfloat16)."""
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


class RowBlocks:
    """The rows of an (N, d) matrix as blocks in :func:`compute_dtype`, for one pass over them after another.

    A float32 / float64 matrix is one block, itself (no copy, no loop). Any other (float16, or a float16
    memory map) is read ``block_rows`` rows at a time into one reused float32 buffer on ``x.device``: each
    block yielded is valid until the next one is read. Extra memory: ``block_rows × d`` floats.
    """

    def __init__(self, x: torch.Tensor, block_rows: int = 32768):
        if block_rows < 1:
            raise ValueError(f"block_rows must be at least 1, got {block_rows}")
        self.x = x
        self.dtype = compute_dtype(x)
        self.direct = x.dtype == self.dtype
        self.block_rows = max(len(x), 1) if self.direct else block_rows
        self._buffer: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)

    def __iter__(self):
        """``(start, block)`` pairs: ``block`` holds rows ``start : start + len(block)``."""
        if self.direct:
            yield 0, self.x
            return
        for start in range(0, len(self.x), self.block_rows):
            rows = self.x[start : start + self.block_rows]
            if self._buffer is None:
                self._buffer = torch.empty((min(self.block_rows, len(self.x)), *self.x.shape[1:]),
                                           dtype=self.dtype, device=self.x.device)
            block = self._buffer[: len(rows)]
            block.copy_(rows)
            yield start, block

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows ``index`` (a 1-d long tensor) in the compute dtype (a small copy)."""
        return self.x.index_select(0, index.to(self.x.device)).to(self.dtype)

    def sq_norms(self) -> torch.Tensor:
        """(N,) ``‖x_i‖²`` in the compute dtype, block by block."""
        if self.direct:
            return sq_norms(self.x)
        out = torch.empty(len(self.x), dtype=self.dtype, device=self.x.device)
        for start, block in self:
            out[start : start + len(block)] = sq_norms(block)
        return out


def sq_norms(x: torch.Tensor) -> torch.Tensor:
    """``‖x_i‖²`` of every row, without an (n, d) temporary."""
    return torch.linalg.vector_norm(x, dim=1).square_()


def sq_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(n, m) squared Euclidean distances ``‖x_i − c_j‖² = ‖x_i‖² + ‖c_j‖² − 2 x_i·c_j``, clamped at 0."""
    return torch.addmm(sq_norms(c), x, c.T, alpha=-2.0).add_(sq_norms(x)[:, None]).clamp_min_(0.0)


def min_sq_distances(x: torch.Tensor, centres: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """``min_j ‖x_i − c_j‖²`` for every row of ``x``, in ``chunk_size × chunk_size`` blocks (memory O(chunk²), not O(N·M))."""
    out = torch.full((len(x),), float("inf"), dtype=x.dtype, device=x.device)
    for i in range(0, len(x), chunk_size):
        rows = out[i : i + chunk_size]
        for j in range(0, len(centres), chunk_size):
            torch.minimum(rows, sq_distances(x[i : i + chunk_size], centres[j : j + chunk_size]).amin(1), out=rows)
    return out


def knn(queries: torch.Tensor, refs: torch.Tensor, k: int, chunk_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest ``refs`` of every query (Euclidean): squared distances and indices, both (n, k), nearest first.

    Blocks of ``chunk_size`` queries × ``chunk_size`` refs; the running best ``k`` of a block of
    queries are merged with each block of refs, so memory is O(chunk · (chunk + k)).
    """
    k = min(k, len(refs))
    dists, idxs = [], []
    for i in range(0, len(queries), chunk_size):
        q = queries[i : i + chunk_size]
        best_d = q.new_empty((len(q), 0))
        best_i = torch.empty((len(q), 0), dtype=torch.long, device=q.device)
        for j in range(0, len(refs), chunk_size):
            block = refs[j : j + chunk_size]
            d = torch.cat([best_d, sq_distances(q, block)], dim=1)
            cols = torch.arange(j, j + len(block), device=q.device).expand(len(q), -1)
            best_d, pos = d.topk(min(k, d.shape[1]), dim=1, largest=False, sorted=True)
            best_i = torch.cat([best_i, cols], dim=1).gather(1, pos)
        dists.append(best_d)
        idxs.append(best_i)
    return torch.cat(dists), torch.cat(idxs)


def contrastive_scores(
    features: torch.Tensor,
    probs: torch.Tensor,
    labelled_features: torch.Tensor,
    labelled_probs: torch.Tensor,
    neighbours: int = 10,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """CAL (Margatina et al. 2021, eq. 1): ``s(x) = 1/k Σ_{j ∈ kNN(x)} KL(p(y|x_j^l) ‖ p(y|x))``.

    ``kNN(x)`` are the ``neighbours`` labelled items nearest to ``x`` in feature space (Euclidean),
    and ``p(y|x_j^l)`` is the *model's* prediction on a labelled neighbour, as in the authors' code.
    Computed in blocks of ``chunk_size`` candidates (see :func:`knn`); compact inputs (float16, a memory
    map) are converted to float32 one block at a time (the labelled side, small, at once), so the extra
    memory is O(N) + O(chunk_size × (d + k·C)). The scores are float32 (float64 for float64 inputs).
    """
    dtype = compute_dtype(features)
    labelled_features, labelled_probs = labelled_features.to(dtype), labelled_probs.to(dtype)
    out = []
    for i in range(0, len(features), chunk_size):
        _, nb = knn(features[i : i + chunk_size].to(dtype), labelled_features, neighbours, chunk_size)
        p_nb = labelled_probs[nb]  # (b, k, C)
        out.append(kl_divergence(p_nb, probs[i : i + chunk_size, None, :].to(dtype)).mean(1))
    return torch.cat(out) if out else probs.new_empty(0, dtype=dtype)


def gradient_embedding_factors(probs: torch.Tensor) -> torch.Tensor:
    """``a_i = p_i − onehot(ŷ_i)``, ``ŷ_i = argmax p_i`` (BADGE, Ash et al. 2020, §3).

    The gradient of the cross-entropy at the predicted label w.r.t. the last linear layer is
    ``g_i = a_i ⊗ h_i`` with ``h_i`` the penultimate features; BADGE never needs ``g`` itself.
    """
    return probs.scatter_add(-1, probs.argmax(-1, keepdim=True), -torch.ones_like(probs[..., :1]))


def gradient_sq_distances(
    a: torch.Tensor,
    h: torch.Tensor,
    a_c: torch.Tensor,
    h_c: torch.Tensor,
    g_sq: torch.Tensor | None = None,
) -> torch.Tensor:
    """(n, m) squared distances between gradient embeddings ``a_i ⊗ h_i`` and centres ``a_c ⊗ h_c``, never built.

    ``‖a_i⊗h_i − a_j⊗h_j‖² = ‖a_i‖²‖h_i‖² + ‖a_j‖²‖h_j‖² − 2 (a_i·a_j)(h_i·h_j)``, i.e. O(n·m·(C + d))
    instead of O(n·m·C·d). ``g_sq`` (= ``‖a_i‖²‖h_i‖²``) may be passed when it is reused.
    """
    if g_sq is None:
        g_sq = sq_norms(a) * sq_norms(h)
    gc_sq = sq_norms(a_c) * sq_norms(h_c)
    return (g_sq[:, None] + gc_sq[None, :] - 2.0 * (a @ a_c.T) * (h @ h_c.T)).clamp_min_(0.0)
