"""``make reproduce-caipi``: CAIPI (Teso & Kersting 2019) on decoy Fashion-MNIST with an MLP(50, 30).

**Passive (the paper's Table 1).** Every training image is labelled and gets c counterexamples with
the decoy swatch randomised (c = 0: no corrections), or is trained with RRR's input-gradient
constraint on the swatch instead. Paper (full 60k training set): 0.482 without corrections,
0.821 / 0.851 / 0.858 for c = 1 / 3 / 5, 0.853 with RRR. Here the training set is a stratified 10,000
of the 60,000 (``--pool 60000`` for all of it; about 6× longer), 10 epochs, test set all 10,000.

**Active.** Entropy sampling from 20 labels, 10 rounds of 10 queries; with corrections (each right
prediction is explained by LIME and the teacher's marked decoy segments become 3 counterexamples)
vs without (labels only). Test accuracy, LIME explanation F1 against the object and the share of
explanations that use the decoy, per round; plotted to ``active.png``.

**Colors.** The colors problem with an L1 logistic regression on the pairwise "same colour"
features, rule 0 and rule 1, 20 rounds of 5 queries from 10 labels, with vs without corrections
(each marked pixel recoloured with every other colour): explanation F1 of LIME's top-3 pixels
against the true rule's pixels, per round; plotted to ``colors.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reproduce.runner import arguments, markdown, mean_std, metrics, run_all, save_figure

PAPER = {"none": 0.482, "c=1": 0.821, "c=3": 0.851, "c=5": 0.858, "rrr": 0.853}


def passive_jobs(seeds: int, pool: int, quick: list[str]) -> list[tuple[str, list[str]]]:
    common = [f"dataset.pool_size={pool}", "dataset.min_epoch_size=0", "trainer.max_epochs=10", *quick]
    caipi = ["experiment=caipi_decoy_fashion_mnist", "loop.rounds=0", "loop.initial_per_class=null",
             "loop.initial_size=-1", "method.hooks.lime_metric_items=0", *common]
    arms = {"none": caipi, **{f"c={c}": [*caipi, f"method.hooks.initial_counterexamples={c}"] for c in (1, 3, 5)},
            "rrr": ["experiment=rrr_decoy_mnist", "dataset=decoy_fashion_mnist", "loop.threads=1", *common]}
    return [(f"passive/{arm}/seed{s}", [*ov, f"loop.seed={s}"]) for arm, ov in arms.items() for s in range(seeds)]


def active_jobs(seeds: int, quick: list[str]) -> list[tuple[str, list[str]]]:
    arms = {"corrections": [], "labels only": ["method.hooks.burn_in=1000"]}
    return [(f"active/{arm}/seed{s}", ["experiment=caipi_decoy_fashion_mnist", *ov, f"loop.seed={s}", *quick])
            for arm, ov in arms.items() for s in range(seeds)]


def colors_jobs(seeds: int, quick: list[str]) -> list[tuple[str, list[str]]]:
    arms = {"corrections": [], "labels only": ["method.hooks.burn_in=1000"]}
    return [(f"colors/rule{r}/{arm}/seed{s}", ["experiment=caipi_colors", f"dataset.rule={r}", *ov, f"loop.seed={s}",
                                               *quick])
            for r in (0, 1) for arm, ov in arms.items() for s in range(seeds)]


def per_round_table(curves: dict, keys: list[str]) -> str:
    arms = list(curves)
    n_rounds = min(len(r) for runs in curves.values() for r in runs)
    header = ["round", "labels"] + [f"{k} ({arm})" for k in keys for arm in arms]
    table = []
    for i in range(n_rounds):
        row = [i, int(curves[arms[0]][0][i]["n_labels"])]
        for k in keys:
            for arm in arms:
                row.append(f"{np.mean([r[i][k] for r in curves[arm]]):.3f}")
        table.append(row)
    return markdown(header, table)


def main() -> None:
    import argparse
    import sys

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--pool", type=int, default=10000)
    known, rest = extra.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    a = arguments(__doc__, seeds=3)
    out = Path(a.out or "outputs/reproduce/caipi")
    quick = ["trainer.max_epochs=2", "loop.rounds=2"] if a.quick else []
    pool = 2000 if a.quick else known.pool
    passive, active = passive_jobs(a.seeds, pool, quick), active_jobs(a.seeds, quick)
    colors = colors_jobs(a.seeds, ["loop.rounds=3"] if a.quick else [])
    dirs = run_all([*passive, *active, *colors], out, a)

    rows = []
    for arm in ("none", "c=1", "c=3", "c=5", "rrr"):
        ms = [metrics(dirs[f"passive/{arm}/seed{s}"]) for s in range(a.seeds)]
        rows.append([arm, mean_std([m["test/acc"] for m in ms]), PAPER[arm],
                     mean_std([m["test/decoy_share"] for m in ms])])
    print(f"\nCAIPI Table 1, passive: decoy Fashion-MNIST ({pool} training images), MLP, "
          f"test accuracy (mean ± std over {a.seeds} seeds)\n")
    print(markdown(["corrections", "test acc", "paper", "input-gradient share on decoy"], rows))

    arms = ("corrections", "labels only")
    from common.report import run_rows

    curves = {arm: [run_rows(dirs[f"active/{arm}/seed{s}"])[1] for s in range(a.seeds)] for arm in arms}
    keys = ["test/acc", "test/lime_f1", "test/lime_decoy_rate"]
    print(f"\nCAIPI active on decoy Fashion-MNIST: entropy queries, with vs without corrections "
          f"(mean over {a.seeds} seeds)\n")
    print(per_round_table(curves, keys))
    plot(curves, keys, out / "active.png")

    color_curves = {}
    for r in (0, 1):
        c = {arm: [run_rows(dirs[f"colors/rule{r}/{arm}/seed{s}"])[1] for s in range(a.seeds)] for arm in arms}
        color_curves.update({f"rule {r}, {arm}": runs for arm, runs in c.items()})
        print(f"\nColors, rule {r}, L1 logistic regression: explanation F1 of LIME's top 3 pixels "
              f"(mean over {a.seeds} seeds)\n")
        print(per_round_table(c, ["test/lime_f1", "test/acc"]))
    plot(color_curves, ["test/lime_f1", "test/acc"], out / "colors.png")
    print(f"\nplots: {out / 'active.png'}, {out / 'colors.png'}")


def plot(curves: dict, keys: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    for ax, k in zip(axes, keys):
        for arm, runs in curves.items():
            n = min(len(r) for r in runs)
            x = [runs[0][i]["n_labels"] for i in range(n)]
            v = np.array([[r[i][k] for i in range(n)] for r in runs])
            ax.plot(x, v.mean(0), marker="o", label=arm)
            ax.fill_between(x, v.mean(0) - v.std(0), v.mean(0) + v.std(0), alpha=0.2)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("labels")
    axes[-1].legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
