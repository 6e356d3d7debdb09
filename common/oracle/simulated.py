"""A simulated teacher that answers from ground truth (labels, relevance masks, part annotations).

``label`` questions get the true label; with ``noise`` > 0 a label is replaced by a
uniformly drawn *other* class with that probability. The draw depends only on
(seed, question key), so an answer does not depend on the order questions come in
(a resumed run gets the same noisy labels). ``latency`` seconds per answer
simulates a teacher's answer time.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np

from common.oracle.base import Oracle, OracleContext, Question


class SimulatedOracle(Oracle):
    kinds = ("label",)
    max_attempts = 1

    def __init__(self, noise: float = 0.0, latency: float = 0.0, seed: int = 0):
        if not 0 <= noise < 1:
            raise ValueError(f"noise must be in [0, 1), got {noise}")
        self.noise, self.latency, self.seed = noise, latency, seed

    def rng(self, question: Question) -> np.random.Generator:
        h = hashlib.sha256(f"{self.seed}/{question.kind}/{question.key}".encode()).digest()
        return np.random.default_rng(int.from_bytes(h[:8], "little"))

    def answer(self, question: Question, ctx: OracleContext) -> Any:
        if self.latency:
            time.sleep(self.latency)
        if question.kind == "label":
            return self.label(question, ctx)
        raise KeyError(question.kind)

    def label(self, question: Question, ctx: OracleContext) -> int:
        y = ctx.datamodule.true_label(question.item)
        if self.noise:
            rng = self.rng(question)
            if rng.random() < self.noise:
                others = [c for c in range(len(ctx.class_names)) if c != y]
                y = int(rng.choice(others))
        return y
