"""Images for a person at the terminal: items, numbered grids, components, contact sheets (saved PNGs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from exil.common.display import as_display


def save_image(x: torch.Tensor, path: Path, scale: int = 8) -> Path:
    """Save a (C, H, W) or (H, W) tensor in [0, 1] as a PNG, upscaled by ``scale`` for a human eye."""
    import matplotlib.pyplot as plt

    a = as_display(x)
    if scale > 1:
        a = np.kron(a, np.ones((scale, scale) + (() if a.ndim == 2 else (1,))))
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
    return path


def save_rows(rows: list[tuple[str, list[torch.Tensor]]], path: Path) -> Path:
    """One row of images per (title, images), e.g. examples of two classes to contrast."""
    import matplotlib.pyplot as plt

    cols = max(1, max(len(images) for _, images in rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(2 * cols, 2.2 * len(rows)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (title, images) in enumerate(rows):
        for c, x in enumerate(images):
            a = as_display(x)
            axes[r, c].imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
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

    a = as_display(x)
    h, w = a.shape[:2]
    fig, ax = plt.subplots(figsize=(max(3, w * scale / 100), max(3, h * scale / 100)))
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
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
