"""A run folder is untrusted input: each kind of damage ends in one message naming the file (exit status 2),
a pickle payload in a checkpoint never runs, and ``journal.sqlite`` alone holds the run up to its last stage."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from exil.common.cli import _guard
from exil.common.engine import run
from exil.common.run_folder import RunFolderDamaged, check_journal, sha256_file
from tests.conftest import ROOT, compose

pytestmark = pytest.mark.xdist_group("test_run_folder_damage")  # its module-scoped fixture is built once, in one worker

ARGS = ["loop.rounds=2", "loop.query_size=3", "loop.initial_per_class=1", "trainer.max_epochs=1",
        "logger=csv", "loop.threads=1", "loop.keep_checkpoints=all"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("finished") / "run"
    run(compose(ARGS, d))
    return d


@pytest.fixture
def copy(finished_run, tmp_path):
    def make() -> Path:
        d = tmp_path / "copy"
        shutil.copytree(finished_run, d)
        return d
    return make


def resume(d: Path, capsys) -> tuple[int, str]:
    """``exil loop.resume=d`` in this process: (exit status, what it printed on stderr)."""
    code = _guard(run, compose([f"loop.resume={d}"], d))
    return code, capsys.readouterr().err


def refused(d: Path, capsys, *needles: str) -> str:
    code, err = resume(d, capsys)
    assert code == 2, err
    message = " ".join(err.split())
    assert "Traceback" not in err and message.startswith("error:"), err
    for n in needles:
        assert n in message, message
    return message


def set_meta(d: Path, sql: str, *args) -> None:
    db = sqlite3.connect(d / "journal.sqlite")
    db.execute(sql, args)
    db.commit()
    db.close()


def test_a_finished_journal_is_complete_without_its_wal(finished_run):
    assert not (finished_run / "journal.sqlite-wal").exists() or (finished_run / "journal.sqlite-wal").stat().st_size == 0
    check_journal(finished_run / "journal.sqlite")
    db = sqlite3.connect(f"file:{finished_run / 'journal.sqlite'}?mode=ro&immutable=1", uri=True)  # ignores any WAL
    assert db.execute("SELECT COUNT(*) FROM stages WHERE stage = 'evaluate'").fetchone()[0] == 3
    assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 1 + 3 + 2  # init, three fits, two ends
    db.close()


def test_random_bytes_in_the_journal(copy, capsys):
    d = copy()
    (d / "journal.sqlite").write_bytes(os.urandom(8192))
    refused(d, capsys, "journal.sqlite is not an SQLite database")


def test_truncated_journal(copy, capsys):
    d = copy()
    data = (d / "journal.sqlite").read_bytes()
    (d / "journal.sqlite").write_bytes(data[: len(data) // 3])
    refused(d, capsys, "journal.sqlite is damaged")


def test_journal_whose_data_sat_in_a_missing_wal(tmp_path, capsys):
    """A run killed before its first stage ended has its tables only in the WAL: copying journal.sqlite
    alone gives a file without tables, and the message says where its data went."""
    d = tmp_path / "run"
    d.mkdir()
    db = sqlite3.connect(d / "live.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    shutil.copy(d / "live.sqlite", d / "journal.sqlite")  # the main file without its -wal
    db.close()
    (d / "live.sqlite").unlink()
    refused(d, capsys, "journal.sqlite holds no run", "journal.sqlite-wal, which is not here")


def test_missing_checkpoint(copy, capsys):
    d = copy()
    (d / "checkpoints" / "round_001_end.pt").unlink()
    set_meta(d, "DELETE FROM stages WHERE round = 2")  # resume must go on from round 1's end
    refused(d, capsys, "round_001_end.pt", "is missing", "last finished stage is round 1 · incorporate")


def test_edited_config(copy, capsys):
    d = copy()
    db = sqlite3.connect(d / "journal.sqlite")
    (cfg,) = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
    db.close()
    set_meta(d, "UPDATE meta SET value = ? WHERE key = 'config'", cfg.replace('"query_size": 3', '"query_size": 30'))
    refused(d, capsys, "stored config (meta.config) does not match", "edited")


EDITS = {  # what a person with SQLite's tools can do to a journal → what the refusal names
    "a label changed": ("UPDATE labelled SET label = (label + 1) % 10 WHERE seq = 12",
                        "the row of labelled (round 1, item", "was changed by hand"),
    "an answer changed": ("UPDATE answers SET answer = '3' WHERE rowid = (SELECT MAX(rowid) FROM answers)",
                          "the row of answers (round 1, question label", "was changed by hand"),
    "a label deleted": ("DELETE FROM labelled WHERE seq = 12", "the row of labelled in ledger entry",
                        "was deleted by hand"),
    "a label added": ("INSERT INTO labelled(round, item, label, source) VALUES (2, 99999, 1, 'oracle')",
                      "the row of labelled (round 2, item 99999) is not in the ledger", "added by hand"),
    "a query's score changed": ("UPDATE queries SET score = 0 WHERE round = 0 AND position = 0",
                                "the row of queries (round 0, position 0, item", "changed by hand"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_journal_row_is_refused(copy, capsys, edit):
    """Issue 24: labels edited in the journal were accepted (rc 0, a different model); the ledger names the row."""
    d = copy()
    sql, *needles = EDITS[edit]
    set_meta(d, sql)
    refused(d, capsys, "journal.sqlite:", *needles, "restore the journal")


def test_an_unedited_journal_passes_its_ledger(finished_run):
    from exil.common.journal import ledger_problem

    db = sqlite3.connect(f"file:{finished_run / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        assert ledger_problem(db) is None
        n = sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in
                ("queries", "answers", "revisions", "labelled", "extras", "annotations"))
        assert db.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM ledger").fetchone() == (n, 1, n)
    finally:
        db.close()


def test_a_journal_from_before_the_ledger_still_resumes(copy, capsys):
    d = copy()
    db = sqlite3.connect(d / "journal.sqlite")
    db.execute("DELETE FROM meta WHERE key = 'ledger'")
    db.execute("DROP TABLE ledger")
    for table in ("queries", "answers", "revisions", "labelled", "extras", "annotations"):
        db.execute(f"ALTER TABLE {table} DROP COLUMN ledger")
    db.commit()
    db.close()
    check_journal(d / "journal.sqlite")  # its rows are not in a ledger, and none is claimed
    from exil.common.journal import Journal, ledger_problem

    j = Journal(d / "journal.sqlite")  # reopened as a resume does: new rows are chained
    with j.transaction():
        j.add_labels(3, [99999], [1], "oracle")
    j.close()
    check_journal(d / "journal.sqlite")
    db = sqlite3.connect(d / "journal.sqlite")
    assert db.execute("SELECT ledger FROM labelled WHERE item = 99999").fetchone() == (1,)
    db.execute("UPDATE labelled SET label = 2 WHERE item = 99999")
    db.commit()
    assert "was changed by hand" in ledger_problem(db)
    db.close()


def test_a_wal_cut_in_half_is_said_on_resume_with_when_answers_were_lost(copy, tmp_path, capsys):
    """SQLite rolls a cut write-ahead log back to its last whole commit without a word (its contract); resuming
    says that answers after the last saved one will be asked again (issue 24)."""
    import time

    from exil.common.journal import Journal

    d = copy()
    j = Journal(d / "journal.sqlite")
    j.db.execute("PRAGMA wal_autocheckpoint=0")
    for k in range(10):  # answers of a round in progress: in the WAL only
        j.add_answer(9, "label", str(k), 1, "SimulatedOracle")
    cut = tmp_path / "cut"
    shutil.copytree(d, cut)  # copied while the run is live, as a half-finished copy is
    j.close()
    wal = cut / "journal.sqlite-wal"
    wal.write_bytes(wal.read_bytes()[: wal.stat().st_size // 2])
    code, err = resume(cut, capsys)
    said = " ".join(err.split())
    assert code == 0, err
    db = sqlite3.connect(cut / "journal.sqlite")
    (last,) = db.execute("SELECT MAX(t) FROM answers WHERE round = 9").fetchone()
    kept = db.execute("SELECT COUNT(*) FROM answers WHERE round = 9").fetchone()[0]
    db.close()
    assert 0 < kept < 10
    assert "note: journal.sqlite-wal ends inside a record" in said, said
    assert f"answers given after {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(last))} (the last one saved) " \
           "were not saved and will be asked again" in said, said


def test_swapped_checkpoint_is_refused(copy, capsys):
    d = copy()
    shutil.copy(d / "checkpoints" / "init.pt", d / "checkpoints" / "round_001_end.pt")
    set_meta(d, "DELETE FROM stages WHERE round = 2")
    refused(d, capsys, "round_001_end.pt", "does not match the SHA-256 the journal recorded")


def test_random_bytes_in_a_checkpoint_without_a_recorded_hash(copy, capsys):
    d = copy()
    (d / "checkpoints" / "round_001_end.pt").write_bytes(os.urandom(4096))
    set_meta(d, "DELETE FROM stages WHERE round = 2")
    set_meta(d, "DELETE FROM files")  # as in a journal from before hashes were kept
    refused(d, capsys, "round_001_end.pt", "is not a readable checkpoint")


class Payload:
    """Unpickling this runs ``touch <marker>``: what a shared run folder could carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("hash_matches", [False, True])
