"""RRR, alternating training and eXBL end to end through the real configs, on decoy digits (embedded)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from exil.common.engine import run
from exil.common.journal import Journal, read_journal
from exil.common.run_folder import load_checkpoint
from tests.conftest import compose
from tests.smoke.test_resume_after_kill import query, reference_and_resumed

DECOY_DIGITS = ["experiment=rrr_decoy_mnist", "dataset=decoy_digits", "dataset.min_epoch_size=0", "loop.threads=1"]


def last_metrics(run_dir: Path) -> dict[str, float]:
    m = read_journal(run_dir / "journal.sqlite")["metrics"]
    return m[max(m)]


def test_rrr_learns_to_ignore_the_decoy_that_plain_training_uses(tmp_path):
    plain = last_metrics(run(compose([*DECOY_DIGITS, "method=baseline", "trainer.max_epochs=20"], tmp_path / "plain")))
    rrr_dir = run(compose([*DECOY_DIGITS, "method=rrr", "trainer.max_epochs=20"], tmp_path / "rrr"))
    rrr = last_metrics(rrr_dir)
    assert rrr["test/acc"] > plain["test/acc"] + 0.03, (plain, rrr)
    assert rrr["test/decoy_share"] < plain["test/decoy_share"] / 10, (plain, rrr)
    j = Journal(rrr_dir / "journal.sqlite")
    assert len(j.annotations()) == len(j.labelled()) == 1257  # every training image was annotated by the teacher
    assert np.load(rrr_dir / "predictions" / "round_000.npy").shape == (540,)


def test_alternating_runs_with_per_epoch_test_accuracy(run_cfg):
    run_dir = run(run_cfg(["experiment=alternating_decoy_mnist", "dataset=decoy_digits", "trainer.max_epochs=3",
                           "dataset.pool_size=100", "dataset.class_imbalance=0.2"], tiny=False))
    rows = list(csv.DictReader(open(run_dir / "rounds" / "000" / "epochs.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2] and all(0 <= float(r["acc"]) <= 1 for r in rows)
    assert "test/expl_recall" in last_metrics(run_dir)
    assert len(Journal(run_dir / "journal.sqlite").annotations()) == 100


def test_exbl_picks_exemplars_then_trains_with_them(run_cfg):
    run_dir = run(run_cfg(["experiment=exbl_decoy_fashion_mnist", "dataset=decoy_digits", "dataset.pool_size=300",
                           "trainer.max_epochs=2", "loop.threads=1", "method.hooks.metric_items=null"], tiny=False))
    j = Journal(run_dir / "journal.sqlite")
    (answer,) = [a for a in j.answers() if a["question"] == "choose_exemplars"]
    assert answer["answer"]["good"] != answer["answer"]["bad"]
    m = read_journal(run_dir / "journal.sqlite")["metrics"]
    assert sorted(m) == [0, 1] and m[0]["n_labels"] == m[1]["n_labels"] == 300
    assert all("test/expl_recall" in m[r] for r in m)
    end = load_checkpoint(run_dir / "checkpoints" / "round_000_end.pt")
    assert end["arch"] == {"exemplar_size": [8, 8]} and end["state_dict"]["good_map"].max() == 1


@pytest.mark.slow  # CI: test_chaos.py's aimed kills of an RRR run compare its annotations too
def test_killed_rrr_run_resumes_with_its_annotations(tmp_path):
    args = [*DECOY_DIGITS, "method=rrr", "loop.rounds=2", "loop.query_size=4", "loop.initial_size=20",
            "loop.initial_per_class=null", "trainer.max_epochs=2", "oracle.latency=0.1", "loop.seed=3"]
    ref, killed = reference_and_resumed(
        tmp_path, args, "SELECT COUNT(*) >= 2 FROM answers WHERE round = 1 AND question = 'relevance'")
    sql = "SELECT round, item, payload FROM annotations ORDER BY item"
    assert query(killed / "journal.sqlite", sql) == query(ref / "journal.sqlite", sql)
    assert len(query(ref / "journal.sqlite", sql)) == 20 + 8


def test_caipi_round_asks_corrections_and_adds_counterexamples(run_cfg):
    run_dir = run(run_cfg(["dataset=decoy_digits", "method=caipi", "oracle.irrelevant_field=decoy",
                           "method.hooks.segment_cell=2", "method.hooks.lime.num_samples=200",
                           "loop.query_size=10", "loop.initial_per_class=3", "trainer.max_epochs=15",
                           "loop.threads=1"]))
    j = Journal(run_dir / "journal.sqlite")
    corrections = [a for a in j.answers() if a["question"] == "correct_explanation"]
    assert corrections  # right predictions were explained and shown
    wrong = sum(len(a["answer"]) for a in corrections)
    extras = j.extras()
    assert len(extras) == 3 * wrong and all(e.kind == "counterexample" for e in extras)
    assert all(e.fields["x@index"].numel() == 4 for e in extras)  # a 2x2 segment changed


def test_caipi_colors_recolours_the_wrongly_relevant_pixels(run_cfg):
    run_dir = run(run_cfg(["experiment=caipi_colors", "loop.rounds=2", "dataset.size=400",
                           "method.hooks.lime_metric_items=50", "method.hooks.lime.num_samples=300"], tiny=False))
    j = Journal(run_dir / "journal.sqlite")
    extras = j.extras()
    assert extras and all(e.fields["x@index"].numel() == 1 for e in extras)  # one pixel recoloured
    assert {float(v) for e in extras for v in e.fields["x@values"]} <= {0.0, 1.0, 2.0, 3.0}
    assert "test/lime_f1" in last_metrics(run_dir)
