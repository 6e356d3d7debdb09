"""A real person at the terminal.

For each question the item is shown — text printed, an image saved as a PNG
(``<run dir>/oracle/round_RRR_item_N.png``, path printed) — with the model's
prediction and top classes; the person types an answer. The Asker validates it;
an invalid answer prints what would be valid and the question is asked again.
``input_fn``/``print_fn`` are injectable so the same code is driven by tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from common.oracle.base import Oracle, OracleContext, Question


def save_image(x: torch.Tensor, path: Path, scale: int = 8) -> Path:
    """Save a (C, H, W) or (H, W) tensor in [0, 1] as a PNG, upscaled by ``scale`` for a human eye."""
    import matplotlib.pyplot as plt

    a = x.detach().float().cpu().numpy()
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)
    a = np.clip(a, 0, 1)
    if scale > 1:
        a = np.kron(a, np.ones((scale, scale) + (() if a.ndim == 2 else (1,))))
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
    return path


class TerminalOracle(Oracle):
    kinds = ("label",)

    def __init__(self, max_attempts: int = 20, top: int = 3, input_fn: Callable[[str], str] = input,
                 print_fn: Callable[..., None] = print):
        self.max_attempts, self.top = max_attempts, top
        self.input_fn, self.print_fn = input_fn, print_fn

    def show(self, question: Question, ctx: OracleContext) -> None:
        p = self.print_fn
        stage = "initial set" if ctx.round < 0 else f"round {ctx.round}"
        p(f"\n── {stage} · {question.kind} · item {question.key} ──")
        item = ctx.datamodule.pool_item(question.item) if question.item is not None else {}
        if "text" in item:
            p(str(item["text"]))
        elif "x" in item and torch.is_tensor(item["x"]) and item["x"].dim() in (2, 3):
            name = "initial" if ctx.round < 0 else f"round_{ctx.round:03d}"
            path = save_image(item["x"], ctx.out_dir / f"{name}_item_{question.key}.png")
            p(f"image: {path}")
        probs = question.payload.get("probs")
        if probs is not None:
            order = np.argsort(probs)[::-1][: self.top]
            p("model: " + ", ".join(f"{ctx.class_names[c]} ({probs[c]:.2f})" for c in order))

    def answer(self, question: Question, ctx: OracleContext) -> Any:
        self.show(question, ctx)
        classes = ", ".join(f"{i}={n}" for i, n in enumerate(ctx.class_names))
        return self.input_fn(f"label? [{classes}] > ")

    def reject(self, question: Question, answer: Any, reason: str) -> None:
        self.print_fn(f"✗ {reason}")
