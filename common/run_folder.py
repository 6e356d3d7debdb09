"""What a run folder holds, how its checkpoints are written and read, and the checks that name its damage.

A run folder is untrusted input: people copy, share and download them. Nothing in one can run code
(checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain types only), and every
file the loop needs is checked before it is used, so damage ends in one message naming the file, what is
wrong and what to do (:class:`RunFolderDamaged`, exit status 2) instead of a traceback or a silently
different run.

What a run folder must hold to be resumed (``exil loop.resume=<run>``):

* ``journal.sqlite`` — the journal. The loop checkpoints SQLite's write-ahead log into it at the end of
  every stage, so this file alone is complete up to the last finished stage; ``journal.sqlite-wal``
  (and ``-shm``) hold what came after it (answers given in the stage in progress). Copy all three to
  keep those answers; without the ``-wal`` file they are asked again.
* ``checkpoints/`` — ``init.pt``, the newest ``round_RRR_end.pt`` and, inside a round, its
  ``round_RRR_fit.pt``: the weights, with the architecture spec as JSON text. The journal's ``files``
  table holds each one's SHA-256, recorded in the same transaction as the stage that wrote it; a
  checkpoint that does not match is refused.
* ``oracle/`` — a teacher's own state: the web page's port and token (``web.json``), the LLM request
  cache (``llm_requests.jsonl``: requests paid for, not asked again).

Everything else (``.hydra/``, ``csv/``, ``tensorboard/``, ``predictions/``, ``results.csv``, ``learning_curve.png``)
is output, rebuilt by a resumed run.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import pickle
import re
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import torch

from exil.common.disk_full import looks_full, stream_failed
from exil.common.errors import ExilError
from exil.common.journal import ledger_problem, never_started  # noqa: F401 - the loop finds it here
from exil.common.kill_points import reached

#: the tables a journal must have (``exil.common.journal.SCHEMA`` creates them)
JOURNAL_TABLES = ("meta", "sessions", "stages", "queries", "answers", "labelled", "extras", "annotations", "metrics")
SQLITE_HEADER = b"SQLite format 3\x00"


class RunFolderDamaged(ExilError):
    """A file of a run folder is missing, damaged or not what the journal recorded; the message names it."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_hash(config: Any) -> str:
    """SHA-256 of a config's canonical JSON (sorted keys): what the journal records beside ``meta.config``."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def save_checkpoint(path: Path, arch: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> str:
    """Write a checkpoint atomically (whole or absent) and return its SHA-256.

    The architecture spec is stored as JSON text, so reading it back needs no unpickling of Python objects;
    a spec that is not JSON (numpy scalars, tuples as keys, objects) is refused here, where it is made."""
    try:
        arch_json = json.dumps(arch, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ExilError(f"the module's architecture_spec() must be plain JSON (dicts, lists, str, int, float, "
                        f"bool): {e}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        torch.save({"format": "exil-checkpoint/1", "arch": arch_json,
                    "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}}, tmp)
    except (RuntimeError, OSError) as e:
        tmp.unlink(missing_ok=True)  # a partial file: give its room back
        if isinstance(e, OSError) or not (stream_failed(e) and looks_full(tmp.parent)):
            raise
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp)) from e  # torch says only "iostream error"
    reached("checkpoint")
    digest = sha256_file(tmp)
    tmp.replace(path)
    return digest


def refuse_links(run_dir: Path) -> None:
    """Refuse a run folder holding a symbolic link that leads out of it, or a hard link (a file with another
    name, which may lie anywhere on the disk): exil writes checkpoints, tables, plots and predictions into its
    run folder, and a link placed there by whoever shared the folder would redirect a write to any file the user
    can change. (Links within the folder stay. ``wandb/`` is W&B's own: it links its
    logs to its cache, and each session writes a new run folder of its own there, so it is not walked. Nothing
    is followed: the walk does not enter linked folders.)"""
    import os

    root = Path(run_dir)
    if root.is_symlink():
        raise RunFolderDamaged(f"{root} is a symbolic link to {os.readlink(root)}; give the run folder itself")
    if not root.is_dir():
        return
    inside = root.resolve()
    for folder, dirs, files in os.walk(root, followlinks=False):
        if Path(folder) == root and "wandb" in dirs and not (root / "wandb").is_symlink():
            dirs.remove("wandb")
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.is_symlink() and not path.resolve().is_relative_to(inside):
                raise RunFolderDamaged(f"{path} is a symbolic link out of the run folder (to {os.readlink(path)}); "
                                       "exil never writes through such links: replace it with the file itself, or "
                                       "remove it")
            links = path.lstat().st_nlink if name in files and not path.is_symlink() else 1
            if links > 1:  # a hard link: a write in place would change the other name's file too
                raise RunFolderDamaged(f"{path} is a hard link: the same file has {links - 1} other name(s), maybe "
                                       "outside the run folder, which a write here would change too; replace it "
                                       f"with a copy of its own (cp --remove-destination <file> {path}) or remove it")


def exils_own(target: str) -> bool:
    """Whether ``target`` names a class or function that exil defines, by a path through exil's modules only.
    Hydra locates a dotted path attribute by attribute, so ``exil.common.kill_points.os.system`` (a module that
    imports ``os``) or ``exil.common.run_folder.torch.load`` would reach other libraries' functions through an
    ``exil.`` prefix: the path may pass through no module but exil's, and what it names must be defined in exil."""
    import importlib
    import inspect

    parts = str(target).split(".")
    if parts[0] != "exil" or not all(p.isidentifier() for p in parts):
        return False
    for i in range(len(parts), 0, -1):  # the longest prefix that is a module of exil's
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        break
    else:
        return False
    if i == len(parts):
        return False  # a module is not something to build
    for name in parts[i:]:  # (a module's own __getattr__ is exil's code; a class's attributes are read statically)
        obj = getattr(obj, name, None) if inspect.ismodule(obj) else inspect.getattr_static(obj, name, None)
        if obj is None or inspect.ismodule(obj):
            return False
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    return (inspect.isclass(obj) or inspect.isfunction(obj)) and str(getattr(obj, "__module__", "")).startswith("exil.")


