"""The IDX file format of MNIST and Fashion-MNIST, read into numpy (gzip or plain).

An IDX file is a big-endian header followed by the raw array, row-major
(http://yann.lecun.com/exdb/mnist/, "FILE FORMATS FOR THE MNIST DATABASE"):

    bytes 0-1   0x0000
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4 * d       the size of each dimension, uint32 big-endian
    ...         the data, big-endian

A gzip-compressed file is recognised by its own magic bytes (``1f 8b``), whatever its name.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from exil.common.errors import DataMissing, ExilError

DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# the four files of the standard MNIST / Fashion-MNIST layout, by (split, kind)
STANDARD_FILES: dict[tuple[str, str], str] = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


class IdxError(ExilError, ValueError):
    """A file that is not a valid IDX file (bad magic number, truncated, unexpected shape)."""


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzip or plain), in native byte order.

    Args:
        path: the file.
        ndim: if given, the number of dimensions the file must have (3 for images, 1 for labels).

    Raises:
        IdxError: if the magic number is wrong, the dimensions differ from ``ndim``, or the
            data is shorter or longer than the header says.
    """
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        try:
            raw = f.read()
        except (OSError, EOFError) as e:
            raise IdxError(f"{path}: corrupt gzip data ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in DTYPES:
        raise IdxError(
            f"{path} is not an IDX file: magic number {raw[:4].hex() or '(empty)'}, expected 0000TTDD "
            f"with type TT in {{{', '.join(f'{t:02x}' for t in DTYPES)}}} and DD dimensions"
        )
    dtype, d = DTYPES[raw[2]], raw[3]
    if ndim is not None and d != ndim:
        raise IdxError(f"{path} has {d} dimensions, expected {ndim}")
    header = 4 + 4 * d
    if len(raw) < header:
        raise IdxError(f"{path} is truncated inside its header")
    dims = struct.unpack(f">{d}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IdxError(
            f"{path}: header says {dims} {dtype} ({expected} bytes) but {len(raw) - header} bytes follow"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_idx(root: str | Path, name: str) -> Path | None:
    """The file ``name`` in ``root``, gzipped or not; also accepts ``.idx`` for ``-idx`` (``train-images.idx3-ubyte``)."""
    root = Path(root)
    for stem in (name, name.replace("-idx", ".idx")):
        for candidate in (root / stem, root / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx_dataset(root: str | Path, what: str = "MNIST-style") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": (images, labels)}`` from the four standard files in ``root``.

    Images are (N, H, W) uint8, labels (N,) int64; the counts of images and labels must agree.

    Raises:
        DataMissing: if any of the four files is missing (the message lists them).
        IdxError: if a file is malformed.
    """
    root = Path(root)
    paths = {key: find_idx(root, name) for key, name in STANDARD_FILES.items()}
    missing = [STANDARD_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise DataMissing(
            f"{what} IDX files missing in {root}: {', '.join(f'{m}[.gz]' for m in missing)}.\n"
            f"The folder must hold the four standard files: {', '.join(STANDARD_FILES.values())} (gzipped or not)."
        )
    out = {}
    for split in ("train", "test"):
        images = read_idx(paths[split, "images"], ndim=3)
        labels = read_idx(paths[split, "labels"], ndim=1).astype(np.int64)
        if len(images) != len(labels):
            raise IdxError(f"{root}: {split} has {len(images)} images but {len(labels)} labels")
        out[split] = (images, labels)
    return out
