"""Round hooks: the one place where a method's behaviour enters the active loop.

Each round the loop calls, in order,

* :meth:`RoundHooks.initial_labels` and :meth:`RoundHooks.initial` — once: the initial set's labels (its
  ``label`` questions, by default), then annotations or extras for it;
* :meth:`RoundHooks.query`       — choose what to ask about (default: the configured strategy);
* :meth:`RoundHooks.ask`         — put questions to the teacher through ``ctx.ask`` (journaled);
* :meth:`RoundHooks.incorporate` — turn answers into new labels and extra examples, and change the
  model if the method does (ALICE morphs here: the loop checkpoints ``module.architecture_spec()``);
* :meth:`RoundHooks.metrics`     — method metrics added to the round's evaluation (explanation F1, ...).

The hooks object is also a Lightning ``Callback`` passed to every round's Trainer,
so a method can watch or steer training. :class:`RoundHooks` itself is plain
instance-level active learning — label questions only — which is ``method=baseline``.
Hooks must be deterministic given ``ctx.generator`` and the answers: after a kill the
loop may run ``incorporate`` again from the journaled answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import numpy as np
import torch

from exil.common.data.base import PoolDataModule
from exil.common.data.pool_state import Extra
from exil.common.data.views import targets_of
from exil.common.errors import ConfigError
from exil.common.modules.base import ExilModule
from exil.common.oracle.question import Question
from exil.common.pool_map import derived_seed
from exil.common.strategies.base import QueryStrategy, Selection
from exil.common.strategies.context import QueryContext


@dataclass
class RoundContext:
    round: int
    module: ExilModule
    datamodule: PoolDataModule
    strategy: QueryStrategy
    ask: Callable[[Question], Any]  # journal-backed: ask(question) -> validated answer
    ask_many: Callable[[list[Question]], list[Any]]  # many at once (simulated answers commit in batches)
    candidates: np.ndarray  # unlabelled pool indices the strategy may choose from (subsampled if configured)
    device: torch.device
    generator: torch.Generator  # seeded for this round and stage: the hooks' own randomness
    run_dir: Path
    seed: int = 0  # this round and stage's seed
    embeddings: str = "auto"  # how pool embeddings are kept (loop.embeddings: auto | float32 | float16 | disk)
    scorer: Any = None  # the run's Team in a multi-process run: pool passes are sharded through it (QueryContext)
    #: tell the person running the loop something they would otherwise wonder about ("nothing to correct this
    #: round: every prediction was wrong"): on the console, and on a teacher's page
    say: Callable[[str], None] = print
    #: the teacher (oracle) that answers a question kind (``None``: this context cannot say)
    teacher_of: Callable[[str], Any] | None = None
    _contexts: dict = field(default_factory=dict, repr=False)

    def one_teacher(self, *kinds: str) -> bool:
        """Whether one teacher answers every one of ``kinds`` (then a method may ask them in one question)."""
        if self.teacher_of is None:
            return False
        try:
            first = self.teacher_of(kinds[0])
            return all(self.teacher_of(k) is first for k in kinds[1:])
        except Exception:  # a kind nobody answers
            return False

    def query_context(self, indices: np.ndarray | None = None) -> QueryContext:
        """Model outputs over ``indices`` (default: the candidates), cached for the stage: every call with the
        same items returns the same context. Its generator is its own, seeded from the stage's seed, so what the
        hooks draw from ``generator`` never changes what the strategy draws."""
        idx = self.candidates if indices is None else np.asarray(indices, dtype=np.int64)
        key = idx.tobytes()
        if key not in self._contexts:
            gen = torch.Generator().manual_seed(derived_seed(self.seed, "strategy"))
            self._contexts[key] = QueryContext(self.module, self.datamodule, idx, self.device, gen, self.seed,
                                               self.embeddings, self.run_dir, self.scorer)
        return self._contexts[key]


@dataclass
class Incorporation:
    """What a round adds to the training set: oracle labels of pool items, the teacher's annotations of
    labelled items (e.g. relevance masks, served with their training batches), and extra examples."""

    labels: dict[int, int] = field(default_factory=dict)
    extras: list[Extra] = field(default_factory=list)
    annotations: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)


class RoundHooks(pl.Callback):
    """Instance-level active learning: query with the strategy, ask for labels, add them.

    Args:
        explainer: if set (``input_gradients`` | ``gradcam``), every evaluation also scores the model's
            explanations against the test set's ground-truth masks (:mod:`exil.common.explain.evaluate`:
            Activation Recall / Precision / F1, decoy share) — for datasets that have masks.
        layer: the Grad-CAM layer (``None``: the last spatial one).
        threshold: the activation threshold of those metrics (``None``: soft).
        metric_items: explain only the first this many test items (``None``: all).
        wrong_reason: on data with a known confounder (the decoy datasets), the explainers whose wrong-reason
            score is logged each round beside worst-group accuracy (:mod:`exil.common.explain.confounder`);
            ``[]``: worst-group accuracy only.
        lime_items: test items the LIME wrong-reason score explains (the first ones).
    """

    # class defaults, so a subclass whose __init__ does not call super().__init__ still works
    explainer: str | None = None
    layer: str | None = None
    threshold: float | None = 0.5
    metric_items: int | None = None
    wrong_reason: tuple[str, ...] = ("input_gradients", "gradcam", "lime")
    lime_items: int = 100

    def __init__(self, explainer: str | None = None, layer: str | None = None, threshold: float | None = 0.5,
                 metric_items: int | None = None, wrong_reason: list[str] | tuple[str, ...] | None = None,
                 lime_items: int = 100):
        self.explainer, self.layer, self.threshold, self.metric_items = explainer, layer, threshold, metric_items
        if wrong_reason is not None:
            self.wrong_reason = tuple(wrong_reason)
        self.lime_items = lime_items

    #: the teacher may skip a label question ("don't know"): the item stays unlabelled and is not asked again
    skip_labels: bool = True

    #: what a round asks the teacher. ``"labels"``: labels of pool items the strategy selects (:meth:`query`),
    #: so a round needs ``loop.query_size`` ≥ 1 and the loop is done when no label is left to ask. A method
    #: whose rounds ask no labels names what they ask instead (eXBL: ``"exemplars"``, ALICE: ``"class pairs"``):
    #: its rounds have no query stage (:meth:`ask` gets no selection) and run to ``loop.rounds``, and its
    #: learning curves are drawn over the questions answered, not the labels held.
    asks: str = "labels"

    @property
    def asks_labels(self) -> bool:
        return self.asks == "labels"

    @property
    def progress_axis(self) -> str:
        """The x-axis of this method's learning curves (:class:`~exil.common.run_log.RunLog`)."""
        return "n_labels" if self.asks_labels else "n_questions"

    def check_loop(self, loop_cfg: Any, method: str) -> None:
        """Refuse loop settings under which a round of this method could not ask anything (before any work)."""
        if self.asks_labels and loop_cfg.query_size == 0 and loop_cfg.rounds > 0:
            raise ConfigError(f"loop.query_size=0: method={method} asks labels each round, so a round would ask "
                              "nothing; give loop.query_size ≥ 1 (or loop.rounds=0 for passive training)")

    def done(self, labels_left: int) -> bool:
        """Whether the loop ends before the next round: ``labels_left`` is how many labels a round may still
        ask (query size, budget and the items not yet labelled or skipped). A label round ends at 0; a
        round that asks no labels goes on."""
        return self.asks_labels and labels_left == 0

    def initial_labels(self, ctx: RoundContext, questions: list[Question]) -> list[int]:
        """The labels of the initial set, from its ``label`` questions (a method may ask more in the same
        questions: XAL asks each item's label with its explanations)."""
        return [int(a) for a in ctx.ask_many(questions)]

    def initial(self, ctx: RoundContext, labels: dict[int, int]) -> Incorporation:
        """Annotations / extras for the initial labelled set (its ``labels`` are already added)."""
        return Incorporation()

    def query(self, ctx: RoundContext, k: int) -> Selection:
        return ctx.strategy.select(ctx.query_context(), k)

    def ask(self, ctx: RoundContext, selection: Selection | None) -> dict[int, Any]:
        """Label questions for the selection, offered at once, each with the model's probabilities and why the
        strategy chose the item. (``selection`` is None for a method whose rounds ask no labels: :attr:`asks`.)"""
        questions = label_questions(ctx, selection, self.predict_proba(ctx, selection.indices), self.skip_labels)
        return dict(zip(map(int, selection.indices), ctx.ask_many(questions)))

    def incorporate(self, ctx: RoundContext, selection: Selection | None, answers: dict[int, Any]) -> Incorporation:
        """The labels given (a skipped item, ``None``, stays unlabelled)."""
        return Incorporation(labels={i: int(answers[i]) for i in map(int, selection.indices) if answers[i] is not None})

    def sheets(self, run_dir: Path, round: int) -> list[Path]:
        """The explanation sheets (PNGs) this round made, sent to the loggers with the round (default: the views
        a teacher was shown, ``oracle/round_RRR_*.png``)."""
        return sorted((Path(run_dir) / "oracle").glob(f"round_{round:03d}_*.png"))

    def metrics(self, ctx: RoundContext) -> dict[str, float]:
        from exil.common.explain.confounder import confounder_metrics

        out = coarse_accuracy(ctx)
        out |= confounder_metrics(ctx.module, ctx.datamodule, ctx.device, getattr(ctx.module, "test_predictions", None),
                                  self.wrong_reason, max_items=self.metric_items, lime_items=self.lime_items,
                                  seed=ctx.seed)
        self._save_examples(ctx)
        if self.explainer is None:
            return out
        from exil.common.explain.evaluate import explanation_quality

        try:
            return out | explanation_quality(ctx.module, ctx.datamodule, ctx.device, self.explainer, self.layer,
                                       threshold=self.threshold, max_items=self.metric_items)
        except ValueError as e:  # e.g. Grad-CAM asked of an MLP
            raise ConfigError(f"method.hooks.explainer={self.explainer}: {e}") from None

    @staticmethod
    def _save_examples(ctx: RoundContext) -> None:
        """On data with a confounder: the round's input-gradient maps of a few fixed test items
        (``explanations/round_RRR_test.npz``), which a sweep's explanation sheet puts side by side."""
        from exil.common.explain.confounder import example_maps, has_confounder

        if not has_confounder(ctx.datamodule) or ctx.run_dir is None:
            return
        ex = example_maps(ctx.module, ctx.datamodule, ctx.device)
        if ex["x"].ndim != 4:
            return
        path = Path(ctx.run_dir) / "explanations" / f"round_{ctx.round:03d}_test.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **ex)

    @staticmethod
    def predict_proba(ctx: RoundContext, indices: np.ndarray) -> np.ndarray:
        """The model's class probabilities for pool items (shown to the teacher)."""
        if len(indices) == 0:
            return np.zeros((0, ctx.datamodule.num_classes))
        return ctx.query_context(indices).probs().cpu().numpy()


