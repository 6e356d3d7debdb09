"""Optuna samplers for a search that is resumed from its study database (``hydra.sweeper.storage=sqlite:///...``).

Optuna's own seeded samplers draw from one random generator seeded when the sampler is made: a second ``exil -m
hparams_search=... hydra.sweeper.storage=...`` makes a fresh sampler with the same seed, and its first trials repeat
the first invocation's (the same learning rates, the same strategies, run again). These samplers draw trial ``n``'s
values from a generator seeded by ``(seed, n)``: a search run in one go and the same search resumed in several
invocations ask the same trials, and no resumed trial repeats an earlier one by construction. Unseeded
(``seed: null``) they are Optuna's samplers unchanged. ``conf/hparams_search/digits_optuna.yaml`` uses
:class:`TPESampler`; the keys are Optuna's (``n_startup_trials``, ``multivariate``, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from optuna.samplers import BaseSampler
except ImportError:  # without exil[search] this module still imports (every exil module does); using it says so
    BaseSampler = object


class _SeededPerTrial(BaseSampler):
    """A sampler made afresh for each trial, seeded by ``(seed, trial number)``; Optuna's samplers keep no state
    between trials but their generator (what they learn, they read from the study's trials)."""

    def __init__(self, seed: int | None = None, **options: Any) -> None:
        if BaseSampler is object:
            from exil.common.errors import ExilError

            raise ExilError(f"{type(self).__name__} is an Optuna sampler, and Optuna is not installed: "
                            "pip install 'exil[search]'")
        self.seed, self.options = seed, options
        self._unseeded = self._make(None) if seed is None else None
        self._by_trial: dict[int, BaseSampler] = {}

    def _make(self, seed: int | None) -> BaseSampler:
        raise NotImplementedError

    def _for(self, trial) -> BaseSampler:
        if self._unseeded is not None:
            return self._unseeded
        sampler = self._by_trial.get(trial.number)
        if sampler is None:
            seed = int(np.random.SeedSequence([int(self.seed), int(trial.number)]).generate_state(1)[0])
            sampler = self._by_trial[trial.number] = self._make(seed)
        return sampler

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._by_trial.pop(trial.number, None)

    def reseed_rng(self) -> None:  # Optuna calls this for parallel workers: draws are then no longer seeded
        self._unseeded = self._make(None)


class TPESampler(_SeededPerTrial):
    """``optuna.samplers.TPESampler`` (the same keys), its draws for trial ``n`` seeded by ``(seed, n)``."""

    def _make(self, seed: int | None) -> BaseSampler:
        import optuna

        return optuna.samplers.TPESampler(seed=seed, **self.options)


class RandomSampler(_SeededPerTrial):
    """``optuna.samplers.RandomSampler``, its draws for trial ``n`` seeded by ``(seed, n)``."""

    def _make(self, seed: int | None) -> BaseSampler:
        import optuna

        return optuna.samplers.RandomSampler(seed=seed, **self.options)
