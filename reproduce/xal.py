"""``make reproduce-xal``: XAL (Luo et al., NAACL 2024) on Rotten Tomatoes, in the layout of the paper's Table 7.

100 initial labels + 4 rounds × 100 (100 … 500), ``--seeds`` seeds, test macro-F1 per labelled-set size.
Every arm trains the same model — MiniLM warm-started as an encoder-decoder (``experiment=xal_rotten_tomatoes``:
3 encoder layers, 1 decoder layer) with its first-token softmax classifier — and differs only in what the
paper varies:

* **XAL**: L_cls + 0.1 L_gen + 0.01 L_rank, selection by entropy + explanation score (λ = 0.5);
* **w/o rank**: λ2 = 0; **w/o ME**: selection by the explanation score alone; **ME-Exp**: XAL's model, entropy selection;
* **baselines** (from ``exil.common.strategies``): the plain classifier (λ1 = λ2 = 0: the encoder with the same
  head and optimiser, no decoder training) with random, entropy (ME), BALD (MC dropout), BADGE, CAL and core-set selection.
  For two classes least confidence and breaking ties rank the pool exactly as entropy does (all three are
  monotone in max_y p(y|x)), so their rows would repeat ME's.

Explanations come from the SIMULATED VADER-lexicon teacher (no LLM). Sizes (``experiment=xal_rotten_tomatoes``
as it stands; the paper: FLAN-T5-large on a V100): reviews cut to 48 tokens, explanations to 16, 10 epochs of at
least 320 reviews per fit, every strategy scores the same 2,000 random unlabelled reviews per round (XAL generates
and scores an explanation for each of them), test macro-F1 on a stratified 1,000 of the 3,843 test reviews.
About 5 min per run on one GPU (``--set trainer=gpu --jobs 20`` ran the 50 runs of 5 seeds on an H100 in 10
minutes); on a 2-core CPU budget many hours. ``--quick`` checks the pipeline in a few minutes. Paper (MAMS, 500 labels): random 70.05,
ME 71.23, LC 71.83, BADGE 71.35, XAL 74.04.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from reproduce.runner import arguments, arm_options, markdown, run_all

XAL_SELECTION: list[str] = []  # e.g. ["loop.pool_subsample=300"] to generate for fewer candidates on a CPU
PLAIN = ["method.module.gen_weight=0", "method.module.rank_weight=0"]
ARMS = {  # in the order they run (seed by seed): the paper's comparison first
    "XAL": XAL_SELECTION,
    "ME (entropy)": [*PLAIN, "strategy=entropy"],
    "Random": [*PLAIN, "strategy=random"],
    "ME-Exp": ["strategy=entropy"],
    "XAL w/o rank": ["method=xal_no_rank", *XAL_SELECTION],
    "XAL w/o ME": ["strategy=xal_explanation_only", *XAL_SELECTION],
    "BADGE": [*PLAIN, "strategy=badge"],
    "CAL": [*PLAIN, "strategy=cal"],
    "Core-set": [*PLAIN, "strategy=coreset"],
    "BALD": [*PLAIN, "strategy=bald"],
}
PAPER_MAMS = {"Random": 70.05, "ME (entropy)": 71.23, "BADGE": 71.35, "XAL": 74.04}


def run_name(arm: str, seed: int) -> str:
    return f"{arm.replace(' ', '_').replace('(', '').replace(')', '').replace('/', '')}/seed{seed}"


def jobs(seeds: int, quick: list[str], arms: list[str]) -> list[tuple[str, list[str]]]:
    return [(run_name(arm, s), ["experiment=xal_rotten_tomatoes", *ARMS[arm], f"loop.seed={s}", *quick])
            for s in range(seeds) for arm in arms]


def table(out: Path, seeds: int, arms: list[str] | None = None) -> str:
    """Mean ± std of macro-F1 per labelled-set size over the finished seeds of each arm (n = how many);
    ``arms``: their names (default: this table's)."""
    from exil.common.journal import read_journal

    header, rows = None, []
    for arm in arms or ARMS:
        curves = []
        for s in range(seeds):
            db = out / run_name(arm, s) / "journal.sqlite"
            j = read_journal(db) if db.exists() else None
            if j is not None and j["meta"].get("finished"):
                m = j["metrics"]
                curves.append([(int(m[r]["n_labels"]), 100 * m[r]["test/macro_f1"]) for r in sorted(m)])
        if not curves:
            continue
        sizes = [n for n, _ in curves[0]]
        header = header or ["method", *map(str, sizes), "mean", "seeds"]
        f1 = np.array([[v for _, v in c] for c in curves])
        sd = lambda j, f1=f1: f1[:, j].std(ddof=1) if len(f1) > 1 else 0.0  # noqa: E731
        rows.append([arm, *(f"{f1[:, j].mean():.2f} ± {sd(j):.2f}" for j in range(len(sizes))), f"{f1.mean():.2f}",
                     len(curves)])
    return markdown(header, rows) if rows else "(no finished runs)"


def main() -> None:
    a = arguments(__doc__, seeds=5, extra=arm_options(ARMS, "the table"))
    out = Path(a.out or "outputs/reproduce/xal")
    quick = ["loop.rounds=1", "loop.query_size=20", "loop.initial_size=20", "trainer.max_epochs=1",
             "dataset.test_items=100", "loop.pool_subsample=200"] if a.quick else []
    t0 = time.time()
    if not a.table_only:
        run_all(jobs(a.seeds, quick, a.arms or list(ARMS)), out, a)
    text = ("Rotten Tomatoes, test macro-F1 (%) by labelled-set size, mean ± std over the finished seeds "
            "(simulated VADER-lexicon explanations; MiniLM bert2bert, experiment=xal_rotten_tomatoes)\n\n"
            + table(out, a.seeds)
            + "\n\nLeast confidence and breaking ties select exactly as ME for two classes. Paper, MAMS at 500 labels: "
            + ", ".join(f"{k} {v}" for k, v in PAPER_MAMS.items())
            + f".\nWall time: {(time.time() - t0) / 60:.1f} min ({a.jobs} job(s) at a time).\n")
    (out / "table.md").parent.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
