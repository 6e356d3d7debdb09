"""The run journal: one SQLite file per run, append-only, the source of truth for resume.

Tables (rows are inserted, never updated or deleted):

* ``meta(key, value)``            — the resolved config and the seed of the run;
* ``sessions(id, pid, started)``  — one row per process that worked on the run;
* ``stages(round, stage, ...)``   — a stage of a round is done (with its wall time);
* ``queries(round, position, item, score)`` — what the strategy chose;
* ``answers(round, question, key, answer, ...)`` — every oracle answer, written *before* it is used;
* ``revisions(round, question, key, seq, answer, ...)`` — a teacher's later answers to a question it answered
  already (a misclick taken back on the web page before the round's answers were used); the newest counts;
* ``labelled(round, item, label, source)`` — labels the training set holds (``initial`` or ``oracle``);
* ``extras(round, position, origin, label, weight, kind, payload)`` — examples a method added;
* ``annotations(round, item, payload)`` — a teacher's annotation fields of a labelled item (masks);
* ``metrics(round, n_labels, name, value)`` — per-round evaluation;
* ``files(name, sha256, round, stage)`` — the SHA-256 of each checkpoint, recorded with the stage that wrote it
  (a checkpoint that does not match is refused: :mod:`exil.common.run_folder`);
* ``ledger(seq, tbl, digest)`` — a hash chain over every row of the tables that decide what the model learns
  (:data:`CHAINED`: queries, answers, revisions, labelled, extras, annotations). Row ``n`` (its ``ledger``
  column) has ``digest_n = SHA-256(digest_{n-1} ‖ table ‖ the row's values)``, with ``digest_0`` =
  :data:`LEDGER_ROOT`; :func:`ledger_problem` recomputes the chain when a run is resumed, so a row edited, deleted
  or added by hand (``UPDATE labelled SET label = 3``) is refused, naming the row. The chain is not a signature: whoever
  rewrites the journal *and* recomputes every later digest is not detected; it catches edits made with SQLite's
  tools, which is how a run folder is changed by hand.

A stage's rows and its ``stages`` mark are written in one transaction, so after a
kill a stage is either fully recorded or absent. Answers are committed one by one
as they arrive: a kill in the middle of asking loses no answer.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from exil.common.data.pool_state import Extra
from exil.common.errors import ExilError
from exil.common.kill_points import reached

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER, started REAL);
CREATE TABLE IF NOT EXISTS stages(round INTEGER, stage TEXT, seconds REAL, session INTEGER, t REAL,
    PRIMARY KEY(round, stage));
CREATE TABLE IF NOT EXISTS queries(round INTEGER, position INTEGER, item INTEGER, score REAL,
    PRIMARY KEY(round, position));
CREATE TABLE IF NOT EXISTS answers(round INTEGER, question TEXT, key TEXT, answer TEXT, oracle TEXT,
    session INTEGER, t REAL, teacher TEXT, seconds REAL, PRIMARY KEY(round, question, key));
CREATE TABLE IF NOT EXISTS revisions(round INTEGER, question TEXT, key TEXT, seq INTEGER, answer TEXT,
    oracle TEXT, session INTEGER, t REAL, teacher TEXT, seconds REAL, PRIMARY KEY(round, question, key, seq));
CREATE TABLE IF NOT EXISTS opinions(round INTEGER, question TEXT, key TEXT, teacher TEXT, answer TEXT,
    seconds REAL, session INTEGER, t REAL, PRIMARY KEY(round, question, key, teacher));
CREATE TABLE IF NOT EXISTS labelled(seq INTEGER PRIMARY KEY AUTOINCREMENT, round INTEGER, item INTEGER UNIQUE,
    label INTEGER, source TEXT);
CREATE TABLE IF NOT EXISTS extras(round INTEGER, position INTEGER, origin INTEGER, label INTEGER,
    weight REAL, kind TEXT, payload BLOB, PRIMARY KEY(round, position));
CREATE TABLE IF NOT EXISTS annotations(round INTEGER, item INTEGER PRIMARY KEY, payload BLOB);
CREATE TABLE IF NOT EXISTS metrics(round INTEGER, n_labels INTEGER, name TEXT, value REAL,
    PRIMARY KEY(round, name));
CREATE TABLE IF NOT EXISTS files(name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, round INTEGER, stage TEXT);
CREATE TABLE IF NOT EXISTS ledger(seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, digest TEXT NOT NULL);
"""

