"""SEALS: similarity search for efficient active learning (Coleman et al. 2022, AAAI, §3 and Algorithm 1).

Scoring every unlabelled item of a huge pool each round costs O(N) forward passes and selection work.
SEALS restricts the candidates to the neighbourhood of what is labelled:

1. Embed the whole pool once with a fixed embedding ``G`` and build a nearest-neighbour index over it
   (§3; the paper embeds with a pretrained network fixed for the whole run, and searches an approximate
   index).
2. Keep the candidate pool ``P_r = ⋃_{x ∈ L_r} kNN(x) \\ L_r``: the ``neighbours`` (k, paper: 100)
   nearest items of every labelled item, less the labelled ones.
3. Each round, run the base strategy ``A`` (entropy by default; the paper pairs SEALS with max-entropy
   sampling among others) on ``P_r`` only, label its choice, and grow ``P_{r+1}`` with the neighbours of
   the *new* labelled items alone (Algorithm 1): the per-round cost is O(|new labels| · k) index queries + ``A`` on ``|P_r|``
   ≤ |L_r|·k items, independent of N.

Here ``G`` is the model's own ``features`` with the run's **initial** weights (``checkpoints/init.pt``,
loaded hash-checked through the journal, as ALICE's ``strategy.encoder=initial``), so the index does
not depend on which round a process started in: a run killed and resumed in a fresh process rebuilds the
same index (it is not persisted) and the same candidates (the union is order-free; every neighbour list
is re-ranked in float64 from the stored vectors, so it does not depend on how FAISS batched the
queries). Where the context has no run folder (unit tests, benchmarks) ``G`` is the module as given at
the first call (documented; build a fresh strategy object to re-embed).

Indexes (FAISS, ``pip install faiss-cpu`` or ``pip install 'exil[scale]'``): ``flat`` (exact, the
default), ``hnsw`` (graph, built single-threaded so that the graph is the same in every process) and
``ivf`` (inverted lists, k-means trained on a seeded sample). ``metric``: ``cosine`` (rows normalised,
inner product) or ``l2``. Memory: the index (N × d float32, e.g. 512 MB for 1M × 128) + two N-byte masks;
the pool is embedded in blocks, never held twice.

When fewer than the requested items are left in the restriction (e.g. before any label), the base
strategy gets the full candidates instead, with a logged note.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from exil.common.errors import ConfigError
from exil.common.strategies.base import QueryStrategy, Selection
from exil.common.strategies.context import QueryContext

log = logging.getLogger(__name__)

INDEXES = ("flat", "hnsw", "ivf")
METRICS = ("cosine", "l2")


def import_faiss():
    """FAISS, or a :class:`ConfigError` saying how to install it."""
    try:
        import faiss
    except ImportError as e:
        raise ConfigError("strategy=seals needs FAISS for its nearest-neighbour index: pip install faiss-cpu "
                          f"(or pip install 'exil[scale]', the scale extra) [{e}]") from None
    return faiss


class SEALS(QueryStrategy):
    """A base strategy over the labelled set's nearest neighbours only (module docstring).

    Args:
        base: the strategy run on the restricted candidates (default: :class:`~exil.common.strategies.uncertainty.Entropy`).
        neighbours: k, the neighbours of each labelled item that join the candidates (paper: 100).
        index: ``flat`` (exact) | ``hnsw`` | ``ivf``.
        metric: ``cosine`` | ``l2``.
        hnsw_m: HNSW's graph degree M. ``hnsw_ef_search``: its search breadth (at least k + ``rerank_extra``).
        ivf_lists: IVF's number of lists (None: √N, at most N/39). ``ivf_probe``: the lists searched per query.
        embed_rows: pool items embedded per block while the index is built.
        rerank_extra: neighbours fetched beyond k and re-ranked exactly in float64 (makes each neighbour list
            independent of FAISS's batching; ties broken by the lower pool index).
    """

    name = "seals"

    def __init__(self, base: QueryStrategy | None = None, neighbours: int = 100, index: str = "flat",
                 metric: str = "cosine", hnsw_m: int = 32, hnsw_ef_search: int = 256, ivf_lists: int | None = None,
                 ivf_probe: int = 16, embed_rows: int = 65536, rerank_extra: int = 16):
        if neighbours < 1:
            raise ConfigError(f"strategy.neighbours={neighbours}: SEALS needs at least one neighbour (paper: 100)")
        if index not in INDEXES:
            raise ConfigError(f"strategy.index={index!r}; valid: {', '.join(INDEXES)}")
        if metric not in METRICS:
            raise ConfigError(f"strategy.metric={metric!r}; valid: {', '.join(METRICS)}")
        if base is None:
            from exil.common.strategies.uncertainty import Entropy

            base = Entropy()
        self.base = base
        self.neighbours, self.index_kind, self.metric = neighbours, index, metric
        self.hnsw_m, self.hnsw_ef_search = hnsw_m, hnsw_ef_search
        self.ivf_lists, self.ivf_probe = ivf_lists, ivf_probe
        self.embed_rows, self.rerank_extra = embed_rows, rerank_extra
        self._index: Any = None
        self._key: tuple | None = None
        self._near: np.ndarray | None = None  # pool mask: in some labelled item's k nearest neighbours
        self._seen: np.ndarray | None = None  # pool mask: labelled items whose neighbours are in _near
        #: what the last call did: restricted candidates, whether it fell back, where the embedding came from
        self.last: dict[str, Any] = {}

    @property
    def needs(self):
        return getattr(self.base, "needs", ())

    # ------------------------------------------------------------------ selection
    def select(self, ctx: QueryContext, k: int) -> Selection:
        self.prepare(ctx)
        start = time.perf_counter()
        self._grow(ctx.datamodule.labelled_indices)
        restricted = ctx.candidates[self._near[ctx.candidates]]
        self.last.update(restricted=len(restricted), grow_seconds=time.perf_counter() - start,
                         fallback=len(restricted) < k)
        if len(restricted) < k:
            log.info("SEALS: %d candidates near the labelled set, fewer than the %d asked for: %s runs on all %d "
                     "candidates this round", len(restricted), k, type(self.base).__name__, len(ctx.candidates))
            return self.base.select(ctx, k)
        return self.base.select(ctx.subset(restricted), k)

    def restricted(self, labelled: np.ndarray) -> np.ndarray:
        """The sorted pool indices near ``labelled`` (after :meth:`prepare`): ``⋃ kNN(x) \\ labelled``."""
        self._grow(np.asarray(labelled, dtype=np.int64))
        near = self._near.copy()
        near[np.asarray(labelled, dtype=np.int64)] = False
        return np.flatnonzero(near)

    # ------------------------------------------------------------------ the index
    def prepare(self, ctx: QueryContext) -> None:
        """Embed the pool and build the index, once per pool (a new data module or run folder starts over)."""
        dm = ctx.datamodule
        dm.setup()
        run_dir = getattr(ctx, "run_dir", None)
        key = (id(dm), len(dm.pool), None if run_dir is None else str(run_dir))
        if self._index is not None and key == self._key:
            return
        faiss = import_faiss()
        start = time.perf_counter()
        encoder, source = self._encoder(ctx)
        n = len(dm.pool)
        embed = _Embedder(encoder, ctx, self.metric)
        index = None
        for lo in range(0, n, self.embed_rows):
            block = embed(np.arange(lo, min(n, lo + self.embed_rows)))
            if index is None:
                index = self._new_index(faiss, block.shape[1], n, embed)
            index.add(block)
        if index is None:
            raise ConfigError("strategy=seals: the pool is empty")
        if self.index_kind == "ivf":
            index.make_direct_map()  # reconstruct() of stored vectors, for the queries and the re-ranking
        self._index, self._key = index, key
        self._near, self._seen = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        self.last = {"index_seconds": time.perf_counter() - start, "embedding": source, "pool": n}
        log.info("SEALS: %s index over %d items (%s), built in %.1f s", self.index_kind, n, source,
                 self.last["index_seconds"])

    def _new_index(self, faiss, d: int, n: int, embed: "_Embedder"):
        ip = self.metric == "cosine"
        metric = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
        if self.index_kind == "flat":
            return faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
        if self.index_kind == "hnsw":
            index = _SingleThreadedAdd(faiss, faiss.IndexHNSWFlat(d, self.hnsw_m, metric))
            index.inner.hnsw.efSearch = max(self.hnsw_ef_search, self.neighbours + self.rerank_extra + 1)
            return index
        lists = self.ivf_lists or max(1, min(int(np.sqrt(n)), n // 39))  # FAISS wants ≥ 39 points per list
        quantizer = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, lists, metric)
        sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, 64 * lists), replace=False))
        index.train(embed(sample))  # FAISS's k-means is seeded (1234): the same lists in every process
        index.nprobe = min(self.ivf_probe, lists)
        return index

    def _encoder(self, ctx: QueryContext):
        """The fixed embedding's module: the run's initial weights if the context names a run folder."""
        run_dir = getattr(ctx, "run_dir", None)
        if run_dir is not None and (Path(run_dir) / "journal.sqlite").exists():
            from exil.common.journal import recorded_hash
            from exil.common.run_folder import load_checkpoint, load_module_state

            run_dir = Path(run_dir)
            ckpt = load_checkpoint(run_dir / "checkpoints" / "init.pt", recorded_hash(run_dir / "journal.sqlite", "init.pt"),
                                   context="the initial weights strategy=seals embeds the pool with")
            encoder = _detached_copy(ctx.module)
            load_module_state(encoder, ckpt)
            return encoder.eval().requires_grad_(False), f"initial weights, {run_dir / 'checkpoints' / 'init.pt'}"
        return ctx.module, "the module as given at the first selection (no run folder)"

    # ------------------------------------------------------------------ neighbours
    def _grow(self, labelled: np.ndarray) -> None:
        """Add the k nearest neighbours of the labelled items not seen yet to the candidate mask."""
        labelled = np.asarray(labelled, dtype=np.int64)
        new = np.unique(labelled[~self._seen[labelled]])
        for lo in range(0, len(new), 1024):
            group = new[lo : lo + 1024]
            self._near[self._knn(group).ravel()] = True
            self._seen[group] = True

    def _knn(self, items: np.ndarray) -> np.ndarray:
        """(len(items), k) nearest other pool items of ``items``, re-ranked exactly (float64, ties by index)."""
        index, k = self._index, self.neighbours
        queries = index.reconstruct_batch(items)
        fetch = min(index.ntotal, k + 1 + self.rerank_extra)
        _, ids = index.search(queries, fetch)
        found = ids >= 0
        vectors = index.reconstruct_batch(np.where(found, ids, 0).ravel()).reshape(*ids.shape, -1)
        dist = ((vectors.astype(np.float64) - queries.astype(np.float64)[:, None, :]) ** 2).sum(-1)
        dist[~found | (ids == items[:, None])] = np.inf  # the item itself is not its own neighbour
        order = np.lexsort((ids, dist), axis=-1)[:, :k]
        best = np.take_along_axis(ids, order, 1)
        keep = np.isfinite(np.take_along_axis(dist, order, 1))
        return np.where(keep, best, items[:, None])  # a pool smaller than k + 1: pad with the item (labelled)


class _Embedder:
    """The fixed embedding of pool items: float32 rows (L2-normalised for ``cosine``), C-contiguous for FAISS."""

    def __init__(self, encoder, ctx: QueryContext, metric: str):
        from exil.common.strategies import context

        self.ctx = QueryContext(encoder, ctx.datamodule, np.empty(0, dtype=np.int64), ctx.device,
                                ctx.generator, ctx.seed)
        self.encoder, self.metric = encoder, metric
        # PoolOutput (where the context has it) is scored across the processes of a multi-process run
        output = getattr(context, "PoolOutput", None)
        self.fn = output("features") if output is not None else (lambda x: encoder.features(x).float())

    def __call__(self, items: np.ndarray) -> np.ndarray:
        h = np.ascontiguousarray(self.ctx.map(items, self.fn).float().cpu().numpy(), dtype=np.float32)
        if self.metric == "cosine":
            h /= np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
        return h


class _SingleThreadedAdd:
    """An HNSW index whose ``add`` runs on one thread: FAISS's parallel insertion builds a different graph in
    every process, one thread builds the same one (slower to build; searches stay parallel)."""

    def __init__(self, faiss, inner):
        self.faiss, self.inner = faiss, inner

    def add(self, x: np.ndarray) -> None:
        threads = self.faiss.omp_get_max_threads()
        self.faiss.omp_set_num_threads(1)
        try:
            self.inner.add(x)
        finally:
            self.faiss.omp_set_num_threads(threads)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _detached_copy(module):
    """A deep copy of ``module`` without the Lightning trainer it may be attached to."""
    trainer = getattr(module, "_trainer", None)
    return copy.deepcopy(module, {id(trainer): None} if trainer is not None else {})
