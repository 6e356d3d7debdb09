"""``make reproduce-alice``: ALICE (Liang, Zou & Yu 2020) on the offline CUB proxy, in the rows of the paper's
Table 2.

Setting (``experiment=alice_fashion_mnist``): Fashion-MNIST with garment parts (common/data/fashion_parts.py),
k = 15 training images per class (150 in all), 10 classes, the first 2,000 test images of a stratified draw,
MobileNetV2 (ImageNet, offline) cut at stride 16, 64 px; k = 3 rounds of b = 1 pair (10 classes leave
room for three merges before most of the tops are one super-class); SGD momentum 0.9, weight decay 1e-5,
lr 0.01 × 0.9 every 2 epochs, the encoder at 0.1 × that rate in the rounds after the first morph
(``method.module.finetune_lr``); 15 epochs of at least 256 images per fit; the simulated expert's
explanation bank; 3 seeds.

Rows: the base model (flat, round 0), ALICE after each round, the ablations after the last round (w/o
grounding: no crops; w/o hierarchy: no super-classes, crops as extra images of the flat model;
random grounding: crops at random places; random pairs: pairs drawn at random; pairs from the initial
encoder: the JSD on the pretrained encoder's features, ``strategy.encoder=initial``), and the flat base
trained on 33 / 66 / 100 % more random images per class. Paper (CUB, 25 species): base 59.51, ALICE
4th round 76.05, w/o grounding 66.47, w/o hierarchy 59.22, random grounding 64.44, random pairs 42.67,
+100 % data 75.91, and one explanation worth 13–30 labelled images.

**Labels per explanation**: the random-sampling rows give accuracy against labelled images (k, 4k/3, 5k/3,
2k per class); ALICE's final accuracy read off that curve (linear between rows) is the number of labelled
images it is worth, less the base's k per class, divided by the explanations it got (rounds × b). Beyond
the last row it is a lower bound (">").

A second table shows where the accuracy moves: for each ALICE run, its merged classes and the test
accuracy on images of those classes and of the others, base vs final. ``--set method.module.finetune_lr=1`` runs
the old round schedule (every round restarts the whole model at the full rate).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from reproduce.runner import arguments, markdown, mean_std, metrics, run_all

ARMS = {
    "alice": [],
    "w/o grounding": ["method.hooks.grounding=null"],
    "w/o hierarchy": ["method.module.hierarchy=false"],
    "random grounding": ["method.hooks.grounding._target_=exil.alice.grounding.RandomBoxes"],
    "random pairs": ["strategy=random_pairs"],
    "ALICE, pairs from the initial encoder": ["strategy.encoder=initial"],
    "ALICE, old schedule": ["method.module.finetune_lr=1"],
    "w/o hierarchy, old schedule": ["method.module.hierarchy=false", "method.module.finetune_lr=1"],
}
EXTRA = {"+33% data": 1 / 3, "+66% data": 2 / 3, "+100% data": 1.0}


def slug(name: str) -> str:
    return name.replace("/", "").replace(",", "").replace(" ", "_").replace("+", "plus").replace("%", "pct")


def labels_per_explanation(curve: Sequence[tuple[float, float]], acc: float, explanations: int, k: int,
                           classes: int) -> str:
    """Extra labelled images ALICE's accuracy is worth per explanation, from the random-sampling ``curve``
    [(images per class, accuracy), ...] (module docstring)."""
    per_class, accs = np.array([c[0] for c in curve]), np.maximum.accumulate([c[1] for c in curve])
    if acc <= accs[0]:
        return "0"
    if acc > accs[-1]:
        return f"> {(per_class[-1] - k) * classes / explanations:.0f}"
    worth = float(np.interp(acc, accs, per_class))
    return f"{(worth - k) * classes / explanations:.0f}"


def reproduce(doc: str, experiment: str, test_size: int, classes: int, title: str, out_name: str,
              skip: Sequence[str] = ()) -> argparse.Namespace:
    """Run and print the Table-2 rows of ``experiment``, every arm of :data:`ARMS` but ``skip`` (``--arms``:
    only those, separated by semicolons; the base and random-sampling rows always run); returns the parsed
    command line."""
    a = arguments(doc, seeds=3, extra=lambda p: p.add_argument(
        "--arms", default=None, help=f"arms to run, separated by semicolons (default: all); of {', '.join(ARMS)}"))
    chosen = ARMS if a.arms is None else {arm.strip(): None for arm in a.arms.split(";")}
    unknown = [arm for arm in chosen if arm not in ARMS]
    if unknown or "alice" not in chosen:
        raise SystemExit(f"--arms must include alice and name arms of: {', '.join(ARMS)} (got {unknown or a.arms})")
    arms = {arm: ov for arm, ov in ARMS.items() if arm not in skip and arm in chosen}
    out = Path(a.out or f"outputs/reproduce/{out_name}")
    base = [f"experiment={experiment}", "loop.threads=1"]
    quick = ["trainer.max_epochs=2", "dataset.test_size=300", "loop.rounds=1"] if a.quick else []
    from exil.common.engine import compose

    cfg = compose([*base, f"paths.data_dir={Path(a.data_dir or 'data').resolve()}"], out / "probe")
    k, rounds, b = int(cfg.dataset.images_per_class), (1 if a.quick else int(cfg.loop.rounds)), \
        int(cfg.method.hooks.pairs_per_round)
    epochs = 2 if a.quick else int(cfg.trainer.max_epochs)
    extra = {arm: round(k * (1 + f)) for arm, f in EXTRA.items()}
    jobs = []
    for s in range(a.seeds):  # seed by seed: an interrupted reproduction has every row for the first seeds
        jobs += [(f"{slug(arm)}/seed{s}", [*base, *ov, f"loop.seed={s}", *quick]) for arm, ov in arms.items()]
        jobs += [(f"{slug(arm)}/seed{s}", [*base, *quick, f"dataset.images_per_class={n}", "loop.rounds=0",
                                           f"loop.seed={s}"]) for arm, n in extra.items()]
        jobs += [(f"base_long/seed{s}", [*base, *quick, "loop.rounds=0", f"trainer.max_epochs={epochs * (rounds + 1)}",
                                         f"loop.seed={s}"])]
    dirs = run_all(jobs, out, a)
    seeds = range(a.seeds)

    def accs(arm, r):
        return [metrics(dirs[f"{slug(arm)}/seed{s}"], r)["test/acc"] for s in seeds]

    coarse = list(cfg_coarse(cfg))

    def within(arm, s):  # asked pairs inside one coarse group (the marks task: the two sub-classes of a garment)
        d = dirs[f"{slug(arm)}/seed{s}"]
        asked = [p["pair"] for f in sorted((d / "alice").glob("round_*.json")) for p in json.loads(f.read_text())["pairs"]]
        return sum(coarse[p] == coarse[q] for p, q in asked) if asked else 0

    def row(name, arm, r):
        ms = [metrics(dirs[f"{slug(arm)}/seed{s}"], r) for s in seeds]
        return [name, mean_std([m["test/acc"] for m in ms]), mean_std([m["test/coarse_acc"] for m in ms]),
                mean_std([m.get("alice/super_classes", classes) for m in ms]),
                mean_std([m.get("alice/crops", 0) for m in ms]),
                mean_std([within(arm, s) for s in seeds]) if r else "–"]

    rows = [row(f"base (k = {k} per class)", "alice", 0),
            row(f"base trained as long as the rounds ({epochs * (rounds + 1)} epochs)", "base_long", 0)]
    rows += [row(f"ALICE, round {r}", "alice", r) for r in range(1, rounds + 1)]
    rows += [row(f"{arm} (round {rounds})", arm, rounds) for arm in arms if arm != "alice"]
    rows += [row(f"random sampling, {arm} ({n} per class)", arm, 0) for arm, n in extra.items()]
    print(f"\n{title} (mean ± std over {a.seeds} seeds)\n")
    print(markdown(["model", "fine acc", "coarse acc", "super-classes", "crops", "pairs asked within a coarse group"],
                   rows))

    curve = [(k, float(np.mean(accs("alice", 0))))] + [(n, float(np.mean(accs(arm, 0)))) for arm, n in extra.items()]
    worth = [[arm, f"{np.mean(accs(arm, rounds)):.3f}",
              labels_per_explanation(curve, float(np.mean(accs(arm, rounds))), rounds * b, k, classes)]
             for arm in arms]
    print(f"\nLabelled images one explanation is worth (after {rounds * b} explanations; random-sampling curve "
          f"{', '.join(f'{n}/class: {acc:.3f}' for n, acc in curve)}; paper: 13–30)\n")
    print(markdown(["arm", "final acc (mean)", "labelled images per explanation"], worth))

    y = test_labels(experiment, a, test_size if not a.quick else 300)
    detail = []
    for s in seeds:
        d = dirs[f"alice/seed{s}"]
        groups = json.loads((d / "alice" / f"round_{rounds - 1:03d}.json").read_text())["groups"]
        merged = np.isin(y, sorted({c for g in groups for c in g}))
        base_pred, final = (np.load(d / "predictions" / f"round_{r:03d}.npy") for r in (0, rounds))
        acc = lambda p, m: float((p[m] == y[m]).mean()) if m.any() else float("nan")  # noqa: E731
        detail.append([s, str(groups), f"{acc(base_pred, merged):.3f}", f"{acc(final, merged):.3f}",
                       f"{acc(base_pred, ~merged):.3f}", f"{acc(final, ~merged):.3f}"])
    print("\nWhere the accuracy moves: test accuracy on images of the merged classes and of the others\n")
    print(markdown(["seed", "groups after the last round", "merged: base", "merged: ALICE", "others: base",
                    "others: ALICE"], detail))
    return a


def cfg_coarse(cfg) -> list[int]:
    """The dataset's fine class → coarse group (without loading its images)."""
    from hydra.utils import get_class

    return list(get_class(cfg.dataset._target_).coarse_of)


def test_labels(experiment: str, a, test_size: int) -> np.ndarray:
    from hydra.utils import instantiate

    from exil.common.data.views import targets_of
    from exil.common.engine import compose

    cfg = compose([f"experiment={experiment}", f"paths.data_dir={Path(a.data_dir or 'data').resolve()}",
                   f"dataset.test_size={test_size}", "dataset.images_per_class=1"], Path("/tmp"))
    dm = instantiate(cfg.dataset)
    dm.setup()
    return targets_of(dm.test)


def main() -> None:
    reproduce(__doc__, "alice_fashion_mnist", 2000, 10,
              "ALICE on the Fashion-MNIST garment-parts proxy", "alice", skip=["ALICE, pairs from the initial encoder"])


if __name__ == "__main__":
    main()
