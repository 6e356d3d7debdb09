"""What a strategy sees: batched, cached model outputs over the candidate pool.

Every output is computed in batches of ``datamodule.eval_batch_size`` under
``torch.inference_mode`` on ``device`` and kept there, so a heuristic is one
vectorised expression over an (N, C) or (T, N, C) tensor. Outputs are cached for
the stage: a hook's probabilities for its questions and the strategy's scores come from one pass, and
CAL's probabilities and embeddings are computed once.

Randomness never depends on the order of calls: MC dropout seeds the device RNG from
``(seed, "mc", passes)`` each time it computes, so another call before it (or a cache hit) changes nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

import numpy as np
import torch


class QueryContext:
    """Model outputs over ``candidates`` (pool indices) and the labelled set.

    Args:
        module: an :class:`~common.modules.base.ExilModule`.
        datamodule: a :class:`~common.data.base.PoolDataModule`.
        candidates: pool indices the strategy may choose from (unlabelled, maybe subsampled).
        device: where the forward passes and the selection run.
        generator: a seeded ``torch.Generator`` on the CPU for any randomness of the strategy.
        seed: the stage's seed, from which MC dropout's masks are derived (None: drawn from ``generator``).
    """

    def __init__(self, module, datamodule, candidates: np.ndarray, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None, seed: int | None = None):
        self.module = module
        self.datamodule = datamodule
        self.candidates = np.asarray(candidates, dtype=np.int64)
        self.device = torch.device(device)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.seed = seed if seed is not None else int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        self._cache: dict[tuple, torch.Tensor] = {}

    def subset(self, candidates: np.ndarray) -> "QueryContext":
        """The same model and seed over other candidates (e.g. a strategy's own subsample)."""
        return QueryContext(self.module, self.datamodule, candidates, self.device, self.generator, self.seed)

    def __len__(self) -> int:
        return len(self.candidates)

    def map(self, indices: np.ndarray, fn: Callable[[Any], torch.Tensor]) -> torch.Tensor:
        """``fn`` over the model inputs of the pool items ``indices``, batch by batch on the device, in eval
        and inference mode, concatenated along the item axis (the one every pool pass goes through)."""
        # moved outside inference mode: parameters moved inside it would become inference tensors,
        # which the next round's training cannot use
        module = self.module.to(self.device)
        was_training = module.training
        module.eval()
        try:
            outs = []
            with torch.inference_mode():
                for batch in self.datamodule.pool_dataloader(indices):
                    x = module.inputs(batch)
                    x = x.to(self.device, non_blocking=True) if torch.is_tensor(x) else _to(x, self.device)
                    outs.append(fn(x))
            return torch.cat(outs, dim=-2 if outs and outs[0].dim() == 3 else 0)
        finally:
            module.train(was_training)

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
        return self._cached(("logits", which), lambda: self.map(self._indices(which), self.module))

    def probs(self, which: str = "pool") -> torch.Tensor:
        """(N, C) softmax probabilities."""
        return self._cached(("probs", which), lambda: self.logits(which).float().softmax(-1))

    def embeddings(self, which: str = "pool") -> torch.Tensor:
        """(N, d) features (the penultimate layer)."""
        return self._cached(("emb", which), lambda: self.map(self._indices(which), self.module.features).float())

    def features_and_probs(self, which: str = "pool") -> tuple[torch.Tensor, torch.Tensor]:
        """Features and probabilities from one pass (what BADGE and CAL need)."""
        if ("emb", which) not in self._cache or ("probs", which) not in self._cache:

            width: list[int] = []

            def both(x):
                h = self.module.features(x)
                width[:] = [h.shape[1]]
                return torch.cat([h.float(), self.module.classify(h).float()], dim=1)

            out = self.map(self._indices(which), both)
            d = width[0]  # the feature width (the head may have more or fewer outputs than the dataset's classes)
            self._cache[("emb", which)] = out[:, :d]
            self._cache[("logits", which)] = out[:, d:]
            self._cache[("probs", which)] = out[:, d:].softmax(-1)
        return self._cache[("emb", which)], self._cache[("probs", which)]

    def mc_probs(self, passes: int) -> torch.Tensor:
        """(T, N, C) probabilities of ``passes`` MC-dropout forward passes over the candidates."""
        if self.module.device.type != self.device.type:
            self.module.to(self.device)

        def compute() -> torch.Tensor:
            # dropout masks come from the device's global RNG: seeded here, from (seed, passes) alone
            torch.manual_seed(derived_seed(self.seed, f"mc/{passes}"))
            return self.map(self.candidates, lambda x: self.module.mc_logits(x, passes).float().softmax(-1))

        return self._cached(("mc", passes), compute)


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
