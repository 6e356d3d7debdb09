"""Round hooks of the explanation-in-the-loss methods.

* :class:`RelevanceHooks` (RRR, alternating training): every labelled item — the initial set and
  each queried one — also gets a ``relevance`` question; the teacher's masks (``relevant``,
  ``irrelevant``) become the item's annotations and reach the loss with its training batches.
* :class:`ExemplarHooks` (eXBL): rounds ask no labels (``asks``); after a round's fit
  the model's Grad-CAM maps of labelled training images are shown to the teacher
  (``choose_exemplars``: all of them, or ``candidates`` drawn at random — a person cannot look at
  thousands), and the chosen good / bad maps become the module's exemplars for the next fit.

Like every :class:`~exil.common.hooks.RoundHooks`, both can report explanation quality on the test set
each round (``explainer``: Activation Recall / Precision / F1 and the decoy share).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from exil.common.abilities import MapsExplanations, Need
from exil.common.hooks import Incorporation, RoundContext, RoundHooks
from exil.common.oracle.relevance import relevance_masks, relevance_questions
from exil.exbl.questions import exemplars_question


class RelevanceHooks(RoundHooks):
    """Labels plus relevance masks for every labelled item (module docstring)."""

    skip_labels = False  # every labelled item is explained / annotated next

    def initial(self, ctx: RoundContext, labels: dict[int, int]) -> Incorporation:
        items = list(labels)
        answers = ctx.ask_many(relevance_questions(ctx.datamodule, items, labels))
        return Incorporation(annotations={i: relevance_masks(a) for i, a in zip(items, answers)})

    def ask(self, ctx: RoundContext, selection: None) -> dict[int, Any]:
        labels = super().ask(ctx, selection)
        items = [int(i) for i in selection.indices]
        masks = ctx.ask_many(relevance_questions(ctx.datamodule, items, labels, self._saliency(ctx, items)))
        return {i: {"label": labels[i], "relevance": m} for i, m in zip(items, masks)}

    @staticmethod
    def _saliency(ctx: RoundContext, items: list[int]) -> dict[int, torch.Tensor]:
        """Where the current model looks for its prediction of each item (input gradients, Simonyan et al. 2014),
        shown to a person beside the item (a simulated teacher ignores it); {} for inputs that are not images."""
        from exil.common.explain.gradients import saliency_map

        if not items or len(ctx.datamodule.input_shape) < 3:
            return {}
        module = ctx.module.to(ctx.device)
        was = module.training
        module.eval()
        try:
            x = torch.cat([module.inputs(b) for b in ctx.datamodule.pool_dataloader(items)]).to(ctx.device)
            with torch.enable_grad():
                target = module(x).argmax(1)
                maps = saliency_map(module, x, target).detach().cpu()
        finally:
            module.train(was)
        return {i: m for i, m in zip(items, maps)}

    def incorporate(self, ctx: RoundContext, selection: None, answers: dict[int, Any]) -> Incorporation:
        items = [int(i) for i in selection.indices]
        return Incorporation(labels={i: int(answers[i]["label"]) for i in items},
                             annotations={i: relevance_masks(answers[i]["relevance"]) for i in items})


class ExemplarHooks(RoundHooks):
    """eXBL's exemplar rounds (module docstring).

    Args:
        candidates: how many labelled images the teacher chooses from (``None``: all of them, as the
            paper's automatic teacher does; a person at the terminal wants a dozen or so).
        explainer, layer, threshold, metric_items: the explanation metrics (Grad-CAM by default).
    """

    asks = "exemplars"  # rounds ask no labels: no query stage, and the loop runs every round
    needs = (Need("module", MapsExplanations, "an eXBL module whose Grad-CAM maps train (method=exbl)"),)

    def __init__(self, candidates: int | None = None, explainer: str | None = "gradcam", **kwargs: Any):
        super().__init__(explainer=explainer, **kwargs)
        self.candidates = candidates

    def ask(self, ctx: RoundContext, selection: None) -> dict[str, Any]:
        dm = ctx.datamodule
        items = np.fromiter(dm.labels, dtype=np.int64)
        if self.candidates is not None and self.candidates < len(items):
            pick = torch.randperm(len(items), generator=ctx.generator)[: self.candidates].numpy()
            items = np.sort(items[pick])
        maps = self._maps(ctx, items)
        labels = [dm.labels[int(i)] for i in items]
        self._save_sheet(ctx, items, maps, labels)
        return {"exemplars": ctx.ask(exemplars_question(ctx.round, items, maps, labels)), "items": items}

    #: candidates drawn in the round's Grad-CAM sheet (the loggers get it)
    sheet_items = 16

    def _save_sheet(self, ctx: RoundContext, items: np.ndarray, maps: torch.Tensor, labels: list[int]) -> None:
        from exil.common.oracle.sheets import save_overlays

        n = min(self.sheet_items, len(items))
        names = ctx.datamodule.class_names
        save_overlays([ctx.datamodule.pool_item(int(i))["x"] for i in items[:n]], maps[:n].cpu(),
                      [f"{p}: {names[y]}" for p, y in enumerate(labels[:n])],
                      ctx.run_dir / "exbl" / f"round_{ctx.round:03d}_gradcam.png")

    def sheets(self, run_dir, round):
        """The round's Grad-CAM sheet of the exemplar candidates (and the teacher's views)."""
        from pathlib import Path

        return sorted((Path(run_dir) / "exbl").glob(f"round_{round:03d}_*.png")) + super().sheets(run_dir, round)

    def incorporate(self, ctx: RoundContext, selection: None, answers: dict[str, Any]) -> Incorporation:
        chosen = answers["exemplars"]
        good, bad = self._maps(ctx, np.array([chosen["good"], chosen["bad"]]))
        ctx.module.set_exemplars(good, bad)
        return Incorporation()

    @staticmethod
    def _maps(ctx: RoundContext, items: np.ndarray) -> torch.Tensor:
        """Grad-CAM maps (N, H, W) of labelled pool items for their oracle labels, in batches."""
        dm, module = ctx.datamodule, ctx.module
        was = module.training
        module.eval()
        module.to(ctx.device)
        out = []
        try:
            for batch in dm.pool_dataloader(items):
                y = torch.as_tensor([dm.labels[int(i)] for i in batch["idx"]], device=ctx.device)
                out.append(module.explanation_maps(module.inputs(batch).to(ctx.device), y).cpu())
        finally:
            module.train(was)
        return torch.cat(out)


