"""The loop's settings (``conf/loop/*.yaml``), typed and checked before anything heavy is imported: a wrong value
(``loop.rounds=abc``, ``loop.budget=-1``) is one line within a second or two of the command, not after the model
libraries have loaded."""

from __future__ import annotations

from dataclasses import dataclass

from exil.common.errors import ConfigError

#: how pool embeddings are kept (``loop.embeddings``; :mod:`exil.common.pool_map`)
EMBEDDINGS = ("auto", "float32", "float16", "disk")


@dataclass
class LoopConfig:
    """``conf/loop/*.yaml``. ``budget`` caps the oracle labels (None: rounds × query_size); ``budget_seconds``
    caps the teachers' time (the seconds the journal records per answer: measured for a person, the cost model
    for a simulated teacher), so methods that ask different questions are compared at equal human cost."""

    rounds: int = 10
    query_size: int = 10
    initial_per_class: int | None = 2
    initial_size: int | None = None
    budget: int | None = None
    budget_seconds: float | None = None
    seed: int = 0
    pool_subsample: int | None = None
    reset_each_round: bool = True
    resume: str | None = None
    device: str = "auto"
    threads: int | None = None
    keep_checkpoints: str = "last"
    embeddings: str = "auto"

    @property
    def label_budget(self) -> int:
        """The oracle labels a run may ask: ``budget``, else ``rounds × query_size``."""
        return self.budget if self.budget is not None else self.rounds * self.query_size

    def __post_init__(self) -> None:
        def at_least(name: str, least: int, none_ok: bool = False, also: tuple = ()) -> None:
            v = getattr(self, name)
            if (v is None and none_ok) or v in also:
                return
            if v is None or isinstance(v, bool) or not isinstance(v, int) or v < least:
                extra = " or null" if none_ok else ""
                extra += "".join(f" or {a}" for a in also)
                raise ConfigError(f"loop.{name}={v!r}: must be a whole number ≥ {least}{extra}")

        at_least("rounds", 0)
        at_least("query_size", 0)
        at_least("budget", 0, none_ok=True)
        if self.budget_seconds is not None and (isinstance(self.budget_seconds, bool)
                                                or not isinstance(self.budget_seconds, (int, float))
                                                or not self.budget_seconds > 0):
            raise ConfigError(f"loop.budget_seconds={self.budget_seconds!r}: must be a number of seconds > 0 or null")
        at_least("initial_per_class", 1, none_ok=True)
        at_least("initial_size", 1, none_ok=True, also=(-1,))
        at_least("pool_subsample", 1, none_ok=True)
        at_least("threads", 1, none_ok=True)
        at_least("seed", 0)
        if self.initial_per_class is None and self.initial_size is None:
            raise ConfigError("loop: set loop.initial_per_class (items per class) or loop.initial_size (items, -1: "
                              "the whole pool) for the initial labelled set")
        if self.embeddings not in EMBEDDINGS:
            raise ConfigError(f"loop.embeddings={self.embeddings!r}: valid choices are {', '.join(EMBEDDINGS)} "
                              "(how pool embeddings are kept: auto picks float32, float16 or disk by the memory free)")
        if self.keep_checkpoints not in ("last", "all"):
            raise ConfigError(f"loop.keep_checkpoints={self.keep_checkpoints!r}: valid choices are 'last' "
                              "(only the newest round-end checkpoint, all that resuming needs) and 'all'")
