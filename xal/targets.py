"""Explanations as decoder targets: token ids ``[t_1 … t_n, </s>]`` padded to a fixed length, and their mask.

The text is tokenised without special tokens, cut to ``max_length − 1`` tokens and ended with the
backbone's end token (T5 ``</s>``, BERT ``[SEP]``); the decoder's start token is prepended only when
the targets are shifted right (:meth:`exil.common.backbones.seq2seq.Seq2SeqBackbone.shift_right`).
"""

from __future__ import annotations

from typing import Sequence

import torch


def explanation_targets(tokenizer, texts: Sequence[str], max_length: int, eos_id: int, pad_id: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, max_length) target ids and (n, max_length) bool mask of ``texts``."""
    pieces = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length - 1)["input_ids"]
    ids = torch.full((len(texts), max_length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(texts), max_length, dtype=torch.bool)
    for i, p in enumerate(pieces):
        seq = list(p)[: max_length - 1] + [eos_id]
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = True
    return ids, mask
