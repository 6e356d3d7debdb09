"""One sheet of the same test items explained by several models: a row per model, a column per item.

Each cell shows the item in grey with the model's input-gradient map (of its predicted class) over it in
red, as opaque as the map is strong (every map scaled to its own maximum), so a cell shows *where* its model looks; the confounder region
(the decoy swatch) is outlined in cyan. The title says the prediction (✓ right, ✗ wrong) and, in brackets,
the class the confounder shows: a model that reads the swatch predicts that class. A row's label ends with
its mean share of attribution on the confounder over the shown items (WR).

The maps come from each run's ``explanations/round_RRR_test.npz`` (written every round on data with a
confounder: :func:`exil.common.explain.confounder.example_maps`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def last_examples(run_dir: str | Path) -> Path | None:
    """A run's newest ``explanations/round_RRR_test.npz``, or ``None``."""
    found = sorted((Path(run_dir) / "explanations").glob("round_*_test.npz"))
    return found[-1] if found else None


def explanation_sheet(rows: dict[str, str | Path], path: str | Path, class_names: list[str] | None = None) -> Path:
    """Draw the sheet of the module docstring: ``rows`` maps a row's label to a ``round_RRR_test.npz``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    data = {label: dict(np.load(p)) for label, p in rows.items()}
    n = max(len(d["items"]) for d in data.values())
    fig, axes = plt.subplots(len(data), n, figsize=(1.35 * n + 1.6, 1.55 * len(data) + 0.4), squeeze=False)
    name = (lambda c: class_names[int(c)]) if class_names else (lambda c: str(int(c)))
    for r, (label, d) in enumerate(data.items()):
        region = d["region"].astype(bool)
        share = (d["maps"] * region).reshape(len(region), -1).sum(1) / np.maximum(
            d["maps"].reshape(len(region), -1).sum(1), 1e-12)
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c >= len(d["items"]):
                ax.axis("off")
                continue
            x = d["x"][c]
            img = x.mean(0) if x.ndim == 3 else x
            m = d["maps"][c] / max(float(d["maps"][c].max()), 1e-12)
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            red = np.zeros((*m.shape, 4))
            red[..., 0], red[..., 3] = 1.0, 0.85 * m  # opaque where the model looks, clear elsewhere
            ax.imshow(red)
            rows_, cols_ = np.nonzero(region[c])
            if len(rows_):
                ax.add_patch(Rectangle((cols_.min() - 0.5, rows_.min() - 0.5), np.ptp(cols_) + 1, np.ptp(rows_) + 1,
                                       fill=False, edgecolor="cyan", lw=1.2))
            ok = int(d["pred"][c]) == int(d["y"][c])
            ax.set_title(f"{'✓' if ok else '✗'} {name(d['pred'][c])} [{name(d['confounder_y'][c])}]", fontsize=8,
                         color="black" if ok else "crimson")
        axes[r, 0].set_ylabel(f"{label}\nWR {share.mean():.2f}", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("where each model looks on the same test items (red: input gradient of its prediction; "
                 "cyan: the swatch; [class the swatch shows])", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