def test_a_pickle_payload_in_a_checkpoint_never_runs(copy, capsys, tmp_path, hash_matches):
    """Even with its hash forged into the journal, a checkpoint with Python objects is refused unread."""
    d = copy()
    marker = tmp_path / "pwned"
    ckpt = d / "checkpoints" / "round_001_end.pt"
    good = torch.load(ckpt, weights_only=True)
    torch.save({**good, "evil": Payload(marker)}, ckpt)
    set_meta(d, "DELETE FROM stages WHERE round = 2")
    if hash_matches:
        set_meta(d, "UPDATE files SET sha256 = ? WHERE name = ?", sha256_file(ckpt), ckpt.name)
        refused(d, capsys, "round_001_end.pt", "holds Python objects", "never runs code")
    else:
        refused(d, capsys, "round_001_end.pt", "does not match the SHA-256")
    assert not marker.exists()


def test_killed_before_its_journal_existed(tmp_path, capsys):
    d = tmp_path / "run"
    (d / ".hydra").mkdir(parents=True)
    refused(d, capsys, "no journal.sqlite", "stopped before its journal was made", "without loop.resume")
    refused(tmp_path / "nowhere", capsys, "no such folder")


def test_the_command_line_prints_one_line_and_exits_2(copy):
    d = copy()
    (d / "journal.sqlite").write_bytes(b"not a database at all" * 100)
    env = dict(os.environ, WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "exil.common.cli", f"loop.resume={d}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in p.stderr and lines[0].startswith("error:") and "journal.sqlite" in p.stderr, p.stderr


def test_the_check_refuses_a_journal_without_a_run(tmp_path):
    (tmp_path / "journal.sqlite").write_bytes(b"")
    with pytest.raises(RunFolderDamaged, match="is empty"):
        check_journal(tmp_path / "journal.sqlite")


def test_killed_in_its_first_second(tmp_path, capsys):
    """The journal file and its WAL exist, no table yet: nothing to resume, and the message says to start again."""
    d = tmp_path / "run"
    (d / ".hydra").mkdir(parents=True)
    db = sqlite3.connect(d / "journal.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE sessions(id INTEGER)")
    refused(d, capsys, "holds no run yet: it was stopped before it started", "without loop.resume")
    db.close()


def forge_config(d: Path, edit) -> None:
    """Edit the stored config the way an attacker who read exil's source would: recompute its hash too."""
    import json

    from exil.common.run_folder import config_hash

    db = sqlite3.connect(d / "journal.sqlite")
    (raw,) = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
    cfg = json.loads(raw)
    edit(cfg)
    db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(cfg),))
    db.execute("UPDATE meta SET value = ? WHERE key = 'config_sha256'", (json.dumps(config_hash(cfg)),))
    db.execute("DELETE FROM stages WHERE round = 2")  # something left to do, so the stored config is used
    db.commit()
    db.close()


