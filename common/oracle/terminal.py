"""A real person at the terminal.

For each question the item is shown — text printed, an image saved as a PNG
(``<run dir>/oracle/round_RRR_item_N.png``, path printed) — with the model's
prediction and top classes; the person types an answer. The Asker validates it;
an invalid answer prints what would be valid and the question is asked again.

* ``label``: a class number or name.
* ``relevance``: the image is saved with a numbered ``grid`` × ``grid`` overlay; the person types
  the numbers of the cells that hold what matters for the label (``all`` / ``none`` allowed), which
  become the relevant mask.
* ``correct_explanation`` (CAIPI): the image is saved with the explanation's components highlighted
  and numbered by their ids (for text, the components are printed); the person types the ids of
  those that do not matter for the label (``none`` if the model is right for the right reasons).
* ``choose_exemplars`` (eXBL): every candidate's explanation is saved as an overlay on its image in
  one numbered contact sheet; the person types the good one's number, then the bad one's.
* ``contrast_classes`` (ALICE): example images of the two classes are saved side by side in one
  sheet; the person types how they would tell the classes apart, in one sentence.
* ``explain_label`` (XAL): the text and its label are printed; the person types why the text has that
  label, then, for every other class, why someone might (wrongly) give it that one.
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
    kinds = ("label", "relevance", "choose_exemplars", "correct_explanation", "contrast_classes", "explain_label")

    def __init__(self, max_attempts: int = 20, top: int = 3, grid: int = 4, input_fn: Callable[[str], str] = input,
                 print_fn: Callable[..., None] = print):
        self.max_attempts, self.top, self.grid = max_attempts, top, grid
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
        if question.kind == "choose_exemplars":
            return self.exemplars(question, ctx)
        if question.kind == "contrast_classes":
            return self.contrast(question, ctx)
        if question.kind == "explain_label":
            return self.explanations(question, ctx)
        self.show(question, ctx)
        if question.kind == "relevance":
            return self.relevance(question, ctx)
        if question.kind == "correct_explanation":
            return self.correction(question, ctx)
        classes = ", ".join(f"{i}={n}" for i, n in enumerate(ctx.class_names))
        return self.input_fn(f"label? [{classes}] > ")

    def reject(self, question: Question, answer: Any, reason: str) -> None:
        self.print_fn(f"✗ {reason}")

    def relevance(self, question: Question, ctx: OracleContext) -> Any:
        h, w = question.payload["shape"]
        x = ctx.datamodule.pool_item(question.item)["x"]
        path = save_grid(x, self.grid, ctx.out_dir / f"round_{max(ctx.round, -1):03d}_item_{question.key}_grid.png")
        self.print_fn(f"grid: {path} (cells numbered 0..{self.grid ** 2 - 1}, row by row)")
        typed = self.input_fn("relevant cells? [numbers, 'all' or 'none'] > ").strip().lower()
        if typed in ("all", "none"):
            return {"relevant": np.full((h, w), typed == "all")}
        try:
            cells = [int(t) for t in typed.replace(",", " ").split()]
        except ValueError:
            return typed  # invalid: the validator says so and the question is asked again
        if any(not 0 <= c < self.grid ** 2 for c in cells):
            return typed
        return {"relevant": grid_mask(cells, self.grid, h, w)}

    def correction(self, question: Question, ctx: OracleContext) -> Any:
        p = question.payload
        shown = p["components"]
        self.print_fn(f"predicted: {ctx.class_names[p['prediction']]}")
        masks = p["component_masks"]
        if masks.dim() == 3:  # image components
            x = ctx.datamodule.pool_item(question.item)["x"]
            path = save_components(x, masks, shown, ctx.out_dir / f"round_{ctx.round:03d}_item_{question.key}_why.png")
            self.print_fn(f"because of the highlighted parts {shown}: {path}")
        else:
            self.print_fn(f"because of the components {shown}")
        return self.input_fn("which of them do NOT matter for the label? [numbers or 'none'] > ")

    def exemplars(self, question: Question, ctx: OracleContext) -> Any:
        cands = question.payload["candidates"]
        labels = question.payload.get("labels") or [None] * len(cands)
        images = [ctx.datamodule.pool_item(i)["x"] for i in cands]
        path = save_overlays(images, question.payload["maps"],
                             [f"{p}: {ctx.class_names[y] if y is not None else ''}" for p, y in enumerate(labels)],
                             ctx.out_dir / f"round_{ctx.round:03d}_exemplars.png")
        self.print_fn(f"\n── round {ctx.round} · choose_exemplars · {len(cands)} candidate explanations ──")
        self.print_fn(f"overlays: {path} (red = where the model looks)")
        return self.input_fn("good and bad exemplar? [two numbers, e.g. '0 3'] > ")

    def contrast(self, question: Question, ctx: OracleContext) -> Any:
        (p, q), names = question.payload["classes"], question.payload["names"]
        self.print_fn(f"\n── round {ctx.round} · contrast_classes · {names[0]} vs {names[1]} ──")
        examples = question.payload.get("examples") or {}
        rows = [(n, [ctx.datamodule.pool_item(i)["x"] for i in examples.get(c, [])]) for c, n in ((p, names[0]),
                                                                                                (q, names[1]))]
        if any(images for _, images in rows):
            path = save_rows(rows, ctx.out_dir / f"round_{ctx.round:03d}_contrast_{question.key}.png")
            self.print_fn(f"examples: {path} (top row {names[0]}, bottom row {names[1]})")
        return self.input_fn(f"How would you differentiate {names[0]} and {names[1]}? > ")


    def explanations(self, question: Question, ctx: OracleContext) -> Any:
        label, names = int(question.payload["label"]), list(ctx.class_names)
        self.print_fn(f"\n── {'initial set' if ctx.round < 0 else f'round {ctx.round}'} · explain_label · "
                      f"item {question.key} ──")
        for n, part in enumerate(question.payload.get("text") or ctx.datamodule.text_of(question.item)):
            self.print_fn(f"{'text' if n == 0 else 'text b'}: {part}")
        self.print_fn(f"label: {names[label]}")
        out = [""] * len(names)
        out[label] = self.input_fn(f"Why is it {names[label]}? > ")
        for c in (c for c in range(len(names)) if c != label):
            out[c] = self.input_fn(f"Why might someone (wrongly) say {names[c]}? > ")
        return {"label": label, "explanations": out}


def save_rows(rows: list[tuple[str, list[torch.Tensor]]], path: Path) -> Path:
    """One row of images per (title, images), e.g. examples of two classes to contrast."""
    import matplotlib.pyplot as plt

    cols = max(1, max(len(images) for _, images in rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(2 * cols, 2.2 * len(rows)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (title, images) in enumerate(rows):
        for c, x in enumerate(images):
            a = x.detach().float().cpu()
            a = a[0] if a.shape[0] == 1 else a[:3].permute(1, 2, 0)
            axes[r, c].imshow(a.clamp(0, 1).numpy(), cmap="gray" if a.dim() == 2 else None, vmin=0, vmax=1)
        axes[r, 0].set_title(title, fontsize=9, loc="left")
    return _save(fig, path, dpi=80)


def _save(fig, path: Path, dpi: int = 100) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=dpi)
    plt.close(fig)
    return path


def save_components(x: torch.Tensor, masks: torch.Tensor, ids: list[int], path: Path) -> Path:
    """The image with each shown component tinted and labelled with its id at its centre."""
    import matplotlib.pyplot as plt

    a = x.detach().float().cpu()
    a = (a.mean(0) if a.dim() == 3 else a).numpy()
    h, w = a.shape
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(a, cmap="gray")
    overlay = np.zeros((h, w, 4))
    colours = plt.get_cmap("tab10")
    for j, (m, c) in enumerate(zip(masks.cpu().numpy().astype(bool), ids)):
        overlay[m] = (*colours(j % 10)[:3], 0.45)
        rows, cols = np.nonzero(m)
        if len(rows):
            ax.text(cols.mean(), rows.mean(), str(c), color="white", ha="center", va="center", fontsize=9,
                    weight="bold")
    ax.imshow(overlay)
    ax.axis("off")
    return _save(fig, path, dpi=100)


def grid_mask(cells: list[int], grid: int, h: int, w: int) -> np.ndarray:
    """The (h, w) mask covered by the given cells of a ``grid`` × ``grid`` partition (row-major)."""
    rows = np.minimum(np.arange(h) * grid // h, grid - 1)
    cols = np.minimum(np.arange(w) * grid // w, grid - 1)
    cell = rows[:, None] * grid + cols[None, :]
    return np.isin(cell, cells)


def save_grid(x: torch.Tensor, grid: int, path: Path, scale: int = 8) -> Path:
    """The image with its ``grid`` × ``grid`` cells outlined and numbered."""
    import matplotlib.pyplot as plt

    a = x.detach().float().cpu().numpy()
    a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)
    h, w = a.shape[:2]
    fig, ax = plt.subplots(figsize=(max(3, w * scale / 100), max(3, h * scale / 100)))
    ax.imshow(np.clip(a, 0, 1), cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
    for k in range(1, grid):
        ax.axhline(k * h / grid - 0.5, color="yellow", lw=0.8)
        ax.axvline(k * w / grid - 0.5, color="yellow", lw=0.8)
    for r in range(grid):
        for c in range(grid):
            ax.text((c + 0.5) * w / grid - 0.5, (r + 0.5) * h / grid - 0.5, str(r * grid + c), color="yellow",
                    ha="center", va="center", fontsize=8)
    ax.axis("off")
    return _save(fig, path, dpi=100)


def save_overlays(images: list[torch.Tensor], maps: torch.Tensor, titles: list[str], path: Path) -> Path:
    """A numbered contact sheet: each image in grey with its explanation map over it in red."""
    import matplotlib.pyplot as plt

    n = len(images)
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, x, m, t in zip(axes.ravel(), images, maps, titles):
        a = x.detach().float().cpu()
        a = a.mean(0) if a.dim() == 3 else a
        ax.imshow(a.numpy(), cmap="gray")
        ax.imshow(m.detach().float().cpu().numpy(), cmap="Reds", alpha=0.5, vmin=0, vmax=1)
        ax.set_title(t, fontsize=8)
    return _save(fig, path, dpi=80)
