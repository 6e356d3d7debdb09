"""Text datasets from Hugging Face ``datasets`` (``pip install 'exil[hf]'``): any dataset on the Hub (with a
network), or one saved on disk (``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``), as an exil text pool.

``dataset=hf_text dataset.path=imdb`` (or ``dataset.path=/data/my_dataset``) reads the ``train_split`` as the
pool and the ``test_split`` as the test set (``test_split: null``: a stratified split of the pool), the
columns ``text_fields`` and ``label_field``; a ``ClassLabel`` label column gives the class names. A folder
holding one ``Dataset`` (no splits), or a ``.csv`` / ``.tsv`` / ``.jsonl`` file (read without ``datasets``),
is the pool, ``test_size`` of it (stratified) the test set. Everything else — tokenising, pairs, test subsets,
the oracle's view of the text — is :class:`~exil.common.data.text.TextDataModule`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exil.common.data.text import FORMATS, TextDataModule
from exil.common.errors import ConfigError, DataMissing


class HFTextDataModule(TextDataModule):
    """A Hugging Face text dataset (module docstring).

    Args:
        path: a Hub name (``imdb``, ``glue``), a folder written by ``save_to_disk``, or a CSV / TSV / JSONL file.
        name: the dataset's configuration (``glue``: ``rte``), if it has several.
        train_split, test_split: the splits that become the pool and the test set.
        revision: a Hub revision (a commit, for reproducible runs).
        **kwargs: :class:`TextDataModule` arguments (``text_fields``, ``label_field``, ``tokenizer``, ...).
    """

    def __init__(self, path: str = "???", name: str | None = None, train_split: str = "train",
                 test_split: str | None = "test", revision: str | None = None, **kwargs: Any):
        local = Path(str(path)).expanduser()
        file = local.suffix.lower() in {f".{f}" for f in FORMATS} | {".json"} and not local.is_dir()
        if file:  # one file of rows: TextDataModule reads it; test_size of it is the test set
            super().__init__(train_file=str(local.absolute()), test_file=None, **kwargs)
        else:
            super().__init__(train_file=train_split, test_file=test_split, **kwargs)
        self.hf_path, self.hf_name, self.revision, self.is_file = path, name, revision, file
        self._splits = None

    def load(self):
        if not self.is_file and not hasattr(self._dataset(), "keys"):
            self.test_file = None  # one Dataset saved, no splits: split the test set off it, never test on the pool
        return super().load()

    def _dataset(self):
        if self._splits is None:
            try:
                import datasets
            except ImportError:
                raise ConfigError("dataset=hf_text needs Hugging Face datasets: pip install 'exil[hf]'") from None
            local = Path(self.hf_path).expanduser()
            try:
                if local.is_dir():
                    self._splits = datasets.load_from_disk(str(local))
                else:
                    self._splits = datasets.load_dataset(self.hf_path, self.hf_name, revision=self.revision)
            except (FileNotFoundError, ConnectionError, OSError, ValueError) as e:
                raise DataMissing(f"dataset.path={self.hf_path}: {str(e).splitlines()[0][:200]}. A Hub dataset needs a "
                                  "network (or HF_HUB_OFFLINE=0 and a filled cache); a local one is the folder "
                                  "save_to_disk wrote") from None
        return self._splits

    def _read(self, split: str) -> list[dict[str, Any]]:
        if self.is_file:
            if not Path(split).is_file():
                raise DataMissing(f"dataset.path={self.hf_path}: no such file ({split})")
            return super()._read(split)
        ds = self._dataset()
        if hasattr(ds, "keys"):
            if split not in ds:
                hint = ("; dataset.test_split=null splits a test set off the pool"
                        if split == self.test_file and split != self.train_file else "")
                raise ConfigError(f"dataset.path={self.hf_path} has no split {split!r}; its splits: {', '.join(ds)}"
                                  f"{hint}")
            ds = ds[split]
        feature = ds.features.get(self.label_field)
        rows = ds.to_list()
        names = getattr(feature, "names", None)
        if names and self.label_names_cfg is None:
            self.label_names_cfg = list(names)  # ClassLabel: the dataset's own class order and names
        if names:
            for r in rows:
                r[self.label_field] = names[int(r[self.label_field])]
        for i, r in enumerate(rows):
            r["_row"] = i
        need = [*self.text_fields, self.label_field, *([self.id_field] if self.id_field else [])]
        missing = [c for c in need if rows and c not in rows[0]]
        if missing:
            raise ConfigError(f"split {split!r} of {self.hf_path} has no column {missing}; its columns: "
                              f"{', '.join(rows[0])}")
        return rows
