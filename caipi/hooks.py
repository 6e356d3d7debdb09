"""CAIPI's round (Teso & Kersting, AIES 2019, Algorithm 1), for images and feature vectors.

For each queried item the learner predicts, explains its prediction with LIME (the top-k segments
of an image, or the top-k features present in a feature vector — the words of a bag of words —
with ``exil.common.explain.lime``, batched over the round's queries) and shows both to the teacher:

* **wrong prediction** — the teacher's label is used, nothing else;
* **right prediction** — the teacher marks the shown segments that are wrongly deemed relevant
  (``correct_explanation``; none = right for the right reasons); each marked segment becomes ``c``
  counterexamples: copies of the item with that segment changed (``cx_strategy``: randomise its
  pixels one by one, shade it with one random value, or substitute it from another labelled item of
  the same class; :mod:`exil.caipi.counterexamples`), labelled with the prediction and
  weighted ``cx_weight``. They are stored as patches of the item (only the changed pixels).

Explanations (and so corrections) start after ``burn_in`` rounds. The label question is asked for
every query, first, so that the teacher's label is journaled before any explanation is shown.

**Passive corrections** (CAIPI's Table 1): with ``initial_counterexamples`` = c > 0, every item of
the initial labelled set is also asked a ``relevance`` question, and gets c counterexamples with
its irrelevant input (the decoy swatch, with ``oracle.irrelevant_field=decoy``) randomised.

**Metrics** (``lime_metric_items`` > 0): LIME explains that many test items (their predicted class);
with the test set's masks, a segment is relevant when it covers part of the object (``mask``);
reported are the precision / recall / F1 of the top-k segments against the relevant ones
(``test/lime_precision|recall|f1``) and, for decoy data, the share of explanations whose top-k
include a decoy segment (``test/lime_decoy_rate``). On decoy data, whatever the settings, the
behavioural measures of :mod:`exil.caipi.diagnostics` (``test/decoy_agreement``, ``test/acc_noise_swatch``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from exil.caipi.counterexamples import STRATEGIES, alternatives, randomise, shade, substitute
from exil.caipi.diagnostics import decoy_diagnostics
from exil.caipi.questions import component_masks, correction_question
from exil.common.data.pool_state import Extra, patch
from exil.common.errors import ConfigError
from exil.common.explain.lime import LimeConfig, explain_batch, explain_features
from exil.common.explain.metrics import as_mask
from exil.common.explain.segmentation import grid
from exil.common.hooks import Incorporation, RoundContext, RoundHooks, label_questions
from exil.common.oracle.relevance import relevance_masks, relevance_questions
from exil.common.strategies.base import Selection


class CaipiHooks(RoundHooks):
    """CAIPI's predict → explain → ask → counterexamples round (module docstring).

    Args:
        k: segments in an explanation.
        counterexamples: c, copies per wrongly relevant segment.
        cx_strategy: ``randomise`` (per-pixel noise) | ``shade`` (one random uniform shade) | ``substitute`` |
            ``alternatives`` (every other value of ``values``, at most ``counterexamples`` of them: the colors
            problem's recolouring).
        cx_weight: training weight of a counterexample.
        burn_in: rounds before explanations are shown.
        segment_cell: side of the square grid cells that are LIME's segments (``auto``: :meth:`_segments`).
        lime: further :class:`~exil.common.explain.lime.LimeConfig` settings (num_samples, repeats, ...).
        hide_color: the value of a segment LIME switches off (``None``: the segment's mean).
        values: the finite set of input values, for ``alternatives``.
        **kwargs: :class:`~exil.common.hooks.RoundHooks`'s explanation-metric settings.
    """

    def __init__(self, k: int = 5, counterexamples: int = 3, cx_strategy: str = "randomise", cx_weight: float = 1.0,
                 burn_in: int = 0, segment_cell: int | str = "auto", lime: dict[str, Any] | None = None,
                 initial_counterexamples: int = 0, lime_metric_items: int = 0, hide_color: float | None = 0.0,
                 values: list[float] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if cx_strategy not in STRATEGIES:
            raise ConfigError(f"caipi cx_strategy={cx_strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if cx_strategy == "alternatives" and not values:
            raise ConfigError("caipi cx_strategy=alternatives needs method.hooks.values (the input's possible values)")
        self.hide_color, self.values = hide_color, values
        self.k, self.c, self.cx_strategy, self.cx_weight = k, counterexamples, cx_strategy, cx_weight
        self.burn_in, self.segment_cell = burn_in, segment_cell
        self.lime = LimeConfig(k=k, **(lime or {}))
        self.initial_c, self.lime_metric_items = initial_counterexamples, lime_metric_items

    def initial(self, ctx: RoundContext, labels: dict[int, int]) -> Incorporation:
        if not self.initial_c:
            return Incorporation()
        items = list(labels)
        answers = ctx.ask_many(relevance_questions(ctx.datamodule, items, labels))
        extras: list[Extra] = []
        for start in range(0, len(items), 4096):  # batched, so 60,000 items take seconds
            chunk = items[start:start + 4096]
            x = self._inputs(ctx, chunk)
            irrelevant = torch.stack([relevance_masks(a)["irrelevant"] for a in answers[start:start + 4096]])
            cx = randomise(x, irrelevant, self.initial_c, ctx.generator)
            extras += [Extra(patch("x", x[j], cx[j, n]), label=labels[i], weight=self.cx_weight, origin=i,
                             kind="counterexample") for j, i in enumerate(chunk) for n in range(self.initial_c)]
        return Incorporation(extras=extras)

    def metrics(self, ctx: RoundContext) -> dict[str, float]:
        out = super().metrics(ctx) | decoy_diagnostics(ctx.module, ctx.datamodule, ctx.device)
        if self.lime_metric_items:
            out.update(self._lime_quality(ctx))
        return out

    def _lime_quality(self, ctx: RoundContext) -> dict[str, float]:
        xs, masks, decoys = [], [], []
        seen = 0
        for batch in ctx.datamodule.test_ground_truth_dataloader():
            if "mask" not in batch:
                return {}
            xs.append(ctx.module.inputs(batch))
            masks.append(as_mask(batch["mask"]))
            if "decoy" in batch:
                decoys.append(as_mask(batch["decoy"]))
            seen += len(xs[-1])
            if seen >= self.lime_metric_items:
                break
        n = self.lime_metric_items
        x, mask = torch.cat(xs)[:n], torch.cat(masks)[:n]
        expl = self._explain(ctx, x)
        if x.dim() == 2:  # features: a component is a feature
            def per_component(m: torch.Tensor) -> torch.Tensor:
                return m.bool()
        else:  # images: a segment counts if it covers any pixel of the mask
            seg = self._segments(x, ctx.datamodule).to(mask.device).flatten()
            onehot = torch.nn.functional.one_hot(seg, int(seg.max()) + 1).float()  # (HW, S)

            def per_component(m: torch.Tensor) -> torch.Tensor:
                return (m.flatten(1).float() @ onehot) > 0  # (N, S)
        relevant = per_component(mask)
        chosen = torch.zeros_like(relevant).scatter_(1, expl.components.to(relevant.device), True)
        hit = (chosen & relevant).sum(1).float()
        precision = hit / chosen.sum(1).clamp_min(1)
        recall = hit / relevant.sum(1).clamp_min(1)
        f1 = torch.where(hit > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-12), torch.zeros_like(hit))
        out = {"test/lime_precision": float(precision.mean()), "test/lime_recall": float(recall.mean()),
               "test/lime_f1": float(f1.mean())}
        if decoys:
            on_decoy = per_component(torch.cat(decoys)[:n])
            out["test/lime_decoy_rate"] = float((chosen & on_decoy).any(1).float().mean())
        return out

    def _inputs(self, ctx: RoundContext, items: list[int]) -> torch.Tensor:
        return torch.cat([ctx.module.inputs(b) for b in ctx.datamodule.pool_dataloader(items)])

    def _segments(self, x: torch.Tensor, datamodule: Any = None) -> torch.Tensor:
        """LIME's grid segments; ``segment_cell: auto`` is the data's confounder size where it names one (the decoy
        swatch: 2 px on digits, 4 px on MNIST), else about a seventh of the image's side."""
        cell = self.segment_cell
        if cell == "auto":
            cell = getattr(datamodule, "confounder_cell", None) or max(1, round(min(x.shape[-2:]) / 7))
        return grid(x.shape[-2], x.shape[-1], cell=int(cell))

    def ask(self, ctx: RoundContext, selection: Selection) -> dict[int, Any]:
        items = [int(i) for i in selection.indices]
        probs = self.predict_proba(ctx, np.asarray(items))
        preds = probs.argmax(1)
        given = ctx.ask_many(label_questions(ctx, selection, probs))
        labels = {i: int(y) for i, y in zip(items, given)}
        out = {i: {"label": labels[i], "prediction": int(p), "components": [], "wrong": []} for i, p in zip(items, preds)}
        right = [i for i in items if out[i]["prediction"] == labels[i]]
        if ctx.round >= self.burn_in and items and not right:
            ctx.say(f"round {ctx.round}: the model predicted all {len(items)} asked items wrongly, so there is no "
                    "explanation to correct (CAIPI asks corrections of right predictions only); their labels are used")
        if ctx.round < self.burn_in or not right:
            return out
        x = self._inputs(ctx, right)
        segments = self._segments(x, ctx.datamodule) if x.dim() > 2 else None
        expl = self._explain(ctx, x, torch.as_tensor([out[i]["prediction"] for i in right]))
        questions = []
        for j, i in enumerate(right):
            comps = expl.components[j].tolist()
            out[i]["components"] = comps
            if x.dim() == 2:
                questions.append(correction_question(i, comps, out[i]["prediction"],
                                                     masks=self._feature_masks(x, comps)))
            else:
                questions.append(correction_question(i, comps, out[i]["prediction"], segments=segments.cpu()))
        if x.dim() > 2:
            self._save_sheets(ctx, x, right, questions)
        for i, wrong in zip(right, ctx.ask_many(questions)):  # offered at once
            out[i]["wrong"] = wrong
        return out

    #: explained queries drawn as LIME sheets each round (the loggers get them)
    sheet_items = 4

    def _save_sheets(self, ctx: RoundContext, x: torch.Tensor, items: list[int], questions: list) -> None:
        from exil.common.oracle.sheets import save_components

        for j, (i, q) in enumerate(zip(items[: self.sheet_items], questions)):
            save_components(x[j].cpu(), q.payload["component_masks"], q.payload["components"],
                            ctx.run_dir / "caipi" / f"round_{ctx.round:03d}_item_{i}_lime.png")

    def sheets(self, run_dir, round):
        """The round's LIME sheets of explained queries (and the teacher's views)."""
        from pathlib import Path

        return sorted((Path(run_dir) / "caipi").glob(f"round_{round:03d}_*.png")) + super().sheets(run_dir, round)

    def _explain(self, ctx: RoundContext, x: torch.Tensor, target: torch.Tensor | None = None):
        """LIME explanations of ``x``: images over grid segments, feature vectors over their non-zero features."""
        module = ctx.module.to(ctx.device)  # LIME runs the model in eval mode (exil.common.explain.lime._predict)
        if x.dim() == 2:
            return explain_features(module, x, self.lime, baseline=0.0, valid=x != 0, target=target,
                                    generator=ctx.generator)
        return explain_batch(module, x, self._segments(x, ctx.datamodule), self.lime, target=target, generator=ctx.generator,
                             hide_color=self.hide_color)

    @staticmethod
    def _feature_masks(x: torch.Tensor, comps: list[int]) -> torch.Tensor:
        """(k, F) bool: one feature per component."""
        return torch.nn.functional.one_hot(torch.as_tensor(comps), x.shape[-1]).bool()

    def incorporate(self, ctx: RoundContext, selection: Selection, answers: dict[int, Any]) -> Incorporation:
        items = [int(i) for i in selection.indices]
        corrected = [i for i in items if answers[i]["wrong"]]
        extras: list[Extra] = []
        if corrected:
            x = self._inputs(ctx, corrected)
            segments = self._segments(x, ctx.datamodule) if x.dim() > 2 else None
            donors = donor_labels = None
            if self.cx_strategy == "substitute":
                dm = ctx.datamodule
                pool = sorted(set(dm.labels) | set(items))
                labels_of = {**dm.labels, **{i: answers[i]["label"] for i in items}}
                donors = self._inputs(ctx, pool)
                donor_labels = torch.as_tensor([labels_of[i] for i in pool])
            # every (item, wrong component) pair at once: one batched call of the counterexample rule
            pairs = [(j, i, int(comp)) for j, i in enumerate(corrected) for comp in answers[i]["wrong"]]
            js = torch.as_tensor([j for j, _, _ in pairs], dtype=torch.long)
            comps = [comp for _, _, comp in pairs]
            xs = x[js]
            masks = self._feature_masks(x, comps) if x.dim() == 2 else component_masks(segments, comps)
            if self.cx_strategy in ("randomise", "shade"):
                rule = randomise if self.cx_strategy == "randomise" else shade
                cx = rule(xs, masks, self.c, ctx.generator)
            elif self.cx_strategy == "alternatives":
                cx = alternatives(xs, masks, self.values, self.c)
            else:
                position = {item: n for n, item in enumerate(pool)}
                cx = substitute(xs, masks, torch.as_tensor([answers[i]["label"] for _, i, _ in pairs]), donors,
                                donor_labels, self.c, ctx.generator,
                                exclude=torch.as_tensor([position[i] for _, i, _ in pairs]))
            extras = [Extra(patch("x", x[j], cx[n, k]), label=answers[i]["label"], weight=self.cx_weight, origin=i,
                            kind="counterexample") for n, (j, i, _) in enumerate(pairs) for k in range(cx.shape[1])]
        return Incorporation(labels={i: int(answers[i]["label"]) for i in items}, extras=extras)
