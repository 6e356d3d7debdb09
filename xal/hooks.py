"""XAL's round (Luo et al., NAACL 2024, §2.1): labels and explanations for the queried texts.

Every newly labelled item — the initial set included — is explained: the teacher explains every class, the
gold label's explanation being the reasonable one and the others the unreasonable ones. Where one teacher
gives labels and explanations (``ctx.one_teacher``), both are asked in one ``explain_label`` question, so a
person reads each text once; where another teacher labels (``oracle=web_explanations``: the data's labels),
the ``explain_label`` question follows the ``label`` question and carries its answer. They become the item's
annotation fields, served with its training batches: ``expl_ids`` (k, L) and ``expl_mask`` (k, L), row 0
the gold label's explanation and rows 1 … k−1 the other classes' in class order (:mod:`exil.xal.targets`).
"""

from __future__ import annotations

from typing import Any

import torch

from exil.common.abilities import Explains, HasTexts, Need
from exil.common.errors import ConfigError
from exil.common.hooks import Incorporation, RoundContext, RoundHooks, label_questions
from exil.common.oracle.explanations import explanation_question
from exil.common.oracle.question import Question
from exil.common.strategies.base import Selection
from exil.xal.targets import explanation_targets


class XALHooks(RoundHooks):
    """Labels and explanations of every class (module docstring).

    Args:
        max_explanation_length: decoder target tokens per explanation (end token included).
    """

    skip_labels = False  # every labelled item is explained / annotated next
    needs = (Need("datamodule", HasTexts, "a text dataset (exil.common.data.text) whose items the teacher explains"),
             Need("module", Explains, "the encoder–decoder that learns from explanations (exil.xal.module.XALModule)"))

    def __init__(self, max_explanation_length: int = 32, **kwargs: Any):
        super().__init__(**kwargs)
        if max_explanation_length < 2:
            raise ConfigError(f"method.hooks.max_explanation_length must be at least 2, got {max_explanation_length}")
        self.max_explanation_length = max_explanation_length

    def initial_labels(self, ctx: RoundContext, questions: list[Question]) -> list[int]:
        if not ctx.one_teacher("label", "explain_label"):
            return super().initial_labels(ctx, questions)
        answers = self._ask_both(ctx, questions, generated=False)  # the initial model has not learnt any yet
        return [answers[int(q.item)]["label"] for q in questions]

    def initial(self, ctx: RoundContext, labels: dict[int, int]) -> Incorporation:
        # asked together with the labels (the journal gives those answers back), or now for the given labels
        answers = self._explain(ctx, labels, generated=False)
        return Incorporation(annotations=self._annotations(ctx, answers))

    def ask(self, ctx: RoundContext, selection: Selection) -> dict[int, Any]:
        questions = label_questions(ctx, selection, self.predict_proba(ctx, selection.indices), self.skip_labels)
        if ctx.one_teacher("label", "explain_label"):
            explanations = self._ask_both(ctx, questions)
            labels = {i: a["label"] for i, a in explanations.items()}
        else:
            labels = {i: int(y) for i, y in zip(map(int, selection.indices), ctx.ask_many(questions))}
            explanations = self._explain(ctx, labels)
        return {"labels": labels, "explanations": explanations}

    def _ask_both(self, ctx: RoundContext, label_qs: list[Question], generated: bool = True
                  ) -> dict[int, dict[str, Any]]:
        """One ``explain_label`` question per ``label`` question, asking the label too (with what the label
        question shows: the model's probabilities, why the item was chosen)."""
        items = [int(q.item) for q in label_qs]
        own = self._generated(ctx, items) if generated else {}
        shown = ("probs", "strategy", "score", "why")
        questions = [explanation_question(i, None, ctx.datamodule.text_of(i), own.get(i),
                                          **{k: q.payload.get(k) for k in shown}) for i, q in zip(items, label_qs)]
        return dict(zip(items, ctx.ask_many(questions)))

    def incorporate(self, ctx: RoundContext, selection: Selection, answers: dict[str, Any]) -> Incorporation:
        return Incorporation(labels=dict(answers["labels"]),
                             annotations=self._annotations(ctx, answers["explanations"]))

    def _explain(self, ctx: RoundContext, labels: dict[int, int], generated: bool = True) -> dict[int, dict[str, Any]]:
        dm = ctx.datamodule
        items = list(labels)
        own = self._generated(ctx, items) if generated else {}
        answers = ctx.ask_many([explanation_question(i, labels[i], dm.text_of(i), own.get(i)) for i in items])
        return dict(zip(items, answers))

    @staticmethod
    def _generated(ctx: RoundContext, items: list[int]) -> dict[int, str]:
        """The explanation the model generates for each item now (greedy), shown to a person beside the text."""
        module = ctx.module.to(ctx.device)
        if not items or not hasattr(module, "explain"):
            return {}
        was = module.training
        module.eval()
        try:
            tokens = torch.cat([module.explain({k: v.to(ctx.device) for k, v in module.inputs(b).items()})[1].cpu()
                                for b in ctx.datamodule.pool_dataloader(items)])
        finally:
            module.train(was)
        texts = ctx.datamodule.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return {i: t.strip() for i, t in zip(items, texts)}  # "" too: the page says the model writes nothing yet

    def _annotations(self, ctx: RoundContext, answers: dict[int, dict[str, Any]]) -> dict[int, dict[str, torch.Tensor]]:
        if not answers:
            return {}
        backbone = ctx.module.backbone
        items = list(answers)
        texts = []
        for i in items:
            y, expl = answers[i]["label"], answers[i]["explanations"]
            texts += [expl[y], *(e for c, e in enumerate(expl) if c != y)]  # gold first
        ids, mask = explanation_targets(ctx.datamodule.tokenizer, texts, self.max_explanation_length,
                                        backbone.eos_token_id, backbone.pad_token_id)
        k = len(texts) // len(items)
        ids, mask = ids.view(len(items), k, -1), mask.view(len(items), k, -1)
        return {i: {"expl_ids": ids[n].to(torch.int32), "expl_mask": mask[n]} for n, i in enumerate(items)}
