"""``make reproduce-xal-controlled``: XAL on its controlled text task, where explanations carry what labels do not.

``experiment=xal_rationale`` (:mod:`exil.common.data.rationale_phrases`): generated reviews whose label is decided
by one verdict phrase among three aspect remarks that agree with the label 70 % of the time; the simulated
teacher names the deciding verdict for the gold label and the most misleading remark for the other. 20 initial
labels + 5 rounds × 20 (20 … 120), ``--seeds`` seeds, test macro-F1 on 1,000 generated reviews. Arms, as in
``make reproduce-xal`` (:mod:`reproduce.xal`):

* **XAL**: L_cls + 0.1 L_gen + 0.01 L_rank, selection by entropy + explanation score (λ = 0.5);
* **ME (entropy)** and **Random**: the plain classifier (λ1 = λ2 = 0, the same encoder, head and optimiser);
* **ME-Exp**: XAL's model with entropy selection (separates XAL's training from its selection);
* **XAL w/o rank** (λ2 = 0) and **XAL w/o ME** (selection by the explanation score alone).

Beside the table, what explains it, from the journals and the final models:

* *selection*: the share of each arm's queried reviews that are **conflicting** (the remarks' majority
  contradicts the label: the reviews only the verdict decides, 21.6 % of the pool), and how many of the 40
  verdicts the final labelled set holds; how many of XAL's round-0 queries are ME-Exp's (same model, round 0);
* *explanations* (the final XAL-family models on 500 test reviews): how often the generated explanation names
  the gold class, the review's own verdict, or at least some phrase of the review, how many distinct phrases
  the decoder cites, and how well its score ``p`` and the entropy flag the reviews the classifier gets wrong and
  the conflicting reviews (AUROC: 0.5 = no better than chance; "nan" where the final model makes no error).

The Rotten Tomatoes table (``make reproduce-xal``) is the realistic counterpart. 3 seeds took 47 min at
``--jobs 1`` on a 2-core CPU shared with other work (XAL-family runs 3.5–4 min, plain ones about 1 min);
``--quick`` checks the pipeline in about 4 min; ``--set trainer=gpu`` runs on a GPU.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from reproduce.runner import arguments, arm_options, finished, markdown, run_all
from reproduce.xal import PLAIN, run_name, table

EXPERIMENT = "experiment=xal_rationale"
ARMS = {  # in the order they run (seed by seed)
    "XAL": [],
    "ME (entropy)": [*PLAIN, "strategy=entropy"],
    "Random": [*PLAIN, "strategy=random"],
    "ME-Exp": ["strategy=entropy"],
    "XAL w/o rank": ["method=xal_no_rank"],
    "XAL w/o ME": ["strategy=xal_explanation_only"],
}
EXPLAINING = ["XAL", "ME-Exp", "XAL w/o rank", "XAL w/o ME"]  # arms whose decoder learns explanations


def jobs(seeds: int, quick: list[str], arms: list[str]) -> list[tuple[str, list[str]]]:
    return [(run_name(arm, s), [EXPERIMENT, *ARMS[arm], f"loop.seed={s}", *quick]) for s in range(seeds) for arm in arms]


def _pool_rows(overrides: list[str]):
    from exil.common.data.rationale_phrases import split_rows
    from exil.common.engine import compose

    d = compose(overrides).dataset
    task = dict(verdicts=d.verdicts, distractors=d.distractors, agreement=d.agreement, zipf=d.zipf)
    return split_rows("pool", d.pool_items, d.generate_seed, **task)


def selection_table(out: Path, seeds: int, quick: list[str], arms: list[str]) -> str:
    """Share of conflicting reviews among the queried ones, and verdicts covered by the final labelled set."""
    from exil.common.data.rationale_phrases import conflicting
    from exil.common.journal import Journal

    rows_of = _pool_rows([EXPERIMENT, *quick])
    base = np.mean([conflicting(r) for r in rows_of])
    table_rows, firsts = [], {}
    for arm in arms:
        share, covered = [], []
        for s in range(seeds):
            run = out / run_name(arm, s)
            if not finished(run):
                continue
            j = Journal(run / "journal.sqlite")
            queried = [i for r in range(len(j.metrics_by_round())) for i in j.queries(r)[0]]
            firsts[(arm, s)] = set(j.queries(0)[0])
            labelled = [item for _, item, _, _ in j.labelled()]
            j.close()
            share.append(100 * np.mean([conflicting(rows_of[i]) for i in queried]) if queried else np.nan)
            covered.append(len({rows_of[i]["rationale"] for i in labelled}))
        if share:
            table_rows.append([arm, f"{np.mean(share):.1f}", f"{np.mean(covered):.1f}", len(share)])
    text = markdown(["method", "conflicting among queried (%)", "verdicts labelled (of 40)", "seeds"], table_rows)
    same = [len(firsts[("XAL", s)] & firsts[("ME-Exp", s)]) for s in range(seeds)
            if ("XAL", s) in firsts and ("ME-Exp", s) in firsts]
    if same:
        size = len(next(iter(firsts.values())))
        text += (f"\n\nPool share of conflicting reviews: {100 * base:.1f} %. XAL's first query batch shares "
                 f"{', '.join(map(str, same))} of its {size} reviews with ME-Exp's (same model; seeds 0…).")
    return text


def explanation_check(run: Path, overrides: list[str], n: int = 500) -> dict[str, float] | None:
    """The final model of one run on ``n`` test reviews: generated explanations against the truth, and AUROC of
    −p and of the entropy for the classifier's errors (module docstring)."""
    import torch
    from hydra.utils import instantiate
    from sklearn.metrics import roc_auc_score

    from exil.common.data.rationale_phrases import conflicting
    from exil.common.engine import compose
    from exil.common.loop import seed_init
    from exil.common.run_folder import load_checkpoint
    from exil.xal.losses import predictive_entropy

    fits = sorted((run / "checkpoints").glob("round_*_fit.pt"))
    if not fits:
        return None
    cfg = compose(overrides)
    dm = instantiate(cfg.dataset)
    dm.setup()
    seed_init(0)
    backbone = instantiate(cfg.backbone, input_shape=list(dm.input_shape))
    module = instantiate(cfg.method.module, backbone=backbone, num_classes=dm.num_classes)
    module.load_state_dict(load_checkpoint(fits[-1])["state_dict"])
    module.eval()
    names = dm.class_names
    idx = np.arange(min(n, len(dm.test)))
    logits, texts, scores = [], [], []
    for start in range(0, len(idx), 100):
        batch = dm.test.__getitems__(list(idx[start:start + 100]))
        lg, tokens, p = module.explain(module.inputs(batch), 1, 16)
        logits.append(lg)
        scores.append(p)
        texts += dm.tokenizer.batch_decode(tokens, skip_special_tokens=True)
    logits, p = torch.cat(logits), torch.cat(scores)
    rows = [dm.row(int(i), "test") for i in idx]
    wrong = (logits.argmax(1).numpy() != np.array([names.index(r["label"]) for r in rows]))
    hard = np.array([conflicting(r) for r in rows])
    cited = [t.split(" because it says ", 1)[1] if " because it says " in t else "" for t in texts]

    def auroc(y, s):
        return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")

    neg_p, ent = -p.numpy(), predictive_entropy(logits).numpy()
    return {"acc": 100 * (1 - wrong.mean()),
            "class": 100 * np.mean([t.split()[:1] == [r["label"]] for t, r in zip(texts, rows)]),
            "verdict": 100 * np.mean([c == r["rationale"] for c, r in zip(cited, rows)]),
            "in_review": 100 * np.mean([c in r["text"][:-1].split(", ") for c, r in zip(cited, rows)]),
            "distinct": len(set(cited)),
            "auroc_p": auroc(wrong, neg_p), "auroc_entropy": auroc(wrong, ent),
            "auroc_p_conflict": auroc(hard, neg_p), "auroc_entropy_conflict": auroc(hard, ent)}