#: the chained tables and their columns in hash order, each with its storage type (i: INTEGER, r: REAL, t: TEXT,
#: b: BLOB); each such table also has a ``ledger`` column, the row's place in the chain
CHAINED: dict[str, tuple[tuple[str, str], ...]] = {
    "queries": (("round", "i"), ("position", "i"), ("item", "i"), ("score", "r")),
    "answers": (("round", "i"), ("question", "t"), ("key", "t"), ("answer", "t"), ("oracle", "t"), ("session", "i"),
                ("t", "r"), ("teacher", "t"), ("seconds", "r")),
    "revisions": (("round", "i"), ("question", "t"), ("key", "t"), ("seq", "i"), ("answer", "t"), ("oracle", "t"),
                  ("session", "i"), ("t", "r"), ("teacher", "t"), ("seconds", "r")),
    "opinions": (("round", "i"), ("question", "t"), ("key", "t"), ("teacher", "t"), ("answer", "t"),
                 ("seconds", "r"), ("session", "i"), ("t", "r")),
    "labelled": (("round", "i"), ("item", "i"), ("label", "i"), ("source", "t")),
    "extras": (("round", "i"), ("position", "i"), ("origin", "i"), ("label", "i"), ("weight", "r"), ("kind", "t"),
               ("payload", "b")),
    "annotations": (("round", "i"), ("item", "i"), ("payload", "b")),
}
LEDGER_ROOT = "exil-ledger/1"
_SQL_TYPE = {"i": "INTEGER", "r": "REAL", "t": "TEXT", "b": "BLOB"}


