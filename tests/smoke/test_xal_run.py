"""experiment=xal_rotten_tomatoes end to end on generated reviews with tiny random-init encoder-decoders
(bert2bert and T5): labels and explanations journaled, explanation targets served with training batches."""

from __future__ import annotations

import pytest

from exil.common.engine import run
from exil.common.journal import Journal
from tests.conftest import compose
from tests.text_fixtures import rotten_tomatoes, tiny_backbone_overrides, tokenizer_folder


@pytest.mark.parametrize("kind,strategy", [("bert2bert", "xal"), ("t5", "xal_explanation_only")])
def test_xal_rotten_tomatoes_smoke(tmp_path, kind, strategy):
    data = tmp_path / "data"
    rotten_tomatoes(data, n=120)
    tok = tokenizer_folder(tmp_path)
    cfg = compose(["experiment=xal_rotten_tomatoes", f"paths.data_dir={data}", f"dataset.tokenizer=file:{tok}",
                   *tiny_backbone_overrides(kind), f"strategy={strategy}", "strategy.max_new_tokens=6",
                   "loop.rounds=2", "loop.query_size=6", "loop.initial_size=8", "loop.pool_subsample=30",
                   "dataset.max_length=16", "dataset.min_epoch_size=16", "dataset.test_items=20",
                   "method.hooks.max_explanation_length=10", "trainer.max_epochs=1", "logger=csv"], tmp_path / "run")
    run_dir = run(cfg)
    j = Journal(run_dir / "journal.sqlite")
    answers = j.answers()
    explained = [a for a in answers if a["question"] == "explain_label"]
    assert len(explained) == 8 + 2 * 6 and all(len(a["answer"]["explanations"]) == 2 for a in explained)
    gold = explained[0]["answer"]
    assert gold["explanations"][gold["label"]].startswith(["rotten", "fresh"][gold["label"]])
    notes = j.annotations()
    assert len(notes) == 20 and notes[int(explained[0]["key"])]["expl_ids"].shape == (2, 10)
    assert len(j.metrics_by_round()) == 3
    j.close()
