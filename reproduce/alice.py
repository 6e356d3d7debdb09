"""``make reproduce-alice``: ALICE (Liang, Zou & Yu 2020) on the offline CUB proxy, in the rows of the paper's
Table 2.

Setting (``experiment=alice_fashion_mnist``): Fashion-MNIST with garment parts (common/data/fashion_parts.py),
k = 15 training images per class (150 in all), 10 classes, the first 2,000 test images of a stratified draw,
MobileNetV2 (ImageNet, offline) cut at stride 16, 64 px; k = 3 rounds of b = 1 pair (10 classes leave
room for three merges before most of the tops are one super-class); SGD momentum 0.9, weight decay 1e-5,
lr 0.01 × 0.9 every 2 epochs; 15 epochs of at least 256 images per fit; the simulated expert's
explanation bank; 3 seeds.

Rows: the base model (flat, round 0), ALICE after each round, the ablations after the last round (w/o
grounding: no crops; w/o hierarchy: no super-classes, crops as extra images of the flat model;
random grounding: crops at random places; random pairs: pairs drawn at random), and the flat base
trained on 33 / 66 / 100 % more random images per class. Paper (CUB, 25 species): base 59.51, ALICE
4th round 76.05, w/o grounding 66.47, w/o hierarchy 59.22, random grounding 64.44, random pairs 42.67,
+100 % data 75.91.

A second table shows where the accuracy moves: for each ALICE run, its merged classes and the test
accuracy on images of those classes and of the others, base vs final.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from reproduce.runner import arguments, markdown, mean_std, metrics, run_all

BASE = ["experiment=alice_fashion_mnist", "loop.threads=1"]
ARMS = {
    "alice": [],
    "w/o grounding": ["method.hooks.grounding=null"],
    "w/o hierarchy": ["method.module.hierarchy=false"],
    "random grounding": ["method.hooks.grounding._target_=alice.grounding.RandomBoxes"],
    "random pairs": ["strategy=random_pairs"],
}
EXTRA = {"+33% data": 20, "+66% data": 25, "+100% data": 30}


def slug(name: str) -> str:
    return name.replace("/", "").replace(" ", "_").replace("+", "plus").replace("%", "pct")


def test_labels(data_dir: str | None, test_size: int) -> np.ndarray:
    from common.data.base import targets_of
    from common.data.fashion_parts import FashionPartsDataModule

    dm = FashionPartsDataModule(data_dir=str(Path(data_dir or "data").resolve()), images_per_class=1,
                                test_size=test_size)
    dm.setup()
    return targets_of(dm.test)


def main() -> None:
    a = arguments(__doc__, seeds=3)
    out = Path(a.out or "outputs/reproduce/alice")
    quick = ["trainer.max_epochs=2", "dataset.test_size=300", "loop.rounds=1"] if a.quick else []
    jobs = []
    for s in range(a.seeds):  # seed by seed: an interrupted reproduction has every row for the first seeds
        jobs += [(f"{slug(arm)}/seed{s}", [*BASE, *ov, f"loop.seed={s}", *quick]) for arm, ov in ARMS.items()]
        jobs += [(f"{slug(arm)}/seed{s}", [*BASE, *quick, f"dataset.images_per_class={k}", "loop.rounds=0",
                                           f"loop.seed={s}"]) for arm, k in EXTRA.items()]
    dirs = run_all(jobs, out, a)
    seeds = range(a.seeds)
    rounds = 1 if a.quick else 3

    def row(name, arm, r):
        ms = [metrics(dirs[f"{slug(arm)}/seed{s}"], r) for s in seeds]
        return [name, mean_std([m["test/acc"] for m in ms]), mean_std([m["test/coarse_acc"] for m in ms]),
                mean_std([m.get("alice/super_classes", 10) for m in ms]), mean_std([m.get("alice/crops", 0) for m in ms])]

    rows = [row("base (k = 15 per class)", "alice", 0)]
    rows += [row(f"ALICE, round {r}", "alice", r) for r in range(1, rounds + 1)]
    rows += [row(f"{arm} (round {rounds})", arm, rounds) for arm in ARMS if arm != "alice"]
    rows += [row(f"random sampling, {arm}", arm, 0) for arm in EXTRA]
    print(f"\nALICE on the Fashion-MNIST garment-parts proxy (mean ± std over {a.seeds} seeds)\n")
    print(markdown(["model", "fine acc", "coarse acc", "super-classes", "crops"], rows))

    y = test_labels(a.data_dir, 300 if a.quick else 2000)
    detail = []
    for s in seeds:
        d = dirs[f"alice/seed{s}"]
        groups = json.loads((d / "alice" / f"round_{rounds - 1:03d}.json").read_text())["groups"]
        merged = np.isin(y, sorted({c for g in groups for c in g}))
        base, final = (np.load(d / "predictions" / f"round_{r:03d}.npy") for r in (0, rounds))
        acc = lambda p, m: float((p[m] == y[m]).mean())  # noqa: E731
        detail.append([s, str(groups), f"{acc(base, merged):.3f}", f"{acc(final, merged):.3f}",
                       f"{acc(base, ~merged):.3f}", f"{acc(final, ~merged):.3f}"])
    print("\nWhere the accuracy moves: test accuracy on images of the merged classes and of the others\n")
    print(markdown(["seed", "groups after the last round", "merged: base", "merged: ALICE", "others: base",
                    "others: ALICE"], detail))


if __name__ == "__main__":
    main()