def stored_config_problem(config: Any, allowed_targets: set[str], path: str = "") -> str | None:
    """Why a config read from a run folder cannot be used, or None. A run's journal stores its config resolved,
    so it holds no ``${...}`` interpolation (resolving one would read the environment or files: ``${oc.env:..}``),
    and every ``_target_`` in it is exil's own (:func:`exils_own`, whose code never unpickles) or one the
    installed configs (or the user's ``--config-dir`` folders) name: a folder edited to build ``torch.load`` or
    ``numpy.load`` on a file in it, directly or through an exil module's import of it, is refused unread."""
    if isinstance(config, dict):
        for k, v in config.items():
            where = f"{path}.{k}" if path else str(k)
            if k == "_target_" and str(v) not in allowed_targets and not exils_own(str(v)):
                return (f"{where}={v} is not a target any installed config (or --config-dir folder) names; a run "
                        "folder's config only rebuilds what exil's configs build. If the target is your own, resume "
                        "with --config-dir <the folder of its config>")
            why = stored_config_problem(v, allowed_targets, where)
            if why:
                return why
    elif isinstance(config, list):
        for i, v in enumerate(config):
            why = stored_config_problem(v, allowed_targets, f"{path}[{i}]")
            if why:
                return why
    elif isinstance(config, str) and "${" in config:
        return (f"{path} holds an interpolation ({config[:80]}): a run's stored config is resolved when it is "
                "written, so the folder was edited; exil never resolves what a run folder says")
    return None


#: config keys whose values reach outside a run folder: where an LLM teacher's requests go and which environment
#: variable's secret they carry, where a file is appended to, which server a logger sends to (W&B's project and
#: entity stay in the account of the person resuming: not among them)
REACHES_OUT = ("base_url", "base_url_env", "api_key_env", "call_log", "host", "tracking_uri")