def test_a_stored_config_that_builds_a_loader_of_python_objects_never_runs(copy, capsys, tmp_path):
    """``_target_: torch.load`` (``weights_only: false``) on a pickle in the folder, with a matching hash:
    refused before anything is built, and the payload never runs."""
    d = copy()
    marker = tmp_path / "pwned"
    torch.save(Payload(marker), d / "evil.pkl")

    def edit(cfg):
        cfg["strategy"] = {"_target_": "torch.load", "f": str(d / "evil.pkl"), "weights_only": False}

    forge_config(d, edit)
    refused(d, capsys, "strategy._target_=torch.load", "is not a target any installed config")
    assert not marker.exists()


def test_interpolations_in_a_stored_config_are_never_resolved(copy, capsys, monkeypatch):
    monkeypatch.setenv("EXIL_TEST_SECRET", "s3cret-value")
    d = copy()
    forge_config(d, lambda cfg: cfg.setdefault("tags", []).append("${oc.env:EXIL_TEST_SECRET}"))
    refused(d, capsys, "holds an interpolation", "never resolves")
    assert not [p for p in d.rglob("*") if p.is_file() and b"s3cret-value" in p.read_bytes()]


def test_a_link_in_a_run_folder_is_refused_and_nothing_is_written_through_it(copy, capsys, tmp_path):
    d = copy()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (d / "results.csv").unlink()
    (d / "results.csv").symlink_to(victim)
    set_meta(d, "DELETE FROM stages WHERE round = 2")
    refused(d, capsys, "results.csv is a symbolic link out of the run folder", "never writes through such links")
    assert victim.read_text() == "keep me"
    # a fresh run into a folder holding a link is refused the same way
    fresh = tmp_path / "fresh"
    (fresh / "checkpoints").mkdir(parents=True)
    (fresh / "checkpoints" / "init.pt.tmp").symlink_to(victim)
    code = _guard(run, compose(ARGS, fresh))
    assert code == 2 and "is a symbolic link" in " ".join(capsys.readouterr().err.split())
    assert victim.read_text() == "keep me"