def label_questions(ctx: RoundContext, selection: Selection, probs: np.ndarray, skippable: bool = False
                    ) -> list[Question]:
    """``label`` questions for the selected items, with the model's ``probs``, the strategy's name and score."""
    strategy = getattr(ctx.strategy, "name", None) or type(ctx.strategy).__name__
    scores = np.asarray(selection.scores, dtype=float) if selection.scores is not None else \
        np.full(len(selection.indices), np.nan)
    return [Question("label", key=str(int(i)), item=int(i),
                     payload={"probs": p.tolist(), "strategy": strategy, "skippable": skippable,
                              "score": float(s) if np.isfinite(s) else None})
            for i, p, s in zip(selection.indices, probs, scores)]


def coarse_accuracy(ctx: RoundContext) -> dict[str, float]:
    """``test/coarse_acc`` for datasets with coarse groups (``coarse_of``: fine class → group, e.g. CUB's
    subfamilies): the share of test predictions in the true class's group. Empty otherwise."""
    dm = ctx.datamodule
    coarse = getattr(dm, "coarse_of", None)
    preds = getattr(ctx.module, "test_predictions", None)
    if not coarse or preds is None:
        return {}
    coarse = np.asarray(coarse)
    truth = targets_of(dm.test)
    return {"test/coarse_acc": float((coarse[np.asarray(preds)] == coarse[truth]).mean())}
