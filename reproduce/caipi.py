"""``make reproduce-caipi``: CAIPI (Teso & Kersting 2019) on decoy Fashion-MNIST with an MLP(50, 30).

**Passive (the paper's Table 1).** Every training image is labelled and gets c counterexamples with
the decoy swatch randomised (c = 0: no corrections), or is trained with RRR's input-gradient
constraint on the swatch instead. Paper (full 60k training set): 0.482 without corrections,
0.821 / 0.851 / 0.858 for c = 1 / 3 / 5, 0.853 with RRR. Here the training set is a stratified 10,000
of the 60,000 (``--pool 60000`` for all of it; about 6× longer), 10 epochs, test set all 10,000.

**Active** (``experiment=caipi_decoy_fashion_mnist``). Entropy sampling from 200 labels per class,
10 rounds of 100 queries; with corrections (each right prediction is explained by LIME and the
teacher's marked decoy segments become 3 counterexamples, the swatch set to one random uniform shade:
``cx_strategy=shade``), with per-pixel noise counterexamples instead (``randomise``), and without
(labels only); beside them the setting before issue 13 (from 2 labels per class, 10 rounds of 10
queries, per-pixel noise), where corrections hurt. Each arm's last round: test accuracy, macro-F1,
how much the model reads the swatch (P(prediction = the swatch's label), chance 0.1; accuracy with
every test swatch showing the true label's shade, as in training, and its excess over the plain
accuracy), the share of LIME explanations with a decoy segment, and how many queries a round were
right and explained, and corrected. Per round for the default's arms, plotted to ``active.png``.

**Cause** (``--cause``): one factor at a time on the old setting (20 → 120 labels), 3 seeds: no
decoys at all (plain Fashion-MNIST), the counterexample rule (shade vs noise), LIME's ``hide_color``,
``cx_weight``, ``counterexamples``, ``burn_in``, random instead of entropy queries; and at the
default's size, no decoys (the ceiling) and ``hide_color=null``. The column "cx in top 2 classes"
is the share of counterexamples that went to the two classes corrected most.

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


LABELS_ONLY = ["method.hooks.burn_in=1000"]  # no explanation is ever shown
NOISE = ["method.hooks.cx_strategy=randomise"]
OLD = ["loop.initial_per_class=2", "loop.query_size=10", *NOISE]  # the active setting before issue 13
PLAIN = ["dataset=fashion_mnist"]  # the same images without decoys

#: the active table's arms: name -> overrides of experiment=caipi_decoy_fashion_mnist
ACTIVE = {"shade (default)": [], "noise": NOISE, "labels only": LABELS_ONLY,
          "old setting: noise": OLD, "old setting: labels only": [*OLD, *LABELS_ONLY]}
#: the cause analysis's arms (those named as in ACTIVE are the same runs)
CAUSE = {"old setting: noise": OLD, "old setting: labels only": [*OLD, *LABELS_ONLY],
         "old: no decoy, labels only": [*OLD, *LABELS_ONLY, *PLAIN],
         "old: shade": [*OLD, "method.hooks.cx_strategy=shade"],
         "old: hide_color=null": [*OLD, "method.hooks.hide_color=null"],
         "old: cx_weight=0.3": [*OLD, "method.hooks.cx_weight=0.3"],
         "old: counterexamples=1": [*OLD, "method.hooks.counterexamples=1"],
         "old: burn_in=5": [*OLD, "method.hooks.burn_in=5"],
         "old: random queries": [*OLD, "strategy=random"],
         "old: random queries, labels only": [*OLD, "strategy=random", *LABELS_ONLY],
         "shade (default)": [], "noise": NOISE, "labels only": LABELS_ONLY,
         "no decoy, labels only": [*LABELS_ONLY, *PLAIN],
         "hide_color=null": ["method.hooks.hide_color=null"]}


def arm_jobs(arms: dict[str, list[str]], seeds: int, quick: list[str]) -> list[tuple[str, list[str]]]:
    return [(f"active/{arm}/seed{s}", ["experiment=caipi_decoy_fashion_mnist", *ov, f"loop.seed={s}", *quick])
            for arm, ov in arms.items() for s in range(seeds)]


def run_summary(run_dir: Path) -> dict[str, float]:
    """The last round's metrics of a run, and what its teacher was asked (from the journal)."""
    from collections import Counter

    from exil.common.journal import Journal

    j = Journal(run_dir / "journal.sqlite")
    try:
        by_round = j.metrics_by_round()
        rounds = max(max(by_round), 1)
        explained = [a for a in j.answers() if a["question"] == "correct_explanation"]
        per_class = Counter(e.label for e in j.extras())
        n_cx = sum(per_class.values())
        out = dict(by_round[max(by_round)])
        out.update({"explained": len(explained) / rounds, "corrected": sum(bool(a["answer"]) for a in explained) / rounds,
                    "cx": n_cx, "cx_top2": sum(n for _, n in per_class.most_common(2)) / n_cx if n_cx else float("nan")})
    finally:
        j.close()
    out["shade_gain"] = out.get("test/acc_label_swatch", float("nan")) - out["test/acc"]
    return out


