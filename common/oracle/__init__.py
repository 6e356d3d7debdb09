"""Oracles and the question kinds they answer (importing this registers every kind's validator)."""

from common.oracle import corrections, exemplars, relevance  # noqa: F401  (validators register on import)
