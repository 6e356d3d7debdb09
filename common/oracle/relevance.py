"""The ``relevance`` question: "which pixels of this item are relevant to its label?"

The teacher answers with a binary mask of the relevant input (the annotations of RRR, Ross et al.
2017, and of explanation-guided alternating training, Tao & Shokri 2025) and, optionally, the mask
of the pixels known to be *ir*relevant (Ross et al.'s annotation ``A``: for decoy MNIST, the
swatch); when it is absent, everything that is not relevant is irrelevant.

Masks travel through the journal as JSON: ``{"shape": [H, W], "bits": base64(packbits(mask))}``,
98 bytes of bits for a 28×28 mask. The question's payload carries the expected ``shape``; the
validator rejects a mask of any other shape, and returns the answer in that canonical encoding.

Views: the simulated teacher answers from the dataset's ground-truth masks; at the terminal a person types
the numbered cells of a grid; on the web page a person paints the masks with a brush (an eraser, a size)
or toggles the cells of a grid.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch

from common.oracle.base import InvalidAnswer, OracleContext, Question
from common.oracle.kinds import COMMON_VIEWS, QuestionKind, register


def encode_mask(mask: torch.Tensor | np.ndarray) -> dict[str, Any]:
    a = np.asarray(mask.cpu() if torch.is_tensor(mask) else mask).astype(bool)
    return {"shape": list(a.shape), "bits": base64.b64encode(np.packbits(a.ravel()).tobytes()).decode()}


def decode_mask(encoded: dict[str, Any]) -> torch.Tensor:
    shape = [int(s) for s in encoded["shape"]]
    bits = np.frombuffer(base64.b64decode(encoded["bits"]), dtype=np.uint8)
    n = int(np.prod(shape))
    if len(bits) * 8 < n:
        raise ValueError(f"{len(bits) * 8} bits cannot fill a mask of shape {shape}")
    return torch.from_numpy(np.unpackbits(bits)[:n].astype(bool).reshape(shape))


def relevance_question(item: int, shape: tuple[int, ...], label: int | None = None) -> Question:
    """Ask for the relevance mask of pool item ``item`` whose spatial shape is ``shape`` (H, W), labelled ``label``."""
    payload: dict[str, Any] = {"shape": list(shape)}
    if label is not None:
        payload["label"] = int(label)
    return Question("relevance", key=str(int(item)), item=int(item), payload=payload)


def relevance_questions(datamodule: Any, items: list[int], labels: dict[int, int] | None = None) -> list[Question]:
    """``relevance`` questions for pool items, each expecting a mask of the items' spatial shape (and naming the
    item's label, shown to a person)."""
    shape = tuple(datamodule.input_shape[-2:])
    labels = labels or {}
    return [relevance_question(i, shape, labels.get(int(i))) for i in items]


def relevance_masks(answer: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``{"relevant": (H, W) bool, "irrelevant": (H, W) bool}`` from a validated answer."""
    relevant = decode_mask(answer["relevant"])
    irrelevant = decode_mask(answer["irrelevant"]) if answer.get("irrelevant") is not None else ~relevant
    return {"relevant": relevant, "irrelevant": irrelevant}


@register
class Relevance(QuestionKind):
    name = "relevance"
    view = COMMON_VIEWS / "relevance.js"

    def validate(self, question: Question, answer: Any, ctx: OracleContext) -> dict[str, Any]:
        """``{"relevant": mask[, "irrelevant": mask]}``; a mask is a bool array / tensor or its encoding."""
        if torch.is_tensor(answer) or isinstance(answer, np.ndarray):
            answer = {"relevant": answer}
        if not isinstance(answer, dict) or "relevant" not in answer:
            raise InvalidAnswer("answer a relevance mask: {'relevant': mask of shape "
                                f"{question.payload.get('shape')}, optional 'irrelevant': mask}}")
        out = {}
        for name in ("relevant", "irrelevant"):
            m = answer.get(name)
            if m is None:
                continue
            try:
                t = decode_mask(m) if isinstance(m, dict) else torch.as_tensor(np.asarray(m)).bool()
            except (KeyError, TypeError, ValueError) as e:
                raise InvalidAnswer(f"the {name} mask cannot be read: {e}") from None
            t = t.reshape(t.shape[-2:]) if t.dim() > 2 and all(s == 1 for s in t.shape[:-2]) else t
            want = question.payload.get("shape")
            if want is not None and list(t.shape) != list(want):
                raise InvalidAnswer(f"the {name} mask has shape {list(t.shape)}; this item needs {list(want)}")
            out[name] = encode_mask(t)
        return out

    def simulate(self, question: Question, ctx: OracleContext, teacher: Any) -> Any:
        return teacher.relevance(question, ctx)

    def terminal(self, question: Question, ctx: OracleContext, term: Any) -> Any:
        from common.oracle.sheets import grid_mask, save_grid

        term.show(question, ctx)
        h, w = question.payload["shape"]
        x = ctx.datamodule.pool_item(question.item)["x"]
        path = save_grid(x, term.grid, ctx.out_dir / f"round_{max(ctx.round, -1):03d}_item_{question.key}_grid.png")
        term.say(f"grid: {path} (cells numbered 0..{term.grid ** 2 - 1}, row by row)")
        typed = term.ask("relevant cells? [numbers, 'all' or 'none'] > ").strip().lower()
        if typed in ("all", "none"):
            return {"relevant": np.full((h, w), typed == "all")} if typed == "all" else \
                {"relevant": np.zeros((h, w), bool), "irrelevant": np.ones((h, w), bool)}
        try:
            cells = [int(t) for t in typed.replace(",", " ").split()]
        except ValueError:
            return typed  # invalid: the validator says so and the question is asked again
        if any(not 0 <= c < term.grid ** 2 for c in cells):
            return typed
        return {"relevant": grid_mask(cells, term.grid, h, w)}

    def web(self, question: Question, ctx: OracleContext, media: Any) -> dict[str, Any]:
        from common.explain.segmentation import grid
        from common.web.media import item_view, label_map

        h, w = question.payload["shape"]
        cell = max(1, min(h, w) // 7)
        cells = grid(h, w, cell=cell)
        label = question.payload.get("label", ctx.datamodule.labels.get(question.item))
        return {"item": item_view(ctx, question.item, media), "shape": [h, w], "cells": label_map(cells % 256),
                "label": None if label is None else ctx.class_names[label]}

    def summary(self, answer: Any, ctx: OracleContext) -> str:
        m = relevance_masks(answer)
        return f"relevant {int(m['relevant'].sum())} px, irrelevant {int(m['irrelevant'].sum())} px"