def test_a_hard_link_in_a_run_folder_is_refused_and_nothing_is_written_through_it(copy, capsys, tmp_path):
    d = copy()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (d / "results.csv").unlink()
    os.link(victim, d / "results.csv")  # the same file under a second name, inside the folder
    set_meta(d, "DELETE FROM stages WHERE round = 2")
    refused(d, capsys, "results.csv is a hard link", "1 other name(s)")
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("left", ["empty file", "schema only"])
def test_a_run_killed_before_its_first_commit_starts_again_in_the_same_folder(tmp_path, capsys, left):
    """What a kill during the journal's very first writes leaves: resuming it is refused (nothing to resume),
    and starting the same command again in the same folder runs (it used to repeat the refusal)."""
    from exil.common.journal import Journal

    d = tmp_path / "run"
    d.mkdir()
    if left == "empty file":
        (d / "journal.sqlite").write_bytes(b"")
    else:
        Journal(d / "journal.sqlite").close()  # the schema, no config yet
    refused(d, capsys, "is empty" if left == "empty file" else "without loop.resume")
    assert (run(compose(ARGS, d)) / "journal.sqlite").exists()
    check_journal(d / "journal.sqlite")


@pytest.mark.parametrize("target", ["exil.common.kill_points.os.system", "exil.common.run_folder.torch.load",
                                    "exil.common.run_folder.pickle.loads"])
def test_an_exil_prefix_is_no_way_to_reach_another_library_s_function(copy, capsys, tmp_path, target):
    """Hydra locates ``exil.common.kill_points.os.system`` attribute by attribute (``kill_points`` imports
    ``os``): a target must be defined in exil and reached through exil's modules only."""
    d = copy()
    marker = tmp_path / "pwned"

    def edit(cfg):
        cfg["strategy"] = {"_target_": target, "_args_": [f"touch {marker}"]}

    forge_config(d, edit)
    refused(d, capsys, f"strategy._target_={target}", "is not a target any installed config")
    assert not marker.exists()


