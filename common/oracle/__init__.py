"""Oracles and the question kinds they answer (importing this registers every kind's validator)."""

from common.oracle import contrast, corrections, exemplars, explanations, relevance  # noqa: F401  (validators register on import)
