"""What a strategy sees: batched, cached model outputs over the candidate pool.

Every output is computed in batches of ``datamodule.eval_batch_size`` under
``torch.inference_mode`` on ``device`` and kept there, so a heuristic is one
vectorised expression over an (N, C) or (T, N, C) tensor. Outputs are cached for
the stage: a hook's probabilities for its questions and the strategy's scores come from one pass, and
CAL's probabilities and embeddings are computed once.

Every pass goes through :func:`~exil.common.pool_map.map_pool` (its memory and storage of embeddings are
described there), or through the ``scorer`` the run gives the context: in a multi-process run, its
:class:`~exil.common.distributed.Team`, which shards the pass over every process (:mod:`exil.common.pool_map`).

Randomness never depends on the order of calls: MC dropout seeds the device RNG from
``(seed, "mc", passes, batch position)`` for each batch, so another call before it (or a cache hit) changes
nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from exil.common.errors import ConfigError
from exil.common.pool_map import EMBEDDINGS, PoolOutput, check_served, map_pool


class QueryContext:
    """Model outputs over ``candidates`` (pool indices) and the labelled set.

    Args:
        module: an :class:`~exil.common.modules.base.ExilModule`.
        datamodule: a :class:`~exil.common.data.base.PoolDataModule`.
        candidates: pool indices the strategy may choose from (unlabelled, maybe subsampled).
        device: where the forward passes and the selection run.
        generator: a seeded ``torch.Generator`` on the CPU for any randomness of the strategy.
        seed: the stage's seed, from which MC dropout's masks are derived (None: drawn from ``generator``).
        embeddings: how embeddings are kept (module docstring: ``auto`` | ``float32`` | ``float16`` | ``disk``).
        run_dir: the run's folder, where a strategy may read the run's own files (its initial weights).
        scorer: what computes a :class:`~exil.common.pool_map.PoolOutput` pass instead of this process alone:
            the run's :class:`~exil.common.distributed.Team` in a multi-process run (its ``score`` shards the
            pass over every process and gathers it here); None: this process.
    """

    def __init__(self, module, datamodule, candidates: np.ndarray, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None, seed: int | None = None, embeddings: str = "auto",
                 run_dir: Path | str | None = None, scorer: Any = None):
        if embeddings not in EMBEDDINGS:
            raise ConfigError(f"loop.embeddings={embeddings!r}; valid: {', '.join(EMBEDDINGS)}")
        self.module = module
        self.datamodule = datamodule
        self.candidates = np.asarray(candidates, dtype=np.int64)
        self.device = torch.device(device)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.seed = seed if seed is not None else int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        self.embedding_storage = embeddings
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.scorer = scorer
        self._cache: dict[tuple, torch.Tensor] = {}

    def subset(self, candidates: np.ndarray) -> "QueryContext":
        """The same model and seed over other candidates (e.g. a strategy's own subsample)."""
        return QueryContext(self.module, self.datamodule, candidates, self.device, self.generator, self.seed,
                            self.embedding_storage, self.run_dir, self.scorer)

    def __len__(self) -> int:
        return len(self.candidates)

    def map(self, indices: np.ndarray, fn: Callable[[Any], torch.Tensor], keep: tuple[str, ...] = ()):
        """``fn`` over the model inputs of the pool items ``indices``, batch by batch on the device, in eval
        and inference mode, stacked along the item axis (the one every pool pass goes through). ``fn`` is a
        :class:`PoolOutput` (sharded across the processes of a multi-process run) or any callable ``fn(x)``
        (computed here). A tuple-valued ``fn`` gives a tuple."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.scorer is not None and isinstance(fn, PoolOutput):
            out = self.scorer.score(self.module, self.datamodule, indices, fn, self.device, keep)
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