def reaching_out(stored: Any, installed: Any, run_dir: Path, restated: set[str], path: str = "",
                 choices: dict | None = None) -> str | None:
    """Why a value of a run folder's stored config that reaches outside it (:data:`REACHES_OUT`) is not used
    without the person resuming saying so, or None. Such a value is used when it is what the installed configs
    give for the run's choices (``installed``: the same path there, resolved — the default endpoint, the
    environment variable named there), when the resume command restates it (``restated``: its keys), or, for a
    file written (``call_log``), when it lies inside the run folder. Otherwise a folder from someone else could
    send the LLM teacher's requests — with the key from any environment variable — to a host of their choice,
    or append to a file anywhere."""
    from exil.common.config_secrets import redact_url

    if choices is None:
        choices = (stored.get("choices") or {}) if isinstance(stored, dict) else {}
    if isinstance(stored, dict):
        for k, v in stored.items():
            where = f"{path}.{k}" if path else str(k)
            sub = installed.get(k) if isinstance(installed, dict) else None
            if k in REACHES_OUT and not isinstance(v, (dict, list)) and v is not None and where not in restated:
                if k == "call_log" and Path(str(v)).resolve().is_relative_to(Path(run_dir).resolve()):
                    continue
                if sub is None or str(v) not in (str(sub), redact_url(str(sub))):
                    group = where.split(".")[0]  # the command line reaches the key through the run's own choice
                    say = f"{group}={choices[group]} " if choices.get(group) and "." in where else ""
                    return (f"{where}={redact_url(str(v))} reaches outside the run folder and is not what the installed "
                            f"configs give ({redact_url(str(sub)) if sub is not None else 'nothing'}); a run folder "
                            "does not choose where requests, secrets or files go. If you trust it, resume with "
                            f"{say}{where}=<the value> on the command line")
            why = reaching_out(v, sub, run_dir, restated, where, choices)
            if why:
                return why
    elif isinstance(stored, list):
        for i, v in enumerate(stored):
            sub = installed[i] if isinstance(installed, list) and i < len(installed) else None
            why = reaching_out(v, sub, run_dir, restated, f"{path}[{i}]", choices)
            if why:
                return why
    return None


def refuse_if_live(run_dir: Path) -> None:
    """Refuse, before anything writes into it, a run folder another exil process is working on (its journal's
    lock is held): a second ``loop.resume`` of a live run must not touch its logs either."""
    lock = Path(run_dir) / "journal.lock"
    if not lock.is_file() or lock.is_symlink():
        return
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExilError(f"another exil process is working on {run_dir}; wait for it or stop it") from None
        fcntl.flock(f, fcntl.LOCK_UN)


def load_module_state(module, ckpt: dict[str, Any]) -> None:
    """Morph ``module`` to the checkpoint's architecture spec (if it differs), then load its weights."""
    if ckpt.get("arch", {}) != module.architecture_spec():
        module.apply_architecture_spec(ckpt["arch"])
    module.load_state_dict(ckpt["state_dict"])