class Journal:
    """Append-only SQLite journal of one run (see module docstring).

    Each thread gets its own SQLite connection (a web teacher's answers are committed from the server's
    threads while the loop holds a stage transaction on its own), all under the one process lock.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path.with_suffix(".lock"), "a+")
        try:  # one process per run: two would ask the same questions
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ExilError(f"another exil process is working on {self.path.parent}; wait for it or stop it") from None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self.db.execute("PRAGMA journal_mode=WAL")
        fresh = not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
        self.db.executescript(SCHEMA)
        for table in CHAINED:  # a journal from before the ledger: its rows stay unchained, new ones are chained
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for column, kind in (*CHAINED[table], ("ledger", "i")):  # and from before who answered, how fast
                if column not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {_SQL_TYPE[kind]}")
        if fresh:  # every row of this journal is chained: one without a ledger entry was added by hand
            self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('ledger', ?)", (json.dumps(LEDGER_ROOT),))
        cur = self.db.execute("INSERT INTO sessions(pid, started) VALUES (?, ?)", (os.getpid(), time.time()))
        self.session = cur.lastrowid

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the journal."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()
        self._lock.close()  # releases the lock

    # --------------------------------------------------------------- writing
    def transaction(self) -> "_Transaction":
        """``with journal.transaction(): ...`` — all inserts inside commit together or not at all."""
        return _Transaction(self.db)

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def mark(self, round: int, stage: str, seconds: float) -> None:
        self.db.execute(
            "INSERT INTO stages(round, stage, seconds, session, t) VALUES (?, ?, ?, ?, ?)",
            (round, stage, seconds, self.session, time.time()),
        )

    def add_file(self, name: str, sha256: str, round: int, stage: str) -> None:
        """The hash of a checkpoint written by ``stage`` of ``round`` (in that stage's transaction)."""
        self.db.execute("INSERT INTO files(name, sha256, round, stage) VALUES (?, ?, ?, ?)",
                        (name, sha256, round, stage))

    def checkpoint_wal(self) -> None:
        """Move the write-ahead log into ``journal.sqlite`` (at the end of every stage), so that the main file
        alone holds the run up to its last finished stage."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _append(self, table: str, rows: Sequence[tuple]) -> None:
        """Insert ``rows`` (values in :data:`CHAINED` order) into ``table``, each linked into the ledger, in the
        open transaction (or one of their own): the rows and their digests commit together."""
        if not self.db.in_transaction:
            with self.transaction():
                return self._append(table, rows)
        cols = CHAINED[table]
        rows = [tuple(_stored(v, ty) for v, (_, ty) in zip(r, cols, strict=True)) for r in rows]
        last = self.db.execute("SELECT seq, digest FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        seq, digest = last if last else (0, LEDGER_ROOT)
        entries, chained = [], []
        for r in rows:
            seq, digest = seq + 1, _link(digest, table, r)
            entries.append((seq, table, digest))
            chained.append((*r, seq))
        names = ", ".join(c for c, _ in cols)
        self.db.executemany("INSERT INTO ledger(seq, tbl, digest) VALUES (?, ?, ?)", entries)
        self.db.executemany(f"INSERT INTO {table}({names}, ledger) VALUES ({', '.join('?' * (len(cols) + 1))})",
                            chained)

    def add_queries(self, round: int, items: Sequence[int], scores: Sequence[float]) -> None:
        self._append("queries", [(round, p, int(i), _float(s)) for p, (i, s) in enumerate(zip(items, scores))])

    def add_answer(self, round: int, question: str, key: str, answer: Any, oracle: str, teacher: str | None = None,
                   seconds: float | None = None) -> None:
        """Commit one answer immediately (outside any open transaction it would be lost with). ``teacher``: who
        gave it (a named teacher; several joined by ``+`` when they agreed, the reviewer when one settled it);
        ``seconds``: what it cost them — the time the question was on screen until it was answered (summed over
        every teacher who answered it), or a simulated teacher's cost model."""
        if self.db.in_transaction:
            raise RuntimeError("answers are committed on their own, never inside a stage transaction")
        self._append("answers", [(round, question, key, json.dumps(answer), oracle, self.session, time.time(),
                                  teacher, seconds)])

    def add_revision(self, round: int, question: str, key: str, answer: Any, oracle: str, teacher: str | None = None,
                     seconds: float | None = None) -> int:
        """Commit a later answer to an answered question (the newest counts); returns its revision number."""
        if self.db.in_transaction:
            raise RuntimeError("answers are committed on their own, never inside a stage transaction")
        with self.transaction():
            seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM revisions WHERE round = ? AND question = ? "
                                  "AND key = ?", (round, question, key)).fetchone()[0]
            self._append("revisions", [(round, question, key, seq, json.dumps(answer), oracle, self.session,
                                        time.time(), teacher, seconds)])
        return seq

    def add_answers(self, round: int, rows: Sequence[tuple[str, str, Any]], oracle: str,
                    seconds: dict[str, float] | None = None) -> None:
        """Commit many (question, key, answer) rows of a reproducible oracle in one transaction; ``seconds``: the
        cost of an answer of each question kind (a simulated teacher's cost model)."""
        t, cost = time.time(), seconds or {}
        self._append("answers", [(round, q, k, json.dumps(a), oracle, self.session, t, None, cost.get(q))
                                 for q, k, a in rows])

    def add_opinion(self, round: int, question: str, key: str, teacher: str, answer: Any, seconds: float | None) -> None:
        """Commit one teacher's answer to a question several teachers are asked (``oracle.overlap``): every
        teacher's answer is kept; the settled one goes to ``answers``."""
        if self.db.in_transaction:
            raise RuntimeError("answers are committed on their own, never inside a stage transaction")
        self._append("opinions", [(round, question, key, teacher, json.dumps(answer), seconds, self.session,
                                   time.time())])

    def opinions(self, round: int | None = None) -> list[dict[str, Any]]:
        """Every teacher's answer to overlapping questions, oldest first."""
        sql = "SELECT round, question, key, teacher, answer, seconds FROM opinions"
        rows = self.db.execute(sql + (" WHERE round = ?" if round is not None else "") + " ORDER BY t",
                               (() if round is None else (round,))).fetchall()
        keys = ("round", "question", "key", "teacher", "answer", "seconds")
        return [dict(zip(keys, (*r[:4], json.loads(r[4]), r[5]))) for r in rows]

    def teacher_seconds(self, before_round: int | None = None) -> float:
        """The teachers' time spent so far (answers and revisions, in rounds before ``before_round``)."""
        where = "" if before_round is None else f" WHERE round < {int(before_round)}"
        return float(sum(self.db.execute(f"SELECT COALESCE(SUM(seconds), 0) FROM {t}{where}").fetchone()[0]
                         for t in ("answers", "revisions")))

    def seconds_by_kind(self, before_round: int | None = None) -> dict[str, tuple[int, float]]:
        """{question kind: (answers with a known cost, their seconds)} in rounds before ``before_round``."""
        where = "seconds IS NOT NULL" + ("" if before_round is None else f" AND round < {int(before_round)}")
        rows = self.db.execute(f"SELECT question, COUNT(*), SUM(seconds) FROM answers WHERE {where} GROUP BY question")
        return {q: (int(n), float(total)) for q, n, total in rows}

    def add_labels(self, round: int, items: Sequence[int], labels: Sequence[int], source: str) -> None:
        self._append("labelled", [(round, int(i), int(y), source) for i, y in zip(items, labels)])

    def add_extras(self, round: int, extras: Sequence[Extra]) -> None:
        start = self.db.execute("SELECT COUNT(*) FROM extras WHERE round = ?", (round,)).fetchone()[0]
        self._append("extras", [(round, start + p, e.origin, e.label, e.weight, e.kind, pack_tensors(e.fields))
                                for p, e in enumerate(extras)])

    def add_annotations(self, round: int, annotations: dict[int, dict[str, torch.Tensor]]) -> None:
        self._append("annotations", [(round, int(i), pack_tensors(f)) for i, f in annotations.items()])

    def add_metrics(self, round: int, n_labels: int, metrics: dict[str, float]) -> None:
        self.db.executemany(
            "INSERT INTO metrics(round, n_labels, name, value) VALUES (?, ?, ?, ?)",
            [(round, n_labels, k, float(v)) for k, v in sorted(metrics.items())],
        )

    # --------------------------------------------------------------- reading
    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def file_hash(self, name: str) -> str | None:
        """The SHA-256 recorded for checkpoint ``name`` (None: none recorded)."""
        row = self.db.execute("SELECT sha256 FROM files WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def last_stage(self) -> tuple[int, str] | None:
        """(round, stage) of the newest finished stage, or None."""
        return self.db.execute("SELECT round, stage FROM stages ORDER BY t DESC, rowid DESC LIMIT 1").fetchone()

    def done(self, round: int, stage: str) -> bool:
        return self.db.execute("SELECT 1 FROM stages WHERE round = ? AND stage = ?", (round, stage)).fetchone() is not None

    def stages(self) -> list[tuple[int, str, float]]:
        return self.db.execute("SELECT round, stage, seconds FROM stages ORDER BY t").fetchall()

    def queries(self, round: int) -> tuple[list[int], list[float]]:
        rows = self.db.execute("SELECT item, score FROM queries WHERE round = ? ORDER BY position", (round,)).fetchall()
        return [r[0] for r in rows], [float("nan") if r[1] is None else r[1] for r in rows]

    def answer(self, round: int, question: str, key: str) -> tuple[bool, Any]:
        """(found, answer): the newest answer to the question (its latest revision, if it has one)."""
        row = self.db.execute(
            f"SELECT {_LATEST} FROM answers a WHERE round = ? AND question = ? AND key = ?", (round, question, key)
        ).fetchone()
        return (True, json.loads(row[0])) if row else (False, None)

    def answers_of(self, round: int, kinds: set[str]) -> dict[tuple[str, str], Any]:
        """{(question, key): newest answer} of ``round`` for the question kinds ``kinds``."""
        marks = ",".join("?" * len(kinds))
        rows = self.db.execute(f"SELECT question, key, {_LATEST} FROM answers a WHERE round = ? "
                               f"AND question IN ({marks})", (round, *sorted(kinds))).fetchall()
        return {(q, k): json.loads(a) for q, k, a in rows}

    def answers(self, round: int | None = None) -> list[dict[str, Any]]:
        """Every answered question in the order first answered, with its newest answer (``revisions``: how many
        later answers it has)."""
        sql = (f"SELECT round, question, key, {_LATEST}, oracle, session, (SELECT COUNT(*) FROM revisions r WHERE "
               "r.round = a.round AND r.question = a.question AND r.key = a.key), teacher, seconds FROM answers a")
        rows = self.db.execute(sql + (" WHERE round = ?" if round is not None else "") + " ORDER BY t",
                               (() if round is None else (round,))).fetchall()
        keys = ("round", "question", "key", "answer", "oracle", "session")
        out = [dict(zip(keys, r[:3] + (json.loads(r[3]),) + r[4:6])) for r in rows]
        for row, r in zip(out, rows):
            if r[6]:
                row["revisions"] = r[6]
            if r[7] is not None:
                row["teacher"] = r[7]
            if r[8] is not None:
                row["seconds"] = r[8]
        return out

    def revisions(self, round: int | None = None) -> list[dict[str, Any]]:
        """The later answers, oldest first (the first answers stay in ``answers``)."""
        sql = "SELECT round, question, key, seq, answer, oracle, session FROM revisions"
        rows = self.db.execute(sql + (" WHERE round = ?" if round is not None else "") + " ORDER BY t, seq",
                               (() if round is None else (round,))).fetchall()
        keys = ("round", "question", "key", "seq", "answer", "oracle", "session")
        return [dict(zip(keys, r[:4] + (json.loads(r[4]),) + r[5:])) for r in rows]

    def skipped_items(self) -> list[int]:
        """Pool items whose newest ``label`` answer is a skip (``null``): never asked again."""
        rows = self.db.execute(f"SELECT key FROM answers a WHERE question = 'label' AND round >= 0 "
                               f"AND {_LATEST} = 'null'").fetchall()
        return sorted(int(k) for (k,) in rows)

    def answer_count(self, before_round: int | None = None) -> int:
        """How many questions were answered (in rounds before ``before_round``; the initial set is round −1)."""
        if before_round is None:
            return self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM answers WHERE round < ?", (before_round,)).fetchone()[0]

    def explanation_count(self, before_round: int) -> int:
        """How many answers to questions other than ``label`` (masks, corrections, exemplars, explanations...)
        were given in rounds before ``before_round``: the x-axis of the XIL typology's interaction efficiency."""
        return self.db.execute("SELECT COUNT(*) FROM answers WHERE round < ? AND question != 'label'",
                               (before_round,)).fetchone()[0]

    def label_count(self, source: str) -> int:
        """How many labels of ``source`` (``initial`` | ``oracle``) the training set holds."""
        return self.db.execute("SELECT COUNT(*) FROM labelled WHERE source = ?", (source,)).fetchone()[0]

    def labelled(self) -> list[tuple[int, int, int, str]]:
        """(round, item, label, source) in the order labels were added."""
        return self.db.execute("SELECT round, item, label, source FROM labelled ORDER BY seq").fetchall()

    def extras(self) -> list[Extra]:
        rows = self.db.execute(
            "SELECT origin, label, weight, kind, payload FROM extras ORDER BY round, position"
        ).fetchall()
        return [Extra(_unpack(p), label=lab, weight=w, origin=o, kind=k) for o, lab, w, k, p in rows]

    def annotations(self) -> dict[int, dict[str, torch.Tensor]]:
        rows = self.db.execute("SELECT item, payload FROM annotations ORDER BY round, rowid").fetchall()
        return {int(i): unpack_tensors(p) for i, p in rows}

    def metrics(self) -> list[tuple[int, int, str, float]]:
        return self.db.execute("SELECT round, n_labels, name, value FROM metrics ORDER BY round, name").fetchall()

    def metrics_by_round(self) -> dict[int, dict[str, float]]:
        return _by_round(self.metrics())

    def added_in(self, round: int) -> tuple[int, int]:
        """(oracle labels, extra examples) that incorporating round ``round`` added."""
        labels = self.db.execute("SELECT COUNT(*) FROM labelled WHERE round = ?", (round + 1,)).fetchone()[0]
        extras = self.db.execute("SELECT COUNT(*) FROM extras WHERE round = ?", (round + 1,)).fetchone()[0]
        return labels, extras


#: the newest answer of an ``answers`` row ``a``: its latest revision, else the answer itself
_LATEST = ("COALESCE((SELECT r.answer FROM revisions r WHERE r.round = a.round AND r.question = a.question "
           "AND r.key = a.key ORDER BY r.seq DESC LIMIT 1), a.answer)")


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            reached("commit")
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


def _stored(v: Any, kind: str) -> Any:
    """``v`` as SQLite stores it in a column of ``kind`` (i, r, t, b), so a digest of what was inserted equals
    a digest of what is read back."""
    if v is None:
        return None
    return {"i": int, "r": float, "t": str, "b": bytes}[kind](v)


def _link(prev: str, table: str, row: tuple) -> str:
    """The ledger digest of ``row`` of ``table`` after ``prev``: SHA-256 over the previous digest, the table's
    name and the row's values as canonical JSON (a blob by its own SHA-256)."""
    values = [hashlib.sha256(v).hexdigest() if isinstance(v, bytes) else v for v in row]
    text = json.dumps([prev, table, values], separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def ledger_problem(db: sqlite3.Connection) -> str | None:
    """Why the journal's rows do not match its ledger (a row of a :data:`CHAINED` table changed, deleted or added
    by hand since it was written), or None. Reads every chained row once."""
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key = 'ledger'"))
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "ledger" not in tables:
        return "it has no ledger table (deleted by hand)" if meta else None
    rows: dict[int, tuple[str, tuple, str]] = {}
    for table, cols in CHAINED.items():
        if table not in tables:
            continue  # a table newer than the journal (its ledger entries, if any, are then missing rows)
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if not {"ledger", *(c for c, _ in cols)} <= have:
            if meta:
                return f"its table {table} lacks columns exil writes (rebuilt by hand)"
            continue  # a journal from before the ledger
        names = ", ".join(c for c, _ in cols)
        for *values, seq in db.execute(f"SELECT {names}, ledger FROM {table}"):
            where = _row_name(table, cols, values)
            if seq is None:
                if meta:
                    return f"{where} is not in the ledger: it was added by hand"
                continue  # a row written before this journal had a ledger
            if seq in rows:
                return f"{where} claims ledger entry {seq}, which another row holds: it was added by hand"
            rows[seq] = (table, tuple(values), where)
    digest = LEDGER_ROOT
    for seq, table, recorded in db.execute("SELECT seq, tbl, digest FROM ledger ORDER BY seq"):
        if seq not in rows:
            return f"the row of {table} in ledger entry {seq} is missing: it was deleted by hand"
        tbl, values, where = rows.pop(seq)
        digest = _link(digest, tbl, values)
        if tbl != table or digest != recorded:
            return f"{where} is not what was written (ledger entry {seq}): it was changed by hand"
    if rows:
        return f"{next(iter(rows.values()))[2]} is not in the ledger: it was added by hand"
    return None


def _row_name(table: str, cols: tuple[tuple[str, str], ...], values: list) -> str:
    shown = {c: v for (c, _), v in zip(cols, values) if c in ("round", "item", "question", "key", "position", "seq")}
    return f"the row of {table} (" + ", ".join(f"{k} {v}" for k, v in shown.items()) + ")"


def _float(s: Any) -> float | None:
    s = float(s)
    return None if s != s else s  # NaN → NULL


def _unpack(blob: bytes) -> dict[str, torch.Tensor]:
    if blob[:2] == b"PK":  # journals written before pack_tensors held torch.save archives
        return torch.load(io.BytesIO(blob), weights_only=True)
    return unpack_tensors(blob)


def pack_tensors(fields: dict[str, torch.Tensor]) -> bytes:
    """A compact blob of named tensors: a JSON header, then each tensor's bytes (bool tensors bit-packed,
    so a 28×28 mask takes 98 bytes). The inverse is :func:`unpack_tensors`."""
    header, chunks, offset = {}, [], 0
    for k, v in fields.items():
        a = v.detach().cpu().contiguous().numpy()
        raw = np.packbits(a.ravel()).tobytes() if a.dtype == np.bool_ else a.tobytes()
        header[k] = [a.dtype.str, list(a.shape), offset, len(raw)]
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    return len(head).to_bytes(4, "little") + head + b"".join(chunks)


def unpack_tensors(blob: bytes) -> dict[str, torch.Tensor]:
    n = int.from_bytes(blob[:4], "little")
    header, body = json.loads(blob[4:4 + n]), memoryview(blob)[4 + n:]
    out = {}
    for k, (dtype, shape, offset, size) in header.items():
        raw = np.frombuffer(body[offset:offset + size], dtype=np.uint8)
        if dtype == "|b1":
            a = np.unpackbits(raw)[: int(np.prod(shape))].astype(bool).reshape(shape)
        else:
            a = raw.view(np.dtype(dtype)).reshape(shape).copy()
        out[k] = torch.from_numpy(a)
    return out


def read_journal(path: str | Path) -> dict[str, Any]:
    """A read-only summary of a run's journal (config, metrics per round) without opening a session."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        rows = db.execute("SELECT round, n_labels, name, value FROM metrics ORDER BY round, name").fetchall()
        return {"meta": meta, "metrics": _by_round(rows)}
    finally:
        db.close()


def recorded_hash(path: str | Path, name: str) -> str | None:
    """The SHA-256 a run's journal recorded for checkpoint ``name``, read-only (None: none recorded)."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT sha256 FROM files WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


def _by_round(rows) -> dict[int, dict[str, float]]:
    """Metric rows (round, n_labels, name, value) as {round: {"n_labels": n, name: value, ...}}."""
    out: dict[int, dict[str, float]] = {}
    for r, n, name, v in rows:
        out.setdefault(r, {"n_labels": n})[name] = v
    return out


def never_started(path: Path) -> bool:
    """Whether a journal holds nothing at all: a run killed during its journal's very first writes (an empty file,
    or the schema without the config, which the loop stores before it asks or trains anything). Such a journal
    may be replaced by a fresh run in the same folder; anything else is left to :func:`check_journal`."""
    wal = path.with_name(path.name + "-wal")
    if not path.exists():
        return False
    if path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0):
        return True
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" not in tables:
                return not tables
            if db.execute("SELECT COUNT(*) FROM meta WHERE key = 'config'").fetchone()[0]:
                return False
            return "answers" not in tables or not db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return False