def test_a_file_outside_the_run_folder_is_appended_to_only_when_the_resume_command_says_so(copy, capsys, tmp_path):
    d = copy()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    forge_config(d, lambda cfg: cfg["oracle"].update(call_log=str(victim)))
    refused(d, capsys, f"oracle.call_log={victim} reaches outside the run folder",
            "resume with oracle=simulated oracle.call_log=<the value>")
    assert victim.read_text() == "keep me\n"
    # the person resuming says so: the stored value is used (the last round's fit and evaluation are done again)
    set_meta(d, "DELETE FROM files WHERE name LIKE 'round_002%'")
    set_meta(d, "DELETE FROM metrics WHERE round = 2")
    assert _guard(run, compose([f"loop.resume={d}", f"oracle.call_log={victim}"], d)) == 0, capsys.readouterr().err


def test_a_run_folder_cannot_send_the_llm_teacher_s_key_elsewhere(copy, capsys, monkeypatch):
    """A folder whose stored config turns its teacher into the LLM teacher, sending requests to a host of its
    choice with the key of another environment variable, is refused before anything is sent."""
    monkeypatch.setenv("EXIL_TEST_CLOUD_KEY", "s3cret-value")
    d = copy()

    def edit(cfg):
        cfg["oracle"] = {"_target_": "exil.common.oracle.llm.LLMOracle", "task": "sentiment",
                         "client": {"_target_": "exil.common.oracle.llm.ChatClient", "model": "m",
                                    "base_url": "http://127.0.0.1:9/v1", "api_key_env": "EXIL_TEST_CLOUD_KEY"}}

    forge_config(d, edit)
    refused(d, capsys, "oracle.client.base_url=http://127.0.0.1:9/v1 reaches outside the run folder")


def test_what_reaches_out_is_what_the_installed_configs_give_or_what_the_command_restates(monkeypatch, tmp_path):
    """:func:`reaching_out` against the installed LLM teacher's config, composed for the stored choices: its
    default endpoint and key variable pass; another host, another key variable or a W&B-like ``host`` do not,
    unless restated; the endpoint the environment names today passes."""
    from exil.common.engine import _installed_reach
    from exil.common.run_folder import reaching_out

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    installed = _installed_reach({"oracle": "llm", "logger": "csv"})
    assert installed["oracle"]["client"]["base_url"] == "https://api.openai.com/v1"

    def stored(**client):
        base = {"base_url": "https://api.openai.com/v1", "base_url_env": "OPENAI_BASE_URL",
                "api_key_env": "OPENAI_API_KEY", "model": "gpt-3.5-turbo"}
        return {"oracle": {"client": {**base, **client}}, "logger": {"csv": {"save_dir": "x"}}}

    assert reaching_out(stored(), installed, tmp_path, set()) is None
    why = reaching_out(stored(api_key_env="AWS_SECRET_ACCESS_KEY"), installed, tmp_path, set())
    assert why.startswith("oracle.client.api_key_env=AWS_SECRET_ACCESS_KEY reaches outside") and "OPENAI_API_KEY" in why
    assert reaching_out(stored(base_url="http://10.0.0.5/v1"), installed, tmp_path, set()).startswith(
        "oracle.client.base_url=http://10.0.0.5/v1")
    assert reaching_out(stored(base_url="http://10.0.0.5/v1"), installed, tmp_path,
                        {"oracle.client.base_url"}) is None
    # a password in the stored URL is redacted when stored; the message never prints it
    why = reaching_out(stored(base_url="http://u:pw-9@10.0.0.5/v1"), installed, tmp_path, set())
    assert "pw-9" not in why
    monkeypatch.setenv("OPENAI_BASE_URL", "http://10.0.0.5/v1")  # today's environment names that endpoint
    assert reaching_out(stored(base_url="http://10.0.0.5/v1"), _installed_reach({"oracle": "llm"}), tmp_path,
                        set()) is None
    # a file inside the run folder is the run's own
    assert reaching_out({"oracle": {"call_log": str(tmp_path / "calls.log")}}, {}, tmp_path, set()) is None
    assert reaching_out({"logger": {"x": {"host": "http://h"}}}, {}, tmp_path, set()).startswith("logger.x.host=")
