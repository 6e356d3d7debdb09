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


def _answers_then_copy(tmp_path, n: int):
    """A journal whose last ``n`` answers sit in its write-ahead log, copied (with the -wal) while the writer is
    still open, as a run folder copied mid-round is."""
    import shutil

    j = Journal(tmp_path / "live" / "journal.sqlite")
    j.db.execute("PRAGMA wal_autocheckpoint=0")
    j.checkpoint_wal()
    for k in range(n):
        j.add_answer(0, "label", str(k), k % 3, "SimulatedOracle")
    out = tmp_path / "copy"
    out.mkdir()
    for name in ("journal.sqlite", "journal.sqlite-wal"):
        shutil.copy(tmp_path / "live" / name, out / name)
    j.close()
    return out / "journal.sqlite"


def _count(path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    finally:
        db.close()


def test_an_intact_wal_passes_the_checksum_sqlite_wrote(tmp_path):
    """SQLite's own file is the reference for the WAL checksum: an intact log is not called cut."""
    from exil.common.run_folder import wal_cut

    path = _answers_then_copy(tmp_path, 12)
    wal = path.with_name("journal.sqlite-wal")
    assert wal.stat().st_size > 12 * 4096 and wal_cut(wal) is None
    assert _count(path) == 12


@pytest.mark.parametrize("damage", ["cut in half", "one byte flipped"])
def test_a_cut_or_damaged_wal_is_named_with_what_sqlite_dropped(tmp_path, damage):
    from exil.common.run_folder import wal_cut

    path = _answers_then_copy(tmp_path, 12)
    wal = path.with_name("journal.sqlite-wal")
    data = bytearray(wal.read_bytes())
    if damage == "cut in half":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    wal.write_bytes(bytes(data))
    said = wal_cut(wal)
    assert said is not None and ("ends inside a record" if damage == "cut in half" else "fails its checksum") in said
    kept = _count(path)  # what SQLite kept: the commits before the cut, silently
    assert 0 < kept < 12
