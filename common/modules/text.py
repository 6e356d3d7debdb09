"""Text inputs for exil modules: a text batch (``exil.common.data.text``) holds ``x`` = token ids plus the
tokenizer's masks; a text model's input is the dict Hugging Face models take."""

from __future__ import annotations

from typing import Any

import torch

from exil.common.data.text import TOKEN_FIELDS
from exil.common.modules.classifier import Classifier


def text_inputs(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``{"input_ids": x, "attention_mask": ..., "token_type_ids": ...}`` of a text batch."""
    return {"input_ids": batch["x"], **{k: batch[k] for k in TOKEN_FIELDS if k in batch}}


class TextClassifier(Classifier):
    """:class:`~exil.common.modules.classifier.Classifier` over a text backbone (``backbone=minilm``):
    ``logits = W · dropout(pool(encoder(tokens))) + b``; the baselines of text experiments."""

    reads_text = True  # its inputs are token ids (abilities.ReadsText)

    def inputs(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return text_inputs(batch)
