"""Benchmark of XAL's selection: exil's batched generation + scoring vs a per-item loop like the authors'.

The paper reports XAL's selection over 7,090 items taking 21 minutes on a V100 against 2 for entropy.
Rows, all with the same model in the same process (the MiniLM bert2bert of ``experiment=xal_rotten_tomatoes``
cut to 3 encoder layers, and 1 decoder layer, from ``data/minilm_l6`` if fetched, else the same architecture
random-init; greedy generation of at most 12 tokens, reviews cut to 40 tokens):

1. **batched**: ``strategy=xal`` selecting 100 of a 2,000-review pool (Rotten Tomatoes if fetched, else
   generated reviews): per batch of ``eval_batch_size`` one encoder pass, one batched ``generate`` from its
   states, one teacher-forced scoring pass (:meth:`exil.xal.module.XALModule.explain`).
2. **per item (authors' style)**: for each review ``model.generate(input_ids)`` (encoder inside), then
   ``model(input_ids, labels=generated)`` for the score and one more forward for the class probabilities.
   Timed on ``--per-item`` reviews and extrapolated per item to 2,000 (said so in the output).
3. **entropy**: ``strategy=entropy`` on the same pool and model; XAL's time as a multiple of it.

Timing: one warm-up of each on a few items, then the median of ``--repeats`` runs, batched and per-item
alternating. ``torch.set_num_threads(--threads)``.

Run: ``.venv/bin/python benchmarks/bench_xal.py [--pool 2000] [--per-item 100] [--device cuda] [--out t.json]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared import sync, timed_pair, write  # noqa: E402  (benchmarks/shared.py)

from exil.common.backbones.seq2seq import build_seq2seq  # noqa: E402
from exil.common.data.text import TextDataModule  # noqa: E402
from exil.common.strategies.context import QueryContext  # noqa: E402
from exil.common.strategies.uncertainty import Entropy  # noqa: E402
from exil.xal.losses import predictive_entropy, selection_scores  # noqa: E402
from exil.xal.module import XALModule  # noqa: E402
from exil.xal.strategy import XALStrategy  # noqa: E402

DATA = ROOT / "data"
MAX_NEW = 12


def data_and_model(pool: int, batch: int):
    fetched = (DATA / "rotten_tomatoes" / "reviews.jsonl").exists() and (DATA / "minilm_l6").exists()
    tmp = None
    if fetched:
        data_dir, tok, weights = DATA, "offline:minilm_l6", "offline:minilm_l6"
    else:  # the same architecture, random-init, on generated reviews with a generated vocabulary
        from tests.text_fixtures import TINY_BERT, rotten_tomatoes, tokenizer_folder

        tmp = Path(tempfile.mkdtemp())
        rotten_tomatoes(tmp, n=int(pool / 0.7) + 10)
        data_dir, tok, weights = tmp, f"file:{tokenizer_folder(tmp)}", "none"
    dm = TextDataModule(data_dir=str(data_dir), source="rotten_tomatoes", train_file="reviews.jsonl",
                        label_names=["rotten", "fresh"], id_field="id", tokenizer=tok, max_length=40,
                        eval_batch_size=batch, pool_size=pool)
    dm.setup()
    torch.manual_seed(0)
    if fetched:
        bb = build_seq2seq("minilm", weights, "bert2bert", data_dir=DATA, encoder_layers=3, decoder_layers=1)
    else:
        cfg = dict(TINY_BERT, hidden_size=384, num_attention_heads=12, intermediate_size=1536, num_hidden_layers=3)
        bb = build_seq2seq("minilm", "none", "bert2bert", config=cfg)
    return dm, XALModule(bb, dm.num_classes).eval(), ("Rotten Tomatoes + MiniLM" if fetched else "generated + random-init")


@torch.no_grad()
def per_item(module: XALModule, dm: TextDataModule, items: np.ndarray, device: torch.device) -> np.ndarray:
    """The authors' way: one item at a time, generate with the full model, then score and classify it."""
    model, scores, ent = module.backbone.model, [], []
    for i in items:
        b = dm.pool[int(i)]
        n = int(b["attention_mask"].sum())
        x = {"input_ids": b["x"][None, :n].to(device), "attention_mask": b["attention_mask"][None, :n].to(device),
             "token_type_ids": b["token_type_ids"][None, :n].to(device)}
        gen = model.generate(**x, max_new_tokens=MAX_NEW, do_sample=False, num_beams=1)[:, 1:]
        out = model(input_ids=x["input_ids"], attention_mask=x["attention_mask"], labels=gen)
        scores.append(-float(out.loss))
        ent.append(float(predictive_entropy(module(x))[0]))
    s = selection_scores(torch.tensor(ent), torch.tensor(scores), 0.5)
    return items[torch.topk(s, min(100, len(items))).indices.numpy()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pool", type=int, default=2000)
    p.add_argument("--per-item", type=int, default=100, help="reviews the per-item loop is timed on")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    dm, module, what = data_and_model(a.pool, a.batch)
    module.to(device)
    cand = dm.unlabelled_indices
    ctx = lambda idx: QueryContext(module, dm, idx, device, torch.Generator().manual_seed(0))  # noqa: E731
    xal = XALStrategy(max_new_tokens=MAX_NEW)
    subset = cand[: a.per_item]
    xal.select(ctx(cand[:8]), 4)  # warm-ups
    per_item(module, dm, cand[:4], device)
    Entropy().select(ctx(cand[:8]), 4)
    t_item, t_batch, _ = timed_pair(lambda: per_item(module, dm, subset, device), lambda: xal.select(ctx(cand), 100),
                                    a.repeats, device, warmup=False)
    t_entropy = statistics.median(_time(lambda: Entropy().select(ctx(cand), 100), device) for _ in range(a.repeats))
    t_item_pool = t_item / len(subset) * len(cand)
    rows = [
        {"row": f"XAL selection, {len(cand)} pool items, batched (exil)", "seconds": round(t_batch, 2)},
        {"row": f"per-item generate + score (authors' style), timed on {len(subset)} items, extrapolated to "
                f"{len(cand)}", "seconds": round(t_item_pool, 2)},
        {"row": "speed-up of batched over per-item (goal >= 5x)", "seconds": round(t_item_pool / t_batch, 1)},
        {"row": f"entropy selection, {len(cand)} pool items", "seconds": round(t_entropy, 2)},
        {"row": "XAL selection time / entropy selection time", "seconds": round(t_batch / t_entropy, 1)},
    ]
    print(f"{what}; device {device}, {a.threads} thread(s), eval batch {a.batch}, greedy <= {MAX_NEW} new tokens")
    width = max(len(r["row"]) for r in rows)
    for r in rows:
        print(f"{r['row']:<{width}}  {r['seconds']}")
    if a.out:
        write(rows, Path(a.out))


def _time(fn, device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
