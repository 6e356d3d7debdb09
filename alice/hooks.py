"""ALICE's round (Liang, Zou & Yu 2020, figure 2): class-based active learning with contrastive
natural-language explanations.

Rounds ask no labels (``asks``): the initial set is k images per class, and each round

1. **query** (:meth:`AliceHooks.ask`): the pair strategy (``strategy=jsd_pairs``: lowest JSD of the
   per-class Gaussians of the pooled features of the labelled images) picks ``pairs_per_round`` class
   pairs not asked before and not already in one super-class;
2. **ask**: one ``contrast_classes`` question per pair ("How would you differentiate P and Q?"),
   journaled like every answer;
3. **incorporate**: the semantic parser turns each answer into parts; the box provider grounds them
   in every labelled image of P and Q, and the crops become extra training examples of the pair's
   local classifier; the module morphs (pairs merged into super-classes, local classifiers added,
   the global head reset); the next round's fit fine-tunes everything.

Everything is inspectable in the run directory: ``alice/round_RRR.json`` (the pairs, their
explanations, the parsed parts, how many crops) and ``alice/saliency/round_RRR_P-Q.png``
(Simonyan saliency of images of each asked pair, after each round's fit).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from exil.alice.grounding import BoxProvider, PartBoxes, crop_extras
from exil.alice.parser import BIRD_PARTS, GARMENT_PARTS, SemanticParser
from exil.alice.questions import contrast_question
from exil.alice.saliency import first_of_each, saliency, save_pair_saliency
from exil.alice.strategies import PairStrategy
from exil.common.abilities import HasParts, Morphs, Need
from exil.common.errors import ConfigError
from exil.common.hooks import Incorporation, RoundContext, RoundHooks
from exil.common.journal import recorded_hash
from exil.common.run_folder import load_checkpoint

LEXICONS = {"bird": BIRD_PARTS, "garment": GARMENT_PARTS}


class AliceHooks(RoundHooks):
    """ALICE's rounds (module docstring).

    Args:
        pairs_per_round: b, the class pairs asked per round.
        lexicon: the parser's rules: ``bird`` (CUB), ``garment`` (the Fashion-MNIST proxy) or a mapping
            phrase → part.
        grounding: a :class:`~exil.alice.grounding.BoxProvider` (``None``: the "w/o grounding" ablation).
        examples: images of each class shown with a question (a person looks at them).
        saliency: images per class in the saliency sheets (0: none).
    """

    asks = "class pairs"  # rounds ask no labels: no query stage, and the loop runs every round

    @property
    def needs(self) -> tuple[Need, ...]:
        """A pair strategy and the morphing module; part grounding needs a dataset that knows its parts."""
        out = (Need("strategy", PairStrategy, "a pair strategy (it chooses class pairs to explain)"),
               Need("module", Morphs, "its morphing module (exil.alice.model.AliceClassifier)"))
        if isinstance(self.grounding, PartBoxes):
            out += (Need("datamodule", HasParts, "a dataset with part locations for its grounding "
                         "(or method.hooks.grounding=null)"),)
        return out

    def __init__(self, pairs_per_round: int = 1, lexicon: str | Mapping[str, str] = "bird",
                 grounding: BoxProvider | None = None, examples: int = 6, saliency: int = 4, **kwargs: Any):
        super().__init__(**kwargs)
        if pairs_per_round < 1:
            raise ConfigError(f"method.hooks.pairs_per_round must be ≥ 1, got {pairs_per_round}")
        if isinstance(lexicon, str):
            if lexicon not in LEXICONS:
                raise ConfigError(f"method.hooks.lexicon={lexicon!r}; valid: {', '.join(LEXICONS)} or a mapping")
            lexicon = LEXICONS[lexicon]
        self.pairs_per_round, self.grounding = pairs_per_round, grounding
        self.parser = SemanticParser(dict(lexicon))
        self.examples, self.saliency_items = examples, saliency
        self._initial_encoder: torch.nn.Module | None = None  # strategy.encoder=initial: loaded once a run

    def ask(self, ctx: RoundContext, selection: None) -> dict[str, Any]:
        strategy, module, dm = ctx.strategy, ctx.module, ctx.datamodule
        items, labels = self._labelled(dm)
        features = self._features(ctx, items)
        exclude = {tuple(p) for p in module.asked}
        exclude |= {(p, q) for g in module.groups for i, p in enumerate(g) for q in g[i + 1:]}
        pairs = strategy.select_pairs(features, torch.as_tensor(labels), dm.num_classes, self.pairs_per_round,
                                      exclude, ctx.generator)
        questions = [contrast_question(p, q, dm.class_names,
                                       {c: first_of_each(labels, items, [c], self.examples) for c in (p, q)},
                                       lexicon=self.parser.lexicon)
                     for p, q in pairs]
        answers = ctx.ask_many(questions) if questions else []
        self._save_saliency(ctx, [tuple(p) for p in module.asked] + list(pairs), items, labels)
        return {"pairs": [list(p) for p in pairs], "explanations": list(answers)}

    def incorporate(self, ctx: RoundContext, selection: None, answers: dict[str, Any]) -> Incorporation:
        dm, module = ctx.datamodule, ctx.module
        items, labels = self._labelled(dm)
        extras, record = [], []
        for (p, q), text in zip(answers["pairs"], answers["explanations"]):
            parts = sorted(self.parser.parse(text))
            crops = []
            if self.grounding is not None and parts:
                mine = np.isin(labels, [p, q])
                rows, boxes = self.grounding.boxes(dm, items[mine], parts, ctx.generator)
                crops = crop_extras(items[mine], labels[mine], rows, boxes)
            extras += crops
            record.append({"pair": [p, q], "names": [dm.class_names[p], dm.class_names[q]], "explanation": text,
                           "parts": parts, "crops": len(crops)})
        module.morph([tuple(p) for p in answers["pairs"]])
        record = {"round": ctx.round, "pairs": record, "groups": module.groups,
                  "super_classes": module.num_super}
        path = ctx.run_dir / "alice" / f"round_{ctx.round:03d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))
        return Incorporation(extras=extras)

    def metrics(self, ctx: RoundContext) -> dict[str, float]:
        out = super().metrics(ctx)
        module = ctx.module
        out["alice/super_classes"] = float(getattr(module, "num_super", ctx.datamodule.num_classes))
        out["alice/crops"] = float(sum(1 for e in ctx.datamodule.extras if e.kind == "crop"))
        return out

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _labelled(dm) -> tuple[np.ndarray, np.ndarray]:
        items = dm.labelled_indices
        return items, np.array([dm.labels[int(i)] for i in items], dtype=np.int64)

    def _features(self, ctx: RoundContext, items: np.ndarray) -> torch.Tensor:
        """Pooled encoder features of whole labelled images, in batches (eval mode): of the current model,
        or of the encoder as it was before any fit when the strategy asks for ``encoder: initial``."""
        qc = ctx.query_context(items)
        if ctx.strategy.encoder == "current":
            return qc.embeddings().cpu()
        if self._initial_encoder is None:
            sha = recorded_hash(ctx.run_dir / "journal.sqlite", "init.pt")
            state = load_checkpoint(ctx.run_dir / "checkpoints" / "init.pt", sha, context="the initial encoder of "
                                    "strategy.encoder=initial")["state_dict"]
            encoder = copy.deepcopy(ctx.module.backbone)
            encoder.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
            self._initial_encoder = encoder.eval().requires_grad_(False)
        encoder = self._initial_encoder.to(ctx.device)
        return qc.map(items, encoder).float().cpu()

    def sheets(self, run_dir, round):
        """The saliency sheets of the pairs asked so far, after this round's fit (and the expert's views)."""
        return sorted((Path(run_dir) / "alice" / "saliency").glob(f"round_{round:03d}_*.png")) + super().sheets(run_dir, round)

    def _save_saliency(self, ctx: RoundContext, pairs: list[tuple[int, int]], items: np.ndarray,
                       labels: np.ndarray) -> None:
        if not self.saliency_items or not pairs:
            return
        dm, module = ctx.datamodule, ctx.module
        module.to(ctx.device)
        for p, q in pairs:
            chosen = first_of_each(labels, items, [p, q], self.saliency_items)
            batch = dm.pool.__getitems__(chosen) if hasattr(dm.pool, "__getitems__") else None
            if batch is None:
                continue
            x, y = module.inputs(batch).to(ctx.device), torch.as_tensor([dm.labels[i] for i in chosen])
            maps = saliency(module, x, y.to(ctx.device))
            names = dm.class_names
            save_pair_saliency(x, maps, [names[int(c)] for c in y],
                               ctx.run_dir / "alice" / "saliency" / f"round_{ctx.round:03d}_{p}-{q}.png",
                               f"round {ctx.round}: {names[p]} vs {names[q]}")
