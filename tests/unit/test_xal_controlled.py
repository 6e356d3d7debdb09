"""XAL's controlled task (common/data/rationale_phrases.py): the reviews are reproducible, their labels are
decided by the verdict phrase (checked by reading the texts, not by the generator's bookkeeping), the remarks
agree with the label at the configured rate and no more, and the teacher names the deciding phrase."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from exil.common.data.rationale_phrases import (
    ASPECTS,
    CLASSES,
    QUALITIES,
    VERDICTS,
    RationalePhrasesDataModule,
    RationaleTeacher,
    conflicting,
    generate,
    split_rows,
)
from exil.common.errors import ConfigError
from exil.common.oracle.explanations import explanation_question

VERDICT_CLASS = {v: c for c in CLASSES for v in VERDICTS[c]}


def phrases(text: str) -> list[str]:
    assert text.endswith(".")
    return text[:-1].split(", ")


def remark_class(phrase: str) -> str:
    """The polarity of an aspect remark, read from its wording."""
    aspect = next(a for a in ASPECTS if phrase.startswith(a + " "))
    quality = phrase[len(aspect) + 1:]
    return next(c for c in CLASSES if quality in QUALITIES[c])


def test_generation_is_deterministic_and_seeded():
    assert generate(300, 7) == generate(300, 7)
    assert [r["text"] for r in generate(300, 7)] != [r["text"] for r in generate(300, 8)]
    pool, test = split_rows("pool", 200, 3), split_rows("test", 200, 3)
    assert [r["text"] for r in pool] != [r["text"] for r in test]  # separate streams


def test_the_verdict_decides_the_label_and_the_remarks_only_correlate():
    rows = generate(4000, 0)
    assert not set(VERDICTS["negative"]) & set(VERDICTS["positive"])
    labels = np.array([r["label"] for r in rows])
    assert abs((labels == "positive").mean() - 0.5) < 1e-9
    agree, majority_right = [], []
    for r in rows:
        found = [p for p in phrases(r["text"]) if p in VERDICT_CLASS]
        assert len(found) == 1 and VERDICT_CLASS[found[0]] == r["label"]  # exactly one verdict, of the label's class
        remarks = [p for p in phrases(r["text"]) if p not in VERDICT_CLASS]
        assert len(remarks) == 3 and len({next(a for a in ASPECTS if p.startswith(a)) for p in remarks}) == 3
        votes = [remark_class(p) == r["label"] for p in remarks]
        agree += votes
        majority_right.append(sum(votes) >= 2)
        assert conflicting(r) == (sum(votes) < 2)
    # each remark agrees with probability 0.7 (binomial sd over 12,000 remarks: 0.004)
    assert abs(np.mean(agree) - 0.7) < 0.02
    # so the remarks' majority is right with probability 0.7^3 + 3·0.7^2·0.3 = 0.784: they do not decide the label
    assert abs(np.mean(majority_right) - 0.784) < 0.025
    # the verdict sits anywhere in the review, not in a fixed slot
    slots = [next(k for k, p in enumerate(phrases(r["text"])) if p in VERDICT_CLASS) for r in rows]
    assert np.bincount(slots, minlength=4).min() > 800


def test_rare_and_common_verdicts_follow_the_zipf_profile():
    rows = generate(4000, 1, verdicts=10, zipf=1.0)
    counts = np.array([sum(r["rationale"] == v for r in rows if r["label"] == "negative") for v in VERDICTS["negative"][:10]])
    expected = 2000 / np.arange(1, 11) / (1 / np.arange(1, 11)).sum()
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected) + 5)
    with pytest.raises(ConfigError):
        generate(10, 0, verdicts=99)


def test_the_teacher_names_the_deciding_phrase_and_the_misleading_one():
    rows = generate(500, 2)
    dm = SimpleNamespace(row=lambda i: rows[i])
    ctx = SimpleNamespace(datamodule=dm, class_names=list(CLASSES))
    teacher = RationaleTeacher()
    for i, r in enumerate(rows):
        y = CLASSES.index(r["label"])
        answer = teacher.explain(explanation_question(i, y, (r["text"],)), ctx)
        gold, other = answer["explanations"][y], answer["explanations"][1 - y]
        found = [p for p in phrases(r["text"]) if p in VERDICT_CLASS]
        assert answer["label"] == y and gold == f"{r['label']} because it says {found[0]}"
        wrong = CLASSES[1 - y]
        assert other.startswith(f"{wrong} because it says ")
        cited = other[len(f"{wrong} because it says "):]
        misleading = [p for p in phrases(r["text"]) if p not in VERDICT_CLASS and remark_class(p) == wrong]
        assert cited in misleading if misleading else cited == found[0]
    with pytest.raises(ConfigError, match="true labels"):
        teacher.explain(explanation_question(0, 1 - CLASSES.index(rows[0]["label"]), ("",)), ctx)


def test_the_data_module_serves_the_generated_reviews(tmp_path):
    from tests.text_fixtures import tokenizer_folder

    tok = tokenizer_folder(tmp_path)
    dm = RationalePhrasesDataModule(pool_items=60, test_items=40, tokenizer=f"file:{tok}", max_length=24, seed=0)
    dm.setup()
    assert len(dm.pool) == 60 and len(dm.test) == 40 and dm.class_names == list(CLASSES)
    rows = split_rows("pool", 60, 0)
    for i in (0, 17, 59):
        assert dm.text_of(i) == (rows[i]["text"],) and dm.row(i)["rationale"] == rows[i]["rationale"]
        assert int(dm.pool[i]["y"]) == CLASSES.index(rows[i]["label"]) and dm.item_id(i) == rows[i]["id"]
    assert dm.row(3, "test") == {**split_rows("test", 40, 0)[3], "_row": 3}


def test_frozen_embeddings_stay_and_the_rest_trains():
    from exil.common.backbones.seq2seq import build_seq2seq
    from exil.xal.module import XALModule
    from tests.text_fixtures import TINY_BERT

    torch.manual_seed(0)
    bb = build_seq2seq(name="tiny", weights="none", architecture="bert2bert", config=dict(TINY_BERT))
    m = XALModule(bb, 2, freeze_embeddings=True)
    enc, dec = bb.model.get_input_embeddings().weight, bb.model.get_decoder().get_input_embeddings().weight
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = m.configure_optimizers()
    assert all(p.requires_grad for g in opt.param_groups for p in g["params"])
    batch = {"x": torch.randint(5, 30, (4, 8)), "attention_mask": torch.ones(4, 8, dtype=torch.long),
             "y": torch.tensor([0, 1, 0, 1]), "annotated": torch.ones(4, dtype=torch.bool),
             "expl_ids": torch.randint(5, 30, (4, 2, 5)), "expl_mask": torch.ones(4, 2, 5, dtype=torch.bool)}
    m.loss(batch).backward()
    opt.step()
    after = dict(m.named_parameters())
    frozen = [n for n, p in after.items() if p is enc or p is dec]
    assert frozen and all(torch.equal(after[n], before[n]) for n in frozen)
    assert not torch.equal(after["head.weight"], before["head.weight"])
    assert bb.model.get_output_embeddings().weight is dec  # the tied LM head is the frozen decoder table


@pytest.mark.parametrize("arm", [[], ["strategy=random", "method.module.gen_weight=0", "method.module.rank_weight=0"],
                                 ["strategy=entropy"], ["method=xal_no_rank"], ["strategy=xal_explanation_only"]])
def test_the_experiment_and_its_arms_compose(arm):
    from hydra.utils import instantiate

    from exil.common.engine import compose

    cfg = compose(["experiment=xal_rationale", *arm])
    assert cfg.experiment_name == "xal_rationale"
    assert cfg.dataset._target_.endswith("RationalePhrasesDataModule")
    assert cfg.oracle.explainer._target_.endswith("RationaleTeacher")
    instantiate(cfg.strategy)  # every arm's strategy builds with the experiment's settings
    assert cfg.method.module.freeze_embeddings is True