def load_checkpoint(path: Path, sha256: str | None = None, context: str = "") -> dict[str, Any]:
    """``{"arch": dict, "state_dict": {...}}`` from a checkpoint, checked against the SHA-256 the journal
    recorded (``None``: a journal from before hashes were kept). Never unpickles anything but tensors and
    plain containers; every failure is a :class:`RunFolderDamaged` naming the file."""
    what = f"{path}{f' ({context})' if context else ''}"
    if not path.exists():
        raise RunFolderDamaged(f"{what} is missing; the run cannot go on without it. Restore the file from a "
                               "copy of the run folder, or start the run again in a new folder")
    if sha256 is not None and sha256_file(path) != sha256:
        raise RunFolderDamaged(f"{what} does not match the SHA-256 the journal recorded when it was written "
                               "(it was replaced, edited or damaged); restore the original file, or start the run "
                               "again in a new folder")
    unreadable = (f"{what} is not a readable checkpoint (truncated or overwritten); restore it from a copy of the "
                  "run folder")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise RunFolderDamaged(unreadable)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        raise RunFolderDamaged(f"{what} holds Python objects, not only tensors, and was refused unread "
                               f"({found.group(1) if found else 'not a tensor'}; exil never runs code from a "
                               "run folder)") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise RunFolderDamaged(f"{what} is not a readable checkpoint (truncated or overwritten: "
                               f"{str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__}); "
                               "restore it from a copy of the run folder") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise RunFolderDamaged(f"{what} is not an exil checkpoint (no state_dict)")
    arch = ckpt.get("arch") or {}
    if isinstance(arch, str):
        try:
            arch = json.loads(arch)
        except ValueError:
            raise RunFolderDamaged(f"{what}: its architecture spec is not JSON") from None
    return {"arch": arch, "state_dict": ckpt["state_dict"]}


