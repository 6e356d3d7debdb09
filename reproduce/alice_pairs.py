"""``make reproduce-alice-pairs``: which class pairs ALICE's corrected JSD calls most confusable, in the full
feature space and in principal components, against the test set's confusion matrix of the same base model.

For each seed, the base model of ``experiment=alice_fashion_mnist`` (round 0: 15 images per class, MobileNetV2
at stride 16) is trained once; its pooled features of the 150 labelled images give per-class Ledoit–Wolf
Gaussians and the JSD of all 45 pairs (``alice/pairs.py``), in the full feature space (96-d here) and in the top
``dims`` principal components — of the fitted base encoder (what ``strategy.encoder=current`` uses in round 0)
and of the initial, pretrained one (``strategy.encoder=initial``); its predictions on the 2,000 test images give the confusion of each pair,
(C[p, q] + C[q, p]) / (n_p + n_q). The table shows, per space: the Spearman correlation between −JSD and
that confusion over the 45 pairs, how many of the JSD's 3 lowest pairs are among the 3 most confused, and
the test-confusion rank of the JSD's first pair (1 = the most confused pair). The best space is the
evidence for ``strategy.dims`` in the experiment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from reproduce.runner import arguments, markdown, mean_std, run_all

BASE = ["experiment=alice_fashion_mnist", "loop.threads=1", "loop.rounds=0"]
SPACES = [None, 64, 32, 16, 8, 4, 2]
ENCODERS = {"fitted": "round_000_fit.pt", "initial": "init.pt"}  # the base model's encoder, the pretrained one


def pair_scores(run_dir: Path, overrides: list[str]) -> dict:
    from exil.alice.pairs import most_confusable_pairs
    from exil.alice.strategies import principal_components
    from exil.common.data.views import targets_of
    from exil.common.engine import build_loop, compose
    from exil.common.run_folder import load_checkpoint, load_module_state
    from exil.common.strategies.context import QueryContext

    cfg = compose(overrides, run_dir / "rebuild")
    loop = build_loop(cfg, run_dir / "rebuild")
    dm = loop.dm
    items = np.arange(len(dm.pool))
    labels = torch.as_tensor(targets_of(dm.pool))
    feats = {}
    for encoder, name in ENCODERS.items():
        load_module_state(loop.module, load_checkpoint(run_dir / "checkpoints" / name))
        feats[encoder] = QueryContext(loop.module, dm, items, "cpu").embeddings().double()
    c = dm.num_classes
    y, pred = targets_of(dm.test), np.load(run_dir / "predictions" / "round_000.npy")
    conf = np.zeros((c, c))
    np.add.at(conf, (y, pred), 1)
    counts = conf.sum(1)
    pairs = [(p, q) for p in range(c) for q in range(p + 1, c)]
    confusion = np.array([(conf[p, q] + conf[q, p]) / (counts[p] + counts[q]) for p, q in pairs])
    rank_of = {pq: r + 1 for r, pq in enumerate(sorted(pairs, key=lambda pq: -confusion[pairs.index(pq)]))}
    top3 = set(sorted(pairs, key=lambda pq: -confusion[pairs.index(pq)])[:3])
    out = {"accuracy": float((pred == y).mean()), "most confused": sorted(top3, key=rank_of.get),
           "width": feats["fitted"].shape[1]}
    for encoder in ENCODERS:
        for dims in SPACES:
            f = feats[encoder] if dims is None else principal_components(feats[encoder], dims)
            chosen, _ = most_confusable_pairs(f, labels, c, budget=len(pairs))
            jsd_rank = {pq: r for r, pq in enumerate(chosen)}
            score = -np.array([jsd_rank[pq] for pq in pairs], dtype=float)
            out[encoder, dims] = {"spearman": spearman(score, confusion), "top3": len(set(chosen[:3]) & top3),
                                  "first_rank": rank_of[chosen[0]], "first": chosen[0]}
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    a = arguments(__doc__, seeds=3)
    out = Path(a.out or "outputs/reproduce/alice_pairs")
    quick = ["trainer.max_epochs=2", "dataset.test_size=300"] if a.quick else []
    jobs = [(f"seed{s}", [*BASE, *quick, f"loop.seed={s}"]) for s in range(a.seeds)]
    dirs = run_all(jobs, out, a)
    data = [*(f"paths.data_dir={Path(a.data_dir or 'data').resolve()}",), *a.set]
    results = [pair_scores(dirs[name], [*ov, *data]) for name, ov in jobs]
    rows = []
    for encoder, dims in [(e, d) for e in ENCODERS for d in SPACES]:
        rs = [r[encoder, dims] for r in results]
        rows.append([f"{encoder}: " + (f"full ({results[0]['width']}-d)" if dims is None else f"{dims} principal components"),
                     mean_std([r["spearman"] for r in rs]), mean_std([r["top3"] for r in rs]),
                     mean_std([r["first_rank"] for r in rs]), ", ".join(str(r["first"]) for r in rs)])
    print(f"\nALICE's JSD pairs against the test confusion of the same base model ({a.seeds} seeds; base accuracy "
          f"{mean_std([r['accuracy'] for r in results])}; most confused pairs per seed: "
          f"{'; '.join(str(r['most confused']) for r in results)})\n")
    print(markdown(["space", "Spearman(−JSD, confusion)", "of JSD's top 3 in the 3 most confused",
                    "test rank of JSD's first pair", "JSD's first pair per seed"], rows))


if __name__ == "__main__":
    main()
