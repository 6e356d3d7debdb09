"""XAL's encoder-decoder classifier (Luo et al., NAACL 2024, §2.2).

The encoder reads the text; its **first token's** state ``h_0`` is the representation that a softmax
classifier reads (``logits = W · dropout(h_0) + b``, cross-entropy ``L_cls``). The decoder, over the
encoder's states, learns by teacher forcing to generate the reasonable explanation of the gold label
(``L_gen``) and to score it above the unreasonable ones (``L_rank``); see :mod:`exil.xal.losses`. Training
minimises ``L = L_cls + λ1 · L_gen + λ2 · L_rank`` (λ1 = 0.1, λ2 = 0.01 in the paper), the explanation
terms over the items of the batch that have explanations (``annotated``), whatever the batch size.

All k explanations of all annotated items of a batch are scored in **one** teacher-forced decoder pass
over the encoder states (repeated k times, no second encoder pass); ``L_gen`` reuses the token
log-probabilities of row 0. At selection time :meth:`XALModule.explain` encodes a batch once and from those states gives the
logits, the generated explanations (greedy or beam search) and their scores ``p`` (one more batched
teacher-forced pass).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from torch import nn

from exil.common.modules.classifier import Classifier
from exil.common.modules.text import text_inputs
from exil.xal.losses import explanation_mask, per_sequence_mean, ranking_loss, token_logprobs, token_mean_nll


class XALModule(Classifier):
    """Encoder classifier + explaining decoder (module docstring).

    Args:
        backbone: a :class:`~exil.common.backbones.seq2seq.Seq2SeqBackbone` (``out_features`` from its config).
        num_classes: filled in from the data module.
        optimizer: partially-applied optimizer.
        gen_weight: λ1. rank_weight: λ2 (0: the "w/o rank" ablation).
        dropout: before the classifier.
        scheduler: optional partially-applied LR scheduler.
        freeze_embeddings: keep the encoder's and the decoder's word embeddings (the decoder's tied LM head
            included; its bias still trains) at their pretrained values — the same model, far fewer
            parameters to update (a bert2bert's two 30,522-word tables are most of it), for small CPU runs.
    """

    reads_text = True  # its inputs are token ids (abilities.ReadsText)

    def __init__(self, backbone: nn.Module, num_classes: int,
                 optimizer: Callable[..., torch.optim.Optimizer] = partial(torch.optim.AdamW, lr=1e-4),
                 gen_weight: float = 0.1, rank_weight: float = 0.01, dropout: float = 0.1,
                 scheduler: Callable[..., Any] | None = None, freeze_embeddings: bool = False):
        super().__init__(backbone, num_classes, optimizer, dropout, scheduler)
        self.gen_weight, self.rank_weight = gen_weight, rank_weight
        if freeze_embeddings:
            model = backbone.model
            for table in (model.get_input_embeddings(), model.get_decoder().get_input_embeddings()):
                table.weight.requires_grad_(False)

    def configure_optimizers(self):
        """The optimizer over the parameters that train (frozen embeddings are left out)."""
        return self.optimizers_for([p for p in self.parameters() if p.requires_grad])

    def inputs(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return text_inputs(batch)

    def features(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.backbone.encode(x)[:, 0]

    # ------------------------------------------------------------ explanations
    def explanation_scores(self, h: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
                           target_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced scores of k explanations per item in one decoder pass.

        ``h`` (B, T, d) encoder states, ``mask`` (B, T), ``targets`` / ``target_mask`` (B, k, L) →
        ``p`` (B, k) length-normalised log-probabilities and the token log-probabilities (B, k, L) they
        average (one cross-entropy over the vocabulary, which ``L_gen`` reuses).
        """
        b, k, length = targets.shape
        flat, flat_mask = targets.reshape(b * k, length), target_mask.reshape(b * k, length)
        logits = self.backbone.decode_logits(h.repeat_interleave(k, 0), mask.repeat_interleave(k, 0),
                                             self.backbone.shift_right(flat), flat_mask.long())
        token_lp = token_logprobs(logits, flat)
        return per_sequence_mean(token_lp, flat_mask).view(b, k), token_lp.view(b, k, length)

    def loss_terms(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``cls``, ``gen`` and ``rank`` of the batch (the last two 0 without annotated items)."""
        x = self.inputs(batch)
        h = self.backbone.encode(x)
        terms = {"cls": self.cross_entropy(self.classify(h[:, 0]), batch)}
        zero = h.new_zeros(())
        terms["gen"], terms["rank"] = zero, zero
        annotated = batch.get("annotated")
        if annotated is None or not bool(annotated.any()) or not (self.gen_weight or self.rank_weight):
            return terms
        sel = annotated.nonzero().squeeze(1)
        targets, tmask = batch["expl_ids"][sel].long(), batch["expl_mask"][sel].bool()
        if not self.rank_weight:  # only the reasonable explanation is needed
            targets, tmask = targets[:, :1], tmask[:, :1]
        width = int(tmask.sum(-1).max())
        targets, tmask = targets[..., :width], tmask[..., :width]
        p, token_lp = self.explanation_scores(h[sel], x["attention_mask"][sel], targets, tmask)
        terms["gen"] = token_mean_nll(token_lp[:, 0], tmask[:, 0])
        if self.rank_weight:
            terms["rank"] = ranking_loss(p).mean()
        return terms

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        t = self.loss_terms(batch)
        self._last_terms = t
        return t["cls"] + self.gen_weight * t["gen"] + self.rank_weight * t["rank"]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        n = len(batch["y"])
        for name in ("gen", "rank"):
            self.log(f"train/{name}", self._last_terms[name].detach(), on_step=False, on_epoch=True, batch_size=n)
        return loss

    @torch.no_grad()
    def explain(self, x: dict[str, torch.Tensor], num_beams: int = 1, max_new_tokens: int = 32
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One batch at selection time: (logits (B, C), generated explanations (B, L'), their scores p (B,)).

        One encoder pass; generation from its states; then one teacher-forced pass scoring the generated
        tokens up to and including the first end token.
        """
        h = self.backbone.encode(x)
        mask = x["attention_mask"]
        logits = self.classify(h[:, 0])
        tokens = self.backbone.generate(h, mask, num_beams=num_beams, max_new_tokens=max_new_tokens)
        tmask = explanation_mask(tokens, self.backbone.eos_token_id)
        p, _ = self.explanation_scores(h, mask, tokens[:, None], tmask[:, None])
        return logits, tokens, p[:, 0]
