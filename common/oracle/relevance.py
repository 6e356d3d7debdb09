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
import math
import numbers
from typing import Any

import numpy as np
import torch

from exil.common.oracle.kinds import COMMON_VIEWS, QuestionKind, register
from exil.common.oracle.label import brief
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question


def encode_mask(mask: torch.Tensor | np.ndarray) -> dict[str, Any]:
    a = np.asarray(mask.cpu() if torch.is_tensor(mask) else mask).astype(bool)
    return {"shape": list(a.shape), "bits": base64.b64encode(np.packbits(a.ravel()).tobytes()).decode()}


def decode_mask(encoded: dict[str, Any]) -> torch.Tensor:
    """The mask of an :func:`encode_mask` encoding; raises ``KeyError``, ``TypeError`` or ``ValueError`` for one
    that is not (a shape that is not a list of sizes ≥ 0, bits that are not base64 or too few for the shape)."""
    shape, bits = encoded["shape"], encoded["bits"]
    if not isinstance(shape, (list, tuple)) or len(shape) > 32 or \
            not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and 0 <= s < 2 ** 31 for s in shape):
        raise ValueError("the shape is not a list of sizes")
    if not isinstance(bits, (str, bytes)):
        raise TypeError("the bits are not a base64 string")
    shape = [int(s) for s in shape]
    n = math.prod(shape)
    if len(bits) * 6 < n:  # base64: 6 bits a character; before decoding a huge string for a huge shape
        raise ValueError(f"{len(bits) * 6} bits cannot fill a mask of shape {shape}")
    raw = np.frombuffer(base64.b64decode(bits), dtype=np.uint8)
    if len(raw) * 8 < n:
        raise ValueError(f"{len(raw) * 8} bits cannot fill a mask of shape {shape}")
    return torch.from_numpy(np.unpackbits(raw)[:n].astype(bool).reshape(shape))


def relevance_question(item: int, shape: tuple[int, ...], label: int | None = None,
                       saliency: torch.Tensor | None = None) -> Question:
    """Ask for the relevance mask of pool item ``item`` whose spatial shape is ``shape`` (H, W), labelled ``label``;
    ``saliency`` (H, W): where the current model looks, shown to a person beside the item."""
    payload: dict[str, Any] = {"shape": list(shape)}
    if label is not None:
        payload["label"] = int(label)
    if saliency is not None:
        payload["saliency"] = saliency
    return Question("relevance", key=str(int(item)), item=int(item), payload=payload)


def relevance_questions(datamodule: Any, items: list[int], labels: dict[int, int] | None = None,
                        saliency: dict[int, torch.Tensor] | None = None) -> list[Question]:
    """``relevance`` questions for pool items, each expecting a mask of the items' spatial shape (and naming the
    item's label and, given ``saliency``, where the model looks — both shown to a person)."""
    shape = tuple(datamodule.input_shape[-2:])
    labels, saliency = labels or {}, saliency or {}
    return [relevance_question(i, shape, labels.get(int(i)), saliency.get(int(i))) for i in items]


def relevance_masks(answer: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``{"relevant": (H, W) bool, "irrelevant": (H, W) bool}`` from a validated answer."""
    relevant = decode_mask(answer["relevant"])
    irrelevant = decode_mask(answer["irrelevant"]) if answer.get("irrelevant") is not None else ~relevant
    return {"relevant": relevant, "irrelevant": irrelevant}


def _as_mask(m: Any) -> torch.Tensor:
    """A bool tensor from an array, tensor or nested list of true/false or 0/1 (raises ``TypeError``/``ValueError``)."""
    a = m.detach().cpu().numpy() if torch.is_tensor(m) else np.asarray(m)
    if a.dtype.kind not in "biuf":
        raise TypeError("a mask holds true/false or 0/1" + ("" if a.dtype == object else f", not {a.dtype}"))
    if a.dtype.kind != "b" and not np.isin(a, (0, 1)).all():
        raise ValueError("a mask holds true/false or 0/1 only")
    return torch.from_numpy(a.astype(bool))


@register
class Relevance(QuestionKind):
    name = "relevance"
    view = COMMON_VIEWS / "relevance.js"

    def validate(self, question: Question, answer: Any, ctx: OracleContext) -> dict[str, Any]:
        """``{"relevant": mask[, "irrelevant": mask]}``; a mask is a bool array / tensor / nested list (of
        true/false or 0/1 only: a float map such as a saliency map is refused, not thresholded) or its
        encoding, of the payload's ``shape`` (leading axes of size 1 are dropped); ``relevant`` is required.
        Returns both in the canonical encoding (:func:`encode_mask`)."""
        want = question.payload.get("shape")
        if torch.is_tensor(answer) or isinstance(answer, np.ndarray):
            answer = {"relevant": answer}
        if not isinstance(answer, dict) or answer.get("relevant") is None:
            raise InvalidAnswer(f"answer a relevance mask: {{'relevant': mask of shape {want}, optional "
                                "'irrelevant': mask}")
        out = {}
        for name in ("relevant", "irrelevant"):
            m = answer.get(name)
            if m is None:
                continue
            try:
                t = decode_mask(m) if isinstance(m, dict) else _as_mask(m)
            except KeyError as e:
                raise InvalidAnswer(f"the {name} mask's encoding has no {brief(e.args[0] if e.args else None)}: "
                                    f"send {{'shape': {want}, 'bits': base64 of its packed bits}}") from None
            except (TypeError, ValueError, OverflowError) as e:
                why = str(e) or type(e).__name__
                why = why if len(why) <= 200 else why[:199] + "…"
                raise InvalidAnswer(f"the {name} mask cannot be read: {why}") from None
            t = t.reshape(t.shape[-2:]) if t.dim() > 2 and all(s == 1 for s in t.shape[:-2]) else t
            if want is not None and list(t.shape) != list(want):
                raise InvalidAnswer(f"the {name} mask has shape {brief(list(t.shape), 200)}; this item needs "
                                    f"{list(want)}")
            out[name] = encode_mask(t)
        return out

    def simulate(self, question: Question, ctx: OracleContext, teacher: Any) -> Any:
        return teacher.relevance(question, ctx)

    def terminal(self, question: Question, ctx: OracleContext, term: Any) -> Any:
        from exil.common.oracle.sheets import grid_mask, save_grid

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
        from exil.common.explain.segmentation import grid
        from exil.common.web.media import item_view, label_map

        h, w = question.payload["shape"]
        cell = max(1, min(h, w) // 7)
        cells = grid(h, w, cell=cell)
        label = question.payload.get("label", ctx.datamodule.labels.get(question.item))
        out = {"item": item_view(ctx, question.item, media), "shape": [h, w], "cells": label_map(cells % 256),
               "label": None if label is None else ctx.class_names[label]}
        if question.payload.get("saliency") is not None:  # where the model looks now, in red over the image
            x = ctx.datamodule.pool_item(question.item)["x"]
            out["saliency"] = media.overlay(x, torch.as_tensor(question.payload["saliency"]))
        return out

    agreement_measure = "iou"

    def agreement(self, a: Any, b: Any, method: Any = None) -> float:
        """The intersection over union of the two ``relevant`` masks (two empty masks agree fully)."""
        x, y = decode_mask(a["relevant"]).bool(), decode_mask(b["relevant"]).bool()
        union = int((x | y).sum())
        return 1.0 if union == 0 else int((x & y).sum()) / union

    def summary(self, answer: Any, ctx: OracleContext) -> str:
        m = relevance_masks(answer)
        return f"relevant {int(m['relevant'].sum())} px, irrelevant {int(m['irrelevant'].sum())} px"
