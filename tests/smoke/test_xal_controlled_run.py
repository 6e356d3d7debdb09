"""experiment=xal_rationale end to end with a tiny random-init bert2bert: the rationale teacher's explanations are
journaled (gold: the review's verdict) and become decoder targets; the controlled reproduction's analyses read
the finished run."""

from __future__ import annotations

from exil.common.data.rationale_phrases import split_rows
from exil.common.engine import run
from exil.common.journal import Journal
from tests.conftest import compose
from tests.text_fixtures import tiny_backbone_overrides, tokenizer_folder

SMALL = ["loop.rounds=1", "loop.query_size=6", "loop.initial_size=8", "loop.pool_subsample=30",
         "dataset.pool_items=80", "dataset.test_items=20", "dataset.min_epoch_size=16", "trainer.max_epochs=1",
         "logger=csv"]


def test_xal_rationale_smoke(tmp_path):
    tok = tokenizer_folder(tmp_path)
    overrides = ["experiment=xal_rationale", f"dataset.tokenizer=file:{tok}", *tiny_backbone_overrides(), *SMALL]
    run_dir = run(compose(overrides, tmp_path / "run"))
    j = Journal(run_dir / "journal.sqlite")
    explained = [a for a in j.answers() if a["question"] == "explain_label"]
    rows = split_rows("pool", 80, 0)
    assert len(explained) == 8 + 6
    for a in explained:
        y, row = a["answer"]["label"], rows[int(a["key"])]
        assert a["answer"]["explanations"][y] == f"{row['label']} because it says {row['rationale']}"
    assert len(j.annotations()) == 14 and len(j.metrics_by_round()) == 2
    j.set_meta("finished", True)
    j.close()

    from reproduce import xal_controlled as rx

    check = rx.explanation_check(run_dir, overrides, n=20)
    assert {"acc", "verdict", "in_review", "auroc_p", "auroc_p_conflict"} <= set(check) and 0 <= check["verdict"] <= 100
