"""What a teacher is asked and may look at: a :class:`Question` (its kind, a key unique within its round and
kind, the item and what to show), the :class:`OracleContext` (the data, class names, a folder for shown files)
and :class:`InvalidAnswer`, the refusal of an answer that does not fit. Both the oracle protocol
(:mod:`exil.common.oracle.base`) and the question kinds (:mod:`exil.common.oracle.kinds`) build on these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class InvalidAnswer(ValueError):
    """An answer that does not fit its question; the message says what would."""


@dataclass
class Question:
    kind: str
    key: str
    item: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class OracleContext:
    """What an oracle may look at: the data (ground truth for simulated oracles), class names, a folder for files it shows."""

    datamodule: Any
    class_names: list[str]
    out_dir: Path
    round: int = 0
    #: what the teacher is told about why the loop asks (the strategy's name), for its views
    strategy: str | None = None
