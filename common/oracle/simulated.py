"""A simulated teacher that answers from ground truth (labels, relevance masks, part annotations).

* ``label``: the true label;
* ``relevance``: the item's ground-truth mask of relevant pixels (the dataset's ``relevance_field``,
  ``mask`` by default), and its irrelevant pixels from ``irrelevant_field`` if one is named
  (``decoy``: Ross et al.'s annotation of decoy MNIST, the swatch), else the complement. ``auto`` (the
  default) names the dataset's known confounder (``confounder_field``: the swatch of the decoy datasets)
  where it has one: the teacher marks what the model must not use, as Ross et al.'s annotation A does.
  Marking *everything* outside the object instead is a different, much stronger statement — on 8×8
  digits it declares the informative empty background irrelevant, and RRR trained on it falls below
  labels only at every λ tried (0.1 to 1000; see the README's "Explanations in the loop");
* ``correct_explanation``: CAIPI's corrections — the shown components that cover the item's
  irrelevant field (as above), else that cover none of its ``relevance_field``;
* ``contrast_classes``: ALICE's expert — the dataset's sentence for the class pair (an explanation
  bank, or one generated from CUB's attribute annotations: :mod:`exil.alice.questions`);
* ``explain_label``: XAL's explanations of every class for an item, from ``explainer`` (an explanation
  bank, or the simulated lexicon teacher: :mod:`exil.common.oracle.explanations`, :mod:`exil.common.oracle.lexicon`);
* ``choose_exemplars``: eXBL's automatic teacher — the candidate explanations with the highest and
  the lowest Activation Recall against the ground-truth masks (threshold ``exemplar_threshold``).

For ``label`` questions, with ``noise`` > 0 a label is replaced by a
uniformly drawn *other* class with that probability. The draw depends only on
(seed, question key), so an answer does not depend on the order questions come in
(a resumed run gets the same noisy labels). ``latency`` seconds per answer
simulates a teacher's answer time. ``cheap: false`` makes the asker commit each answer before asking the
next, as for a person or an LLM (by default a simulated teacher's answers are committed in batches and
after a kill the uncommitted part of a batch is asked again, which costs nothing). ``call_log`` names a
file that gets one line per answer given (``kind<TAB>key``): what the chaos test counts across kills.

Each answer comes from its question kind's ``simulate`` (:mod:`exil.common.oracle.kinds`), which reads this
teacher's settings and ground truth (:meth:`SimulatedOracle.field`); a method's own kinds simulate themselves.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import numpy as np
import torch

from exil.common.errors import ExilError
from exil.common.oracle.base import Oracle
from exil.common.oracle.kinds import kind_of, registered
from exil.common.oracle.question import OracleContext, Question


class SimulatedOracle(Oracle):
    max_attempts = 1
    cheap = True  # answers are free and reproducible: the asker may commit them in batches
    labels_from_truth = True

    @property
    def kinds(self) -> tuple[str, ...]:
        return registered()

    def __init__(self, noise: float = 0.0, latency: float = 0.0, seed: int = 0, relevance_field: str = "mask",
                 irrelevant_field: str | None = "auto", exemplar_threshold: float | None = 0.5, explainer: Any = None,
                 cheap: bool = True, call_log: str | None = None, cost: dict[str, float] | None = None):
        from exil.common.errors import ConfigError
        from exil.common.oracle.cost import DEFAULT_SECONDS

        if not 0 <= noise < 1:
            raise ValueError(f"noise must be in [0, 1), got {noise}")
        self.cost = dict(DEFAULT_SECONDS) if cost is None else {str(k): v for k, v in dict(cost).items()}
        bad = {k: v for k, v in self.cost.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0}
        if bad:
            raise ConfigError(f"oracle.cost: seconds per answer must be numbers ≥ 0, got {bad}")
        self.noise, self.latency, self.seed = noise, latency, seed
        self.relevance_field, self.irrelevant_field = relevance_field, irrelevant_field
        self.exemplar_threshold = exemplar_threshold
        self.explainer = explainer
        self.cheap, self.call_log = bool(cheap), call_log

    def seconds(self, kind: str, measured: float | None) -> float | None:
        """What an answer of ``kind`` would cost a person: the cost model (``oracle.cost``), not the time
        simulating it took."""
        return self.cost.get(kind)

    def rng(self, question: Question) -> np.random.Generator:
        h = hashlib.sha256(f"{self.seed}/{question.kind}/{question.key}".encode()).digest()
        return np.random.default_rng(int.from_bytes(h[:8], "little"))

    def answer(self, question: Question, ctx: OracleContext) -> Any:
        if self.latency:
            time.sleep(self.latency)
        answer = kind_of(question.kind).simulate(question, ctx, self)
        if self.call_log:
            fd = os.open(self.call_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{question.kind}\t{question.key}\n".encode())
            finally:
                os.close(fd)
        return answer

    def field(self, ctx: OracleContext, item: int, name: str) -> torch.Tensor:
        """The ground-truth field ``name`` (a mask) of pool item ``item``, as an (H, W) bool mask."""
        fields = tuple(getattr(ctx.datamodule, "oracle_fields", ()))
        if name not in fields:
            raise ExilError(f"the simulated teacher needs ground-truth {name!r} of every item, and "
                            f"{type(ctx.datamodule).__name__} has {list(fields) or 'none'}: choose a dataset "
                            "with relevance masks (decoy_mnist, decoy_fashion_mnist, mask_folder)")
        m = torch.as_tensor(ctx.datamodule.ground_truth(item, name)).bool()
        return m.any(dim=0) if m.dim() == 3 else m

    def irrelevant_field_of(self, ctx: OracleContext) -> str | None:
        """The ground-truth field this teacher marks as irrelevant: ``irrelevant_field``, or with ``auto`` the
        dataset's known confounder (``confounder_field``, e.g. the decoy swatch; ``None`` where it has none:
        then the complement of the relevant input)."""
        if self.irrelevant_field == "auto":
            return getattr(ctx.datamodule, "confounder_field", None)
        return self.irrelevant_field

    def relevance(self, question: Question, ctx: OracleContext) -> dict[str, Any]:
        out = {"relevant": self.field(ctx, question.item, self.relevance_field)}
        irrelevant = self.irrelevant_field_of(ctx)
        if irrelevant:
            out["irrelevant"] = self.field(ctx, question.item, irrelevant)
        return out

    def label(self, question: Question, ctx: OracleContext) -> int:
        y = ctx.datamodule.true_label(question.item)
        if self.noise:
            rng = self.rng(question)
            if rng.random() < self.noise:
                others = [c for c in range(len(ctx.class_names)) if c != y]
                y = int(rng.choice(others))
        return y
