"""Credentials in URLs are never written where a config is: :func:`redact_config` gives the copy of a config that
the journal, the loggers (``csv/hparams.yaml``, TensorBoard's HParams, W&B) and the printed config get, and
:class:`RedactSavedConfig` (a Hydra callback, ``hydra.callbacks.redact`` in ``conf/config.yaml``) rewrites what
Hydra saved in the run's ``.hydra/`` (and a sweep's ``multirun.yaml``) before the run begins.

In any string value that holds a URL (``://``), a password (``https://user:PASSWORD@host``) and the value of a
``?api_key=``/``key=``/``token=``/``access_token=`` query are replaced by ``[redacted]``. The patterns are the
ones the LLM client's error messages and logs go through (:func:`exil.common.oracle.llm.redact` uses
:data:`URL_SECRET_PATTERNS`).

A redacted config is not a working one: a resumed run is rebuilt from the journal's (redacted) config, so a
credential must come from elsewhere then — the LLM client takes its ``base_url`` whole from the environment
variable ``oracle.client.base_url_env`` (``OPENAI_BASE_URL``) when the stored one is redacted and the variable
holds the same URL (:class:`exil.common.oracle.llm.ChatClient`). What is logged goes through the same patterns
(:func:`redact_logs`: a sweep's launcher echoes every job's overrides).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

REDACTED = "[redacted]"

#: credentials in a URL: a key, token or access token in its query, a password before its host
URL_SECRET_PATTERNS = (
    (re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token)=)[^&#\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), r"\1" + REDACTED + "@"),  # a password in a URL
)


def redact_url(text: str) -> str:
    """``text`` with the credentials of the URLs in it (:data:`URL_SECRET_PATTERNS`) replaced by ``[redacted]``."""
    for pattern, repl in URL_SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_logs() -> None:
    """Every log record of this process gets :func:`redact_url` applied to its message: Hydra's launchers and
    sweepers echo each job's overrides (``#0 : oracle.client.base_url=http://user:pw@…``) to the console, a
    SLURM log or a captured ``output.log``, through handlers that Hydra configures itself. Installed once, as the
    record factory (what every logger calls for a record it will emit)."""
    import logging

    made = logging.getLogRecordFactory()
    if getattr(made, "exil_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not format: logging reports it itself
            return record
        clean = redact_url(text)
        if clean != text:
            record.msg, record.args = clean, None
        return record

    factory.exil_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def redact_config(obj: Any) -> Any:
    """A copy of a plain config (dicts, lists, tuples, strings, numbers) in which every string value that holds a
    URL has its credentials replaced by ``[redacted]`` (keys and other values are kept as they are)."""
    if isinstance(obj, dict):
        return {k: redact_config(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_config(v) for v in obj)
    if isinstance(obj, str) and "://" in obj:
        return redact_url(obj)
    return obj


def redact_yaml_file(path: str | Path) -> bool:
    """Rewrite a saved config (YAML, e.g. Hydra's ``.hydra/config.yaml``) with its credentials redacted, in place
    and atomically, if it holds any; interpolations are kept unresolved. Returns whether it was rewritten."""
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file() or path.is_symlink():
        return False
    plain = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    clean = redact_config(plain)
    if clean == plain:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        OmegaConf.save(OmegaConf.create(clean), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - Hydra is a dependency; the functions above do not need it
    Callback = object  # type: ignore[assignment,misc]


class RedactSavedConfig(Callback):
    """Hydra saves a job's ``config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` (a command line's
    ``oracle.client.base_url=https://user:pw@...`` among them) just before it calls ``on_job_start``; this
    rewrites them, and a sweep's ``multirun.yaml``, with the credentials in URLs redacted."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        hydra = config.hydra
        files = []
        subdir = OmegaConf.select(hydra, "output_subdir")
        if subdir is not None:
            saved = Path(str(hydra.runtime.output_dir)) / str(subdir)
            files += [saved / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
        if str(OmegaConf.select(hydra, "mode", default="")).endswith("MULTIRUN"):
            files.append(Path(str(hydra.sweep.dir)) / "multirun.yaml")
        for f in files:
            redact_yaml_file(f)