def wal_cut(wal: Path) -> str | None:
    """How a journal's write-ahead log was cut short, or None (no WAL, or one that ends where a record ends).

    SQLite reads a WAL up to its last commit whose frames are whole and whose checksums hold, and silently drops
    the rest: a ``-wal`` file cut in half (a copy stopped early, a full disk) loses every answer after the cut
    without a word. Checked here (the format of https://sqlite.org/fileformat.html#walformat: a 32-byte header,
    then frames of a 24-byte header and one page; each frame's salts equal the header's, and the checksum runs
    on from frame to frame): a WAL that ends inside a frame, or whose frame of the current salts fails its
    checksum, was cut. Frames of an older salt after the valid ones are a reused log's leftovers, not a cut. Must
    be called before SQLite opens the journal (which folds the WAL into it)."""
    if not wal.is_file() or wal.is_symlink():
        return None
    data = wal.read_bytes()
    if not data:
        return None
    if len(data) < 32:
        return f"{wal.name} ends inside its header ({len(data)} bytes)"
    magic, _version, page, _seq, salt1, salt2 = (int.from_bytes(data[i:i + 4], "big") for i in range(0, 24, 4))
    if magic not in (0x377F0682, 0x377F0683):
        return f"{wal.name} is not a write-ahead log"
    order = "big" if magic & 1 else "little"
    s = _wal_checksum(data[:24], order, (0, 0))
    if s != (int.from_bytes(data[24:28], "big"), int.from_bytes(data[28:32], "big")):
        return f"{wal.name}'s header fails its checksum"
    frame, offset = 24 + page, 32
    while offset + frame <= len(data):
        head = data[offset:offset + 24]
        if (int.from_bytes(head[8:12], "big"), int.from_bytes(head[12:16], "big")) != (salt1, salt2):
            return None  # a reused log's older frames: SQLite stops here by design
        s = _wal_checksum(head[:8] + data[offset + 24:offset + frame], order, s)
        if s != (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")):
            return f"{wal.name} is damaged at byte {offset} (a record fails its checksum)"
        offset += frame
    if offset < len(data):
        return f"{wal.name} ends inside a record (byte {len(data)} of a record ending at {offset + frame})"
    return None


def _wal_checksum(data: bytes, order: str, start: tuple[int, int]) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes) continuing from ``start``: over 32-bit words
    x in pairs, ``s0 += x[i] + s1; s1 += x[i+1] + s0`` (mod 2^32)."""
    import numpy as np

    words = np.frombuffer(data, dtype=">u4" if order == "big" else "<u4").astype(np.uint64)
    s0, s1 = start
    mask = 0xFFFFFFFF
    for a, b in zip(words[0::2].tolist(), words[1::2].tolist()):
        s0 = (s0 + a + s1) & mask
        s1 = (s1 + b + s0) & mask
    return s0, s1


def check_journal(path: Path) -> str | None:
    """Refuse, with one message, a journal that SQLite cannot read, that is damaged, or that holds no run.

    Checked: the file exists and is an SQLite database; ``PRAGMA integrity_check`` passes; every table of
    the schema is there; the stored config matches the hash recorded with it (an edited ``meta.config``
    would resume silently with different settings); every answer, label, query and added example is what was
    written (the journal's ledger, :func:`exil.common.journal.ledger_problem`).

    Returns a note for the person resuming, or None: a write-ahead log that was cut (:func:`wal_cut`) loses what
    came after the cut, which is asked again — the note says from when."""
    folder = path.parent
    if not path.exists():
        if (folder / ".hydra").is_dir() or (folder / "checkpoints").is_dir():
            raise RunFolderDamaged(
                f"{folder} has no journal.sqlite: the run was stopped before its journal was made, so nothing "
                f"was asked or trained that could be resumed. Start it again with the same overrides "
                f"(see {folder / '.hydra' / 'overrides.yaml'}), without loop.resume")
        raise RunFolderDamaged(f"{folder} holds no journal.sqlite: give loop.resume the folder of a run "
                               "(the one with journal.sqlite in it)")
    wal = path.with_name(path.name + "-wal")
    had_wal = wal.exists()  # before SQLite opens the file (which makes an empty one)
    cut = wal_cut(wal)  # before SQLite opens the file (which folds what it can read of the WAL into it)
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_HEADER))
    if not head and not had_wal:
        raise RunFolderDamaged(f"{path} is empty: the run's data never reached it (was it copied without its "
                               f"{wal.name} file?); copy the journal together with its -wal file")
    if head and head != SQLITE_HEADER:
        raise RunFolderDamaged(f"{path} is not an SQLite database (overwritten or not a journal); restore it from "
                               "a copy of the run folder")
    try:
        db = sqlite3.connect(path, timeout=30)
        try:
            status = db.execute("PRAGMA integrity_check").fetchone()[0]
            if status != "ok":
                raise RunFolderDamaged(f"{path} is damaged (SQLite integrity check: {status[:160]}); restore it "
                                       "from a copy of the run folder")
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = [t for t in JOURNAL_TABLES if t not in tables]
            if missing and not had_wal:
                raise RunFolderDamaged(f"{path} holds no run (tables {', '.join(missing)} are missing). Its data is "
                                       f"in {wal.name}, which is not here: copy journal.sqlite together with its -wal "
                                       f"file. (A run stopped in its first second has no data: {_start_again(folder)})")
            if missing:
                raise RunFolderDamaged(f"{path} holds no run yet: it was stopped before it started. {_start_again(folder)}")
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('config', 'config_sha256')"))
            edited = ledger_problem(db)
            last = db.execute("SELECT MAX(t) FROM answers").fetchone()[0] if cut else None
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise RunFolderDamaged(f"{path} is damaged ({e}); restore it from a copy of the run folder") from None
    if "config" not in meta:
        hint = f" (or its data is in a missing {wal.name})" if not had_wal else ""
        raise RunFolderDamaged(f"{path} holds no config: the run was stopped before it started{hint}. "
                               f"{_start_again(folder)}")
    if edited:
        raise RunFolderDamaged(f"{path}: {edited}. A run resumes only from the answers and labels it was given: "
                               "restore the journal from a copy of the run folder, or start a new run")
    recorded = meta.get("config_sha256")
    if recorded is not None and config_hash(json.loads(meta["config"])) != json.loads(recorded):
        raise RunFolderDamaged(f"{path}: the stored config (meta.config) does not match the hash recorded when the "
                               "run started; it was edited. Restore the journal, or start a new run with the "
                               "settings you want")
    if cut:
        import time

        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last)) if last else "the run started"
        return (f"{cut}: SQLite keeps what was committed before the cut, so the answers given after {when} (the "
                "last one saved) were not saved and will be asked again")
    return None


def _start_again(folder: Path) -> str:
    return (f"Nothing was asked or trained that could be resumed: start it again with the same overrides "
            f"(see {folder / '.hydra' / 'overrides.yaml'}), without loop.resume (in this folder or another)")
