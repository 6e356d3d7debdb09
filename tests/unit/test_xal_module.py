"""XAL's module and strategy on tiny random-init encoder-decoders (T5 and bert2bert): batched scoring and
selection against per-item references like the authors' loop, partial batches, the strategy's ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exil.common.backbones.seq2seq import build_seq2seq
from exil.common.data.text import TextDataModule
from exil.common.errors import ConfigError
from exil.common.strategies.context import QueryContext
from exil.xal.losses import explanation_mask, predictive_entropy, ranking_loss, selection_scores
from exil.xal.module import XALModule
from exil.xal.strategy import XALStrategy, explain_pool
from tests.text_fixtures import SEP, TINY_BERT, TINY_T5, rotten_tomatoes, tokenizer_folder


def model(kind: str = "t5", seed: int = 0) -> XALModule:
    torch.manual_seed(seed)
    cfg = TINY_T5 if kind == "t5" else TINY_BERT
    bb = build_seq2seq("tiny", "none", "seq2seq" if kind == "t5" else "bert2bert", config=cfg)
    return XALModule(bb, num_classes=2, dropout=0.0).eval()


def batch(n: int = 3, length: int = 7, k: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(5, 40, (n, length), generator=g)
    att = torch.ones(n, length, dtype=torch.long)
    att[0, 5:] = 0  # a padded input
    ids = torch.randint(5, 40, (n, k, 6), generator=g)
    lengths = torch.tensor([[3, 5], [6, 2], [4, 4]])[:n, :k]
    mask = torch.arange(6) < lengths[..., None]
    ids[torch.arange(6).expand_as(ids) == (lengths[..., None] - 1)] = SEP
    ids[~mask] = 0
    return {"x": x, "attention_mask": att, "y": torch.arange(n) % 2, "weight": torch.ones(n),
            "expl_ids": ids, "expl_mask": mask, "annotated": torch.tensor([False, True, True])[:n]}


def reference_logprob(m: XALModule, x, att, target) -> float:
    """Per item, as the authors' code does: a full forward with labels; HF's loss is the token-mean NLL."""
    out = m.backbone.model(input_ids=x[None], attention_mask=att[None], labels=target[None])
    return -float(out.loss)


@pytest.mark.parametrize("kind", ["t5", "bert2bert"])
def test_batched_scores_match_per_item_reference(kind):
    m, b = model(kind), batch()
    with torch.no_grad():
        h = m.backbone.encode({"input_ids": b["x"], "attention_mask": b["attention_mask"]})
        p, _ = m.explanation_scores(h, b["attention_mask"], b["expl_ids"], b["expl_mask"])
        for i in range(3):
            for r in range(2):
                target = b["expl_ids"][i, r][b["expl_mask"][i, r]]
                assert abs(float(p[i, r]) - reference_logprob(m, b["x"][i], b["attention_mask"][i], target)) < 1e-4


def test_loss_on_a_partial_batch_uses_annotated_items_only():
    m, b = model(), batch()
    with torch.no_grad():
        m.eval()
        p = []
        for i in (1, 2):
            p.append([reference_logprob(m, b["x"][i], b["attention_mask"][i], b["expl_ids"][i, r][b["expl_mask"][i, r]])
                      for r in range(2)])
    m.eval()  # T5's dropout is on in training mode: compare without it
    t = m.loss_terms(b)
    want_rank = float(ranking_loss(torch.tensor(p)).mean())
    assert abs(t["rank"].item() - want_rank) < 1e-4
    n1, n2 = int(b["expl_mask"][1, 0].sum()), int(b["expl_mask"][2, 0].sum())
    assert abs(float(t["gen"]) - (-(p[0][0] * n1 + p[1][0] * n2) / (n1 + n2))) < 1e-4
    total = m.loss(b)
    assert torch.isfinite(total) and abs(float(total) - float(t["cls"] + 0.1 * t["gen"] + 0.01 * t["rank"])) < 1e-5
    for n in (1, 2, 5):  # any batch size, with or without annotated items
        bb = {k: (v.repeat(2, *([1] * (v.dim() - 1)))[:n] if torch.is_tensor(v) else v) for k, v in b.items()}
        assert torch.isfinite(m.loss(bb))
    b["annotated"][:] = False
    assert float(m.loss_terms(b)["gen"]) == 0.0


def test_no_rank_scores_only_the_reasonable_explanation():
    m, b = model(), batch()
    m.rank_weight = 0.0
    seen = []
    real = m.explanation_scores
    m.explanation_scores = lambda h, mask, t, tm: seen.append(t.shape) or real(h, mask, t, tm)
    m.loss_terms(b)
    assert seen[0][:2] == (2, 1)


@pytest.mark.parametrize("beams", [1, 3])
def test_explain_matches_per_item_generate_and_score(beams):
    m, b = model(seed=1), batch()
    x = {"input_ids": b["x"], "attention_mask": b["attention_mask"]}
    with torch.no_grad():
        logits, tokens, p = m.explain(x, num_beams=beams, max_new_tokens=6)
        for i in range(3):
            n = int(b["attention_mask"][i].sum())
            ref = m.backbone.model.generate(input_ids=b["x"][i:i + 1, :n], num_beams=beams, max_new_tokens=6,
                                            do_sample=False)[0, 1:]
            mine = tokens[i][explanation_mask(tokens[i:i + 1], SEP)[0]]
            ref = ref[explanation_mask(ref[None], SEP)[0]]
            assert torch.equal(mine, ref)
            assert abs(float(p[i]) - reference_logprob(m, b["x"][i, :n], b["attention_mask"][i, :n], ref)) < 1e-4
        assert torch.allclose(logits, m(x), atol=1e-5)


@pytest.fixture
def pool(tmp_path):
    rotten_tomatoes(tmp_path, n=80)
    dm = TextDataModule(data_dir=str(tmp_path), source="rotten_tomatoes", train_file="reviews.jsonl",
                        tokenizer=f"file:{tokenizer_folder(tmp_path)}", max_length=16, eval_batch_size=16)
    dm.setup()
    return dm


def test_strategy_ranks_by_the_mixed_score(pool):
    m = model()
    cand = pool.unlabelled_indices[:21]  # a partial last batch (eval batches of 16)
    ctx = QueryContext(m, pool, cand, "cpu", torch.Generator().manual_seed(0))
    sel = XALStrategy(lam=0.5, max_new_tokens=4).select(ctx, 5)
    logits, p = explain_pool(QueryContext(m, pool, cand, "cpu"), 1, 4)
    s = selection_scores(predictive_entropy(logits), p, 0.5)
    assert np.array_equal(sel.indices, cand[torch.topk(s, 5).indices.numpy()])
    assert np.allclose(sel.scores, torch.topk(s, 5).values.double().numpy())
    only = XALStrategy(entropy=False, max_new_tokens=4).select(ctx, 5)
    assert np.array_equal(only.indices, cand[torch.topk(-p, 5).indices.numpy()])


def test_strategy_needs_an_explaining_model(pool):
    from exil.common.backbones import build_backbone
    from exil.common.modules.text import TextClassifier

    enc = build_backbone("transformers", "tiny", "none", config={k: v for k, v in TINY_BERT.items()
                                                                  if k not in ("cls_token_id", "sep_token_id")})
    from exil.common.abilities import check_composition

    strategy = XALStrategy()
    parts = {"module": TextClassifier(enc, 2), "datamodule": pool, "strategy": strategy}
    # refused before anything runs, naming the method config whose module explains
    with pytest.raises(ConfigError, match="strategy=xal needs a model that explains.*choices that work: method=xal"):
        check_composition({"strategy=xal": strategy}, parts)
    with pytest.raises(ConfigError):
        XALStrategy(entropy=False, explanation=False)


@pytest.mark.parametrize("name", ["minilm_bert2bert", "flan_t5_large", "flan_t5_base", "t5_small"])
def test_seq2seq_backbone_yamls(name, run_cfg, tmp_path):
    cfg = run_cfg([f"backbone={name}", f"paths.data_dir={tmp_path}"]).backbone
    assert cfg._target_ == "exil.common.backbones.seq2seq.build_seq2seq" and cfg.data_dir == str(tmp_path)
    assert (cfg.weights, cfg.architecture) == (("offline:minilm_l6", "bert2bert") if name == "minilm_bert2bert"
                                               else ("hub", "seq2seq"))
    if name == "minilm_bert2bert":  # not fetched here: the error names the fetch command
        from hydra.utils import instantiate

        with pytest.raises(Exception, match="exil data fetch minilm_l6"):
            instantiate(cfg)