def explanation_table(out: Path, seeds: int, quick: list[str], arms: list[str]) -> str:
    rows = []
    for arm in [a for a in EXPLAINING if a in arms]:
        checks = [explanation_check(out / run_name(arm, s), [EXPERIMENT, *ARMS[arm], f"loop.seed={s}", *quick])
                  for s in range(seeds) if finished(out / run_name(arm, s))]
        checks = [c for c in checks if c]
        if checks:
            m = {k: np.nanmean([c[k] for c in checks]) if any(np.isfinite(c[k]) for c in checks) else float("nan")
                 for k in checks[0]}
            rows.append([arm, f"{m['acc']:.1f}", f"{m['class']:.1f}", f"{m['verdict']:.1f}", f"{m['in_review']:.1f}",
                         f"{m['distinct']:.0f}", f"{m['auroc_p']:.3f}", f"{m['auroc_entropy']:.3f}",
                         f"{m['auroc_p_conflict']:.3f}", f"{m['auroc_entropy_conflict']:.3f}", len(checks)])
    return markdown(["final model", "test acc (%)", "names the gold class (%)", "names the review's verdict (%)",
                     "cites a phrase of the review (%)", "distinct phrases cited", "AUROC −p → error",
                     "AUROC entropy → error", "AUROC −p → conflicting", "AUROC entropy → conflicting", "seeds"], rows)


def main() -> None:
    a = arguments(__doc__, seeds=3, extra=arm_options(ARMS, "the tables"))
    out = Path(a.out or "outputs/reproduce/xal_controlled")
    quick = ["loop.rounds=1", "loop.query_size=10", "loop.initial_size=10", "trainer.max_epochs=1",
             "dataset.test_items=100", "dataset.pool_items=300", "loop.pool_subsample=60"] if a.quick else []
    arms = a.arms or list(ARMS)
    t0 = time.time()
    if not a.table_only:
        run_all(jobs(a.seeds, quick, arms), out, a)
    text = ("Controlled task (experiment=xal_rationale: the label is decided by one verdict phrase among three "
            "aspect remarks that agree with it 70 % of the time; the simulated teacher names the verdict), test "
            "macro-F1 (%) by labelled-set size, mean ± std over the finished seeds\n\n"
            + table(out, a.seeds, [x for x in ARMS if x in arms])
            + "\n\nWhat the strategies asked (queried reviews, all rounds)\n\n" + selection_table(out, a.seeds, quick, arms)
            + "\n\nWhat the decoders learned (final models, 500 test reviews; AUROC of flagging the classifier's "
              "errors)\n\n" + explanation_table(out, a.seeds, quick, arms)
            + f"\n\nWall time: {(time.time() - t0) / 60:.1f} min ({a.jobs} job(s) at a time).\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
