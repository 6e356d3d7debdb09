"""What a strategy sees: batched, cached model outputs over the candidate pool.

Every output is computed in batches of ``datamodule.eval_batch_size`` under
``torch.inference_mode`` on ``device`` and kept there, so a heuristic is one
vectorised expression over an (N, C) or (T, N, C) tensor. Outputs are cached for
the stage: a hook's probabilities for its questions and the strategy's scores come from one pass, and
CAL's probabilities and embeddings are computed once.

**Memory.** A pass writes each batch's outputs into one preallocated tensor (never a list of batches
concatenated at the end, which would hold them twice), so scoring a pool streamed from disk needs the
batch plus the outputs kept. Embeddings, the one output that grows with N × d, are kept as ``embeddings``
says: ``float32``, ``float16`` (half the memory; strategies compute on float32 chunks of it), ``disk``
(a float16 memory-mapped file in a temporary folder, removed with the context) or ``auto``: float32 when
it takes at most a quarter of the memory available, else float16 when that does, else disk.

**Sharded across processes.** Under a multi-process run (:mod:`common.distributed`) the outputs named by a
:class:`PoolOutput` (logits, features, both, MC-dropout probabilities) are computed by every rank on its
shard of the items and gathered on rank 0, checked item by item. Shards end on multiples of the batch
size, so every batch — and its MC-dropout masks, seeded from (seed, passes, the batch's position) — is the
one a single process computes: the gathered outputs equal a single process's, bit for bit on the CPU.

Randomness never depends on the order of calls: MC dropout seeds the device RNG from
``(seed, "mc", passes, batch position)`` for each batch, so another call before it (or a cache hit) changes
nothing.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

EMBEDDINGS = ("auto", "float32", "float16", "disk")


@dataclass(frozen=True)
class PoolOutput:
    """A model output per batch that another process can compute (picklable, unlike a closure).

    ``kind``: ``logits`` (B, C) · ``features`` (B, d) · ``features_and_logits`` ((B, d), (B, C)) ·
    ``mc_probs`` (T, B, C): softmax of ``passes`` MC-dropout passes, seeded per batch from ``seed`` and the
    batch's position ``offset`` in the items scored.
    """

    kind: str
    passes: int = 0
    seed: int = 0

    def __call__(self, module, x, offset: int = 0):
        if self.kind == "logits":
            return module(x)
        if self.kind == "features":
            return module.features(x).float()
        if self.kind == "features_and_logits":
            h = module.features(x)
            return h.float(), module.classify(h).float()
        if self.kind == "mc_probs":
            torch.manual_seed(derived_seed(self.seed, f"mc/{self.passes}/{offset}"))
            return module.mc_logits(x, self.passes).float().softmax(-1)
        raise ValueError(f"unknown pool output {self.kind!r}")

    @property
    def item_dim(self) -> int:
        """The axis along which items are stacked (1 for the (T, N, C) MC output)."""
        return 1 if self.kind == "mc_probs" else 0


def map_pool(module, datamodule, indices: np.ndarray, fn: Callable, device: torch.device,
             keep: tuple[str, ...] = (), start: int = 0) -> tuple[tuple[torch.Tensor, ...], np.ndarray]:
    """``fn`` over the model inputs of pool items ``indices``, batch by batch on ``device``, in eval and inference
    mode: the outputs (a tuple, one per output of ``fn``) with items stacked along ``fn.item_dim`` (0 for plain
    callables, called as ``fn(x)``), and the pool index of every item served (``idx`` of the batches, which the
    caller checks against ``indices``). ``keep[i]`` is how output ``i`` is stored (:data:`EMBEDDINGS`; default
    the output's own dtype on ``device``). ``start``: the position of ``indices[0]`` in the whole list of a
    sharded pass (what a :class:`PoolOutput` seeds each batch from)."""
    indices = np.asarray(indices, dtype=np.int64)
    # moved outside inference mode: parameters moved inside it would become inference tensors,
    # which the next round's training cannot use
    module = module.to(device)
    was_training = module.training
    module.eval()
    dim = getattr(fn, "item_dim", 0)
    out: list[torch.Tensor] | None = None
    served = np.empty(len(indices), dtype=np.int64)
    at = 0
    try:
        with torch.inference_mode():
            for batch in datamodule.pool_dataloader(indices):
                x = module.inputs(batch)
                x = x.to(device, non_blocking=True) if torch.is_tensor(x) else _to(x, device)
                y = fn(module, x, start + at) if isinstance(fn, PoolOutput) else fn(x)
                y = y if isinstance(y, tuple) else (y,)
                n = y[0].shape[dim]
                if out is None:
                    out = [_allocate(t, dim, len(indices), keep[i] if i < len(keep) else None)
                           for i, t in enumerate(y)]
                for o, t in zip(out, y):
                    o.narrow(dim, at, n).copy_(t)
                served[at : at + n] = np.asarray(batch["idx"]) if "idx" in batch else indices[at : at + n]
                at += n
    finally:
        module.train(was_training)
    if out is None:  # no items
        return (torch.empty(0, device=device),) * (2 if getattr(fn, "kind", "") == "features_and_logits" else 1), served
    return tuple(out), served


def _allocate(like: torch.Tensor, dim: int, n: int, keep: str | None) -> torch.Tensor:
    shape = list(like.shape)
    shape[dim] = n
    if keep is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    if keep == "auto":
        keep = auto_storage(shape)
    if keep == "float32":
        return torch.empty(shape, dtype=torch.float32, device=like.device)
    if keep == "float16":
        return torch.empty(shape, dtype=torch.float16, device=like.device)
    if keep == "disk":
        return spill(shape)
    raise ValueError(f"embeddings={keep!r}; valid: {', '.join(EMBEDDINGS)}")


def auto_storage(shape: list[int]) -> str:
    """float32 if an output of ``shape`` takes at most a quarter of the available memory, else float16 if that
    does, else disk."""
    need = int(np.prod(shape)) * 4
    budget = _available_bytes() // 4
    return "float32" if need <= budget else "float16" if need // 2 <= budget else "disk"


def _available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3


_SPILLS: list[Path] = []


def spill(shape: list[int]) -> torch.Tensor:
    """A float16 tensor of ``shape`` backed by a memory-mapped file in a fresh temporary folder (pages reach
    the disk, not the process's memory; the folder is removed when the process exits)."""
    folder = Path(tempfile.mkdtemp(prefix="exil-embeddings-"))
    _SPILLS.append(folder)
    array = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float16, shape=tuple(shape))
    return torch.from_numpy(array)


def _remove_spills() -> None:
    for folder in _SPILLS:
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(_remove_spills)


class QueryContext:
    """Model outputs over ``candidates`` (pool indices) and the labelled set.

    Args:
        module: an :class:`~common.modules.base.ExilModule`.
        datamodule: a :class:`~common.data.base.PoolDataModule`.
        candidates: pool indices the strategy may choose from (unlabelled, maybe subsampled).
        device: where the forward passes and the selection run.
        generator: a seeded ``torch.Generator`` on the CPU for any randomness of the strategy.
        seed: the stage's seed, from which MC dropout's masks are derived (None: drawn from ``generator``).
        embeddings: how embeddings are kept (module docstring: ``auto`` | ``float32`` | ``float16`` | ``disk``).
        run_dir: the run's folder, where a strategy may read the run's own files (its initial weights).
    """

    def __init__(self, module, datamodule, candidates: np.ndarray, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None, seed: int | None = None, embeddings: str = "auto",
                 run_dir: Path | str | None = None):
        if embeddings not in EMBEDDINGS:
            from common.errors import ConfigError

            raise ConfigError(f"loop.embeddings={embeddings!r}; valid: {', '.join(EMBEDDINGS)}")
        self.module = module
        self.datamodule = datamodule
        self.candidates = np.asarray(candidates, dtype=np.int64)
        self.device = torch.device(device)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.seed = seed if seed is not None else int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        self.embedding_storage = embeddings
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._cache: dict[tuple, torch.Tensor] = {}

    def subset(self, candidates: np.ndarray) -> "QueryContext":
        """The same model and seed over other candidates (e.g. a strategy's own subsample)."""
        return QueryContext(self.module, self.datamodule, candidates, self.device, self.generator, self.seed,
                            self.embedding_storage, self.run_dir)

    def __len__(self) -> int:
        return len(self.candidates)

    def map(self, indices: np.ndarray, fn: Callable[[Any], torch.Tensor], keep: tuple[str, ...] = ()):
        """``fn`` over the model inputs of the pool items ``indices``, batch by batch on the device, in eval
        and inference mode, stacked along the item axis (the one every pool pass goes through). ``fn`` is a
        :class:`PoolOutput` (sharded across the processes of a multi-process run) or any callable ``fn(x)``
        (computed here). A tuple-valued ``fn`` gives a tuple."""
        from common import distributed

        indices = np.asarray(indices, dtype=np.int64)
        team = distributed.current()
        if team is not None and isinstance(fn, PoolOutput):
            out = team.score(self.module, self.datamodule, indices, fn, self.device, keep)
        else:
            out, served = map_pool(self.module, self.datamodule, indices, fn, self.device, keep)
            check_served(served, indices)
        return out if len(out) > 1 else out[0]

    def _cached(self, key: tuple, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _indices(self, which: str) -> np.ndarray:
        if which == "pool":
            return self.candidates
        if which == "labelled":
            return self.datamodule.labelled_indices
        raise ValueError(f"which must be 'pool' or 'labelled', got {which!r}")

    def logits(self, which: str = "pool") -> torch.Tensor:
        """(N, C) logits."""
        return self._cached(("logits", which), lambda: self.map(self._indices(which), PoolOutput("logits")))

    def probs(self, which: str = "pool") -> torch.Tensor:
        """(N, C) softmax probabilities."""
        return self._cached(("probs", which), lambda: self.logits(which).float().softmax(-1))

    def embeddings(self, which: str = "pool") -> torch.Tensor:
        """(N, d) features (the penultimate layer), kept as ``embeddings`` says (float32, float16 or on disk)."""
        return self._cached(("emb", which), lambda: self.map(self._indices(which), PoolOutput("features"),
                                                              keep=(self.embedding_storage,)))

    def features_and_probs(self, which: str = "pool") -> tuple[torch.Tensor, torch.Tensor]:
        """Features and probabilities from one pass (what BADGE and CAL need)."""
        if ("emb", which) not in self._cache or ("probs", which) not in self._cache:
            h, logits = self.map(self._indices(which), PoolOutput("features_and_logits"),
                                 keep=(self.embedding_storage,))
            self._cache[("emb", which)] = h
            self._cache[("logits", which)] = logits
            self._cache[("probs", which)] = logits.softmax(-1)
        return self._cache[("emb", which)], self._cache[("probs", which)]

    def mc_probs(self, passes: int) -> torch.Tensor:
        """(T, N, C) probabilities of ``passes`` MC-dropout forward passes over the candidates (the dropout masks
        of each batch seeded from (seed, passes, the batch's position))."""
        if self.module.device.type != self.device.type:
            self.module.to(self.device)
        return self._cached(("mc", passes),
                            lambda: self.map(self.candidates, PoolOutput("mc_probs", passes, self.seed)))


def check_served(served: np.ndarray, indices: np.ndarray) -> None:
    """Refuse outputs that are not exactly one per requested item, in order (a loader or a gather that lost,
    repeated or reordered items)."""
    if len(served) != len(indices) or not np.array_equal(served, indices):
        missing = np.setdiff1d(indices, served)
        counts = np.unique(served, return_counts=True)[1] if len(served) else np.zeros(0)
        from common.errors import ExilError

        raise ExilError(f"pool scoring returned {len(served)} outputs for {len(indices)} items "
                        f"({len(missing)} never scored, {int((counts > 1).sum())} scored more than once, "
                        f"order {'kept' if len(served) == len(indices) and not len(missing) else 'lost'})")


def derived_seed(seed: int, name: str) -> int:
    """A 31-bit seed that depends only on ``seed`` and ``name``."""
    h = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def _to(x, device):
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to(v, device) for v in x)
    return x.to(device) if torch.is_tensor(x) else x
