"""Oracles and the question kinds they answer (importing this registers common's kinds: ``label``, ``relevance``,
``explain_label``; a method's own kinds register with its package)."""

from exil.common.oracle import explanations, label, relevance  # noqa: F401  (kinds register on import)
