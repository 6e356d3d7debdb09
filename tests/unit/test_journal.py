import sqlite3

import pytest
import torch

from exil.common.data.pool_state import Extra
from exil.common.journal import Journal, read_journal


def test_stage_rows_commit_together_or_not_at_all(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    with pytest.raises(RuntimeError):
        with j.transaction():
            j.add_labels(1, [3, 4], [0, 1], source="oracle")
            j.mark(0, "incorporate", 0.1)
            raise RuntimeError("killed")
    assert j.labelled() == [] and not j.done(0, "incorporate")
    with j.transaction():
        j.add_labels(1, [3, 4], [0, 1], source="oracle")
        j.mark(0, "incorporate", 0.1)
    assert j.labelled() == [(1, 3, 0, "oracle"), (1, 4, 1, "oracle")]
    assert j.done(0, "incorporate")


def test_answers_are_append_only_and_survive_reopening(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.add_answer(0, "label", "17", 3, "SimulatedOracle")
    with pytest.raises(sqlite3.IntegrityError):  # never answered twice
        j.add_answer(0, "label", "17", 4, "SimulatedOracle")
    j.close()
    j2 = Journal(tmp_path / "j.sqlite")
    assert j2.answer(0, "label", "17") == (True, 3)
    assert j2.answer(0, "label", "18") == (False, None)
    assert j2.session == j.session + 1


def test_answers_cannot_hide_inside_a_transaction(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    with pytest.raises(RuntimeError, match="committed on their own"):
        with j.transaction():
            j.add_answer(0, "label", "1", 0, "x")


def test_extras_round_trip_with_tensors(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    e = [Extra({"x": torch.arange(4.0).view(1, 2, 2)}, label=2, weight=0.5, origin=7, kind="counterexample")]
    with j.transaction():
        j.add_extras(1, e)
        j.add_extras(1, e)  # positions continue within a round
    back = j.extras()
    assert len(back) == 2
    assert back[0].label == 2 and back[0].weight == 0.5 and back[0].origin == 7 and back[0].kind == "counterexample"
    assert torch.equal(back[1].fields["x"], e[0].fields["x"])


def test_metrics_and_read_only_summary(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.set_meta("config", {"a": 1})
    with j.transaction():
        j.add_metrics(0, 20, {"test/acc": 0.5})
        j.add_metrics(1, 30, {"test/acc": 0.7})
    s = read_journal(tmp_path / "j.sqlite")
    assert s["meta"]["config"] == {"a": 1}
    assert s["metrics"] == {0: {"n_labels": 20, "test/acc": 0.5}, 1: {"n_labels": 30, "test/acc": 0.7}}
