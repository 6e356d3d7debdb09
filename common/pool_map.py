"""One pass of a model over pool items, batch by batch: what every strategy's outputs and every
multi-process shard are computed with.

**Memory.** A pass writes each batch's outputs into one preallocated tensor (never a list of batches
concatenated at the end, which would hold them twice), so scoring a pool streamed from disk needs the
batch plus the outputs kept. Embeddings, the one output that grows with N × d, are kept as ``embeddings``
says: ``float32``, ``float16`` (half the memory; strategies compute on float32 chunks of it), ``disk``
(a float16 memory-mapped file in a temporary folder, removed with the context) or ``auto``: float32 when
it takes at most a quarter of the memory available, else float16 when that does, else disk.

**Sharded across processes.** Under a multi-process run (:mod:`exil.common.distributed`) the outputs named by a
:class:`PoolOutput` (logits, features, both, MC-dropout probabilities) are computed by every rank on its
shard of the items and gathered on rank 0, checked item by item. Shards end on multiples of the batch
size, so every batch — and its MC-dropout masks, seeded from (seed, passes, the batch's position) — is the
one a single process computes: the gathered outputs equal a single process's, bit for bit on the CPU.

MC dropout's masks are drawn from a forked RNG seeded from ``(seed, "mc", passes, batch position)`` per batch:
the global generator is left as it was, and another call before it (or a cache hit) changes nothing.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from exil.common.errors import ExilError
from exil.common.loop_config import EMBEDDINGS  # noqa: F401 - where callers find it


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
            devices = [x.device] if torch.is_tensor(x) and x.is_cuda else []
            with torch.random.fork_rng(devices=devices):  # the caller's generator is left as it was
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
                    out = [allocate(t, dim, len(indices), keep[i] if i < len(keep) else None)
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


def allocate(like: torch.Tensor, dim: int, n: int, keep: str | None) -> torch.Tensor:
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


def check_served(served: np.ndarray, indices: np.ndarray) -> None:
    """Refuse outputs that are not exactly one per requested item, in order (a loader or a gather that lost,
    repeated or reordered items)."""
    if len(served) != len(indices) or not np.array_equal(served, indices):
        missing = np.setdiff1d(indices, served)
        counts = np.unique(served, return_counts=True)[1] if len(served) else np.zeros(0)

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