SUMMARY = [("labels", "n_labels", "{:.0f}"), ("test acc", "test/acc", None), ("macro-F1", "test/macro_f1", None),
           ("P(ŷ = swatch label)", "test/decoy_agreement", None), ("acc, true-label swatch", "test/acc_label_swatch", None),
           ("gain from the swatch", "shade_gain", None), ("LIME top 5 on decoy", "test/lime_decoy_rate", None),
           ("right & explained / round", "explained", "{:.1f}"), ("corrected / round", "corrected", "{:.1f}"),
           ("counterexamples", "cx", "{:.0f}"), ("cx in top 2 classes", "cx_top2", "{:.2f}")]


def summary_table(arms: list[str], dirs: dict[str, Path], seeds: int) -> str:
    rows = []
    for arm in arms:
        ss = [run_summary(dirs[f"active/{arm}/seed{s}"]) for s in range(seeds)]
        row = [arm]
        for _, key, fmt in SUMMARY:
            v = [x.get(key, float("nan")) for x in ss]
            row.append("–" if np.isnan(v).all() else fmt.format(np.mean(v)) if fmt else mean_std(v))
        rows.append(row)
    return markdown(["arm", *[h for h, _, _ in SUMMARY]], rows)


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


SECTIONS = {"passive", "active", "colors"}


def main() -> None:
    def options(p) -> None:
        p.add_argument("--pool", type=int, default=10000, help="passive training images (60000: all)")
        p.add_argument("--cause", action="store_true", help="also the cause analysis (one factor at a time)")
        p.add_argument("--only", default="passive,active,colors",
                       help="sections to run, of passive, active, colors (default: all three)")

    a = arguments(__doc__, seeds=3, extra=options)
    out = Path(a.out or "outputs/reproduce/caipi")
    quick = ["trainer.max_epochs=2", "loop.rounds=2"] if a.quick else []
    pool = 2000 if a.quick else a.pool
    only = set(a.only.split(","))
    if only - SECTIONS:
        raise SystemExit(f"--only {a.only}: the sections are {', '.join(sorted(SECTIONS))}")
    passive = passive_jobs(a.seeds, pool, quick) if "passive" in only else []
    active = arm_jobs(ACTIVE, a.seeds, quick) if "active" in only else []
    cause = [j for j in arm_jobs(CAUSE, a.seeds, quick) if j not in active] if a.cause else []
    colors = colors_jobs(a.seeds, ["loop.rounds=3"] if a.quick else []) if "colors" in only else []
    dirs = run_all([*passive, *active, *cause, *colors], out, a)
    if passive:
        passive_table(dirs, a.seeds, pool)
    if active:
        active_tables(dirs, a.seeds, out)
    if cause:
        print(f"\nCAIPI cause analysis: one factor at a time, last round (mean ± std over {a.seeds} seeds; "
              f"'old' = from 2 labels per class, 10 rounds of 10 queries, noise counterexamples)\n")
        print(summary_table(list(CAUSE), dirs, a.seeds))
    if colors:
        colors_tables(dirs, a.seeds, out)


def passive_table(dirs: dict[str, Path], seeds: int, pool: int) -> None:
    rows = []
    for arm in ("none", "c=1", "c=3", "c=5", "rrr"):
        ms = [metrics(dirs[f"passive/{arm}/seed{s}"]) for s in range(seeds)]
        rows.append([arm, mean_std([m["test/acc"] for m in ms]), PAPER[arm],
                     mean_std([m["test/decoy_share"] for m in ms])])
    print(f"\nCAIPI Table 1, passive: decoy Fashion-MNIST ({pool} training images), MLP, "
          f"test accuracy (mean ± std over {seeds} seeds)\n")
    print(markdown(["corrections", "test acc", "paper", "input-gradient share on decoy"], rows))


def active_tables(dirs: dict[str, Path], seeds: int, out: Path) -> None:
    from exil.common.report import run_rows

    print(f"\nCAIPI active on decoy Fashion-MNIST: entropy queries, last round (mean ± std over {seeds} seeds)\n")
    print(summary_table(list(ACTIVE), dirs, seeds))
    arms = ("shade (default)", "noise", "labels only")
    curves = {arm: [run_rows(dirs[f"active/{arm}/seed{s}"])[1] for s in range(seeds)] for arm in arms}
    keys = ["test/acc", "test/decoy_agreement", "test/lime_decoy_rate"]
    print(f"\nCAIPI active, the default's arms per round (mean over {seeds} seeds)\n")
    print(per_round_table(curves, keys))
    plot(curves, keys, out / "active.png")
    print(f"\nplot: {out / 'active.png'}")


def colors_tables(dirs: dict[str, Path], seeds: int, out: Path) -> None:
    from exil.common.report import run_rows

    arms = ("corrections", "labels only")
    color_curves = {}
    for r in (0, 1):
        c = {arm: [run_rows(dirs[f"colors/rule{r}/{arm}/seed{s}"])[1] for s in range(seeds)] for arm in arms}
        color_curves.update({f"rule {r}, {arm}": runs for arm, runs in c.items()})
        print(f"\nColors, rule {r}, L1 logistic regression: explanation F1 of LIME's top 3 pixels "
              f"(mean over {seeds} seeds)\n")
        print(per_round_table(c, ["test/lime_f1", "test/acc"]))
    plot(color_curves, ["test/lime_f1", "test/acc"], out / "colors.png")
    print(f"\nplot: {out / 'colors.png'}")


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
