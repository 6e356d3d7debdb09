"""Text classification data: single texts or text pairs from CSV / TSV / JSONL files, tokenised once.

A :class:`TextDataModule` reads a training file (and a test file, else it splits one off, stratified,
with ``split_seed``), takes the text from one column (single texts) or two (pairs: premise /
hypothesis, sentence 1 / sentence 2) and the class from ``label_field``, and tokenises every text
once per run with the backbone's tokenizer (padded to ``max_length``; a batch is trimmed to its longest
item when it is served). Items are

* ``x`` = ``input_ids`` (L,), ``attention_mask`` (L,), ``token_type_ids`` (L,) for BERT-like tokenizers;
* ``y`` the class index (classes in ``label_names`` order, else sorted label values);
* ``row`` the item's row in its file, through which oracles read the raw text (:meth:`TextDataModule.text_of`)
  and its id (:meth:`TextDataModule.item_id`, the ``id_field`` column or the row number).

Layouts (``format: auto`` picks by file suffix; TSV is read without quote handling, as GLUE's files need):

* GLUE RTE ``train.tsv`` / ``dev.tsv``: ``index  sentence1  sentence2  label`` (entailment / not_entailment):
  ``text_fields: [sentence1, sentence2]``;
* GLUE MRPC ``train.tsv`` / ``dev.tsv``: ``Quality  #1 ID  #2 ID  #1 String  #2 String`` (1 = paraphrase):
  ``text_fields: ["#1 String", "#2 String"]``, ``label_field: Quality``;
* JSONL: one object per line, e.g. ``exil data fetch rotten_tomatoes``'s ``{"id", "text", "label", "movie"}``.

Tokenizers: ``offline:<source>`` (a Hugging Face folder fetched with ``exil data fetch``; MiniLM's holds its
tokenizer), ``file:<folder>`` (relative to ``data_dir``), ``words:<N>`` (built from the pool's own texts, nothing
to fetch: :func:`word_tokenizer`; for a model trained from scratch, ``experiment=own_text``), or a Hugging Face
model name (downloaded by the library, for users with a network).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from exil.common.data.base import PoolDataModule, stratified_subset
from exil.common.data.items import TensorItems
from exil.common.errors import ConfigError, DataMissing

FORMATS = ("auto", "csv", "tsv", "jsonl")
TOKEN_FIELDS = ("attention_mask", "token_type_ids")
_TOKENIZED: dict[tuple, dict[str, torch.Tensor]] = {}  # tokenisation memo: runs in one process share it


class TextItems(TensorItems):
    """Tokenised texts; a batch (``__getitems__``) is trimmed to the longest item's length."""

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        batch = super().__getitems__(indices)
        width = int(batch["attention_mask"].sum(1).max()) if len(indices) else 0
        for k in ("x", *TOKEN_FIELDS):
            if k in batch:
                batch[k] = batch[k][:, : max(width, 1)]
        return batch


#: the special tokens of a :func:`word_tokenizer`, at ids 0–4 (BERT's names)
WORD_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def word_tokenizer(texts: Iterable[str], size: int):
    """A word-level Hugging Face tokenizer over ``texts``, built here (nothing fetched): the ``size`` − 5 most
    frequent words of the texts get ids 5, 6, … (ties in alphabetical order, so the same texts always give the
    same ids: a resumed run tokenises as the first session did), any other word is ``[UNK]``; text is
    normalised and split as BERT does (lower case, accents stripped, punctuation apart); ``[PAD]`` = 0,
    ``[CLS]`` text ``[SEP]`` (pairs: ``[CLS]`` a ``[SEP]`` b ``[SEP]``, with token types 0 / 1)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if size <= len(WORD_SPECIAL):
        raise ConfigError(f"words:{size}: a word tokenizer needs more than {len(WORD_SPECIAL)} tokens (its specials)")
    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    words = sorted(counts, key=lambda w: (-counts[w], w))[: size - len(WORD_SPECIAL)]
    vocab = {w: i for i, w in enumerate([*WORD_SPECIAL, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, splitter
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def load_tokenizer(tokenizer: str, data_dir: str | Path = "data", texts: Sequence[str] | None = None):
    """A Hugging Face tokenizer from ``offline:<source>``, ``file:<folder>``, ``words:<N>`` (built from ``texts``)
    or a model name (module docstring)."""
    from transformers import AutoTokenizer

    kind, _, arg = str(tokenizer).partition(":")
    if kind == "words":
        if not arg.isdigit():
            raise ConfigError(f"dataset.tokenizer={tokenizer}: words:<N> takes the vocabulary size, e.g. words:8000 "
                              "(the backbone's config.vocab_size)")
        if texts is None:
            raise ConfigError(f"dataset.tokenizer={tokenizer} is built from a text dataset's pool")
        return word_tokenizer(texts, int(arg))
    if kind == "offline" and arg:
        from exil.common.acquire import require
        from exil.common.backbones.weights import OFFLINE

        if arg not in OFFLINE:
            raise ConfigError(f"unknown offline tokenizer source {arg!r}; valid: {', '.join(sorted(OFFLINE))}")
        folder = require(arg, data_dir) / OFFLINE[arg].path
    elif kind == "file" and arg:
        folder = Path(arg).expanduser()
        folder = folder if folder.is_absolute() else Path(data_dir) / folder
        if not folder.is_dir():
            raise ConfigError(f"tokenizer folder {folder} does not exist")
    else:
        folder = tokenizer
    return AutoTokenizer.from_pretrained(str(folder))


def read_rows(path: Path, fmt: str = "auto") -> list[dict[str, Any]]:
    """The rows of a CSV / TSV (with a header line) or JSONL file as dicts."""
    if fmt not in FORMATS:
        raise ConfigError(f"dataset.format={fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix.lower())
        if fmt is None:
            raise ConfigError(f"cannot tell the format of {path} from its suffix; set dataset.format (csv | tsv | jsonl)")
    with open(path, newline="", encoding="utf-8") as f:
        if fmt == "jsonl":
            return [json.loads(line) for line in f if line.strip()]
        if fmt == "tsv":
            return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        return list(csv.DictReader(f))


class TextDataModule(PoolDataModule):
    """Texts or text pairs with labels, tokenised once (module docstring).

    Args:
        data_dir: the folder the file paths are relative to.
        train_file: the pool (and the test set, if ``test_file`` is not given).
        test_file: the test set (GLUE: ``dev.tsv``, whose labels are public).
        text_fields: one column (single texts) or two (pairs).
        label_field: the class column.
        label_names: the classes in index order (their values in ``label_field``); ``None``: sorted values.
        label_map: raw ``label_field`` value → class name, applied first (e.g. SpamAssassin's mail groups
            ``easy-ham-1``, ``spam-2``, … → ``ham`` / ``spam``); values it does not name are kept.
        id_field: an id column (``None``: the row number); ids key the explanation bank.
        tokenizer: ``offline:<source>`` | ``file:<folder>`` | ``words:<N>`` | a Hugging Face name.
        max_length: tokens per text (pairs: both together), longer ones truncated.
        format: ``auto`` | ``csv`` | ``tsv`` | ``jsonl``.
        source: the ``exil data fetch`` source the files come from (a missing file then names the command).
        test_size: fraction split off as the test set when there is no test file.
        test_items: keep a stratified subset of this many test items (``None``: all), for quick evaluation.
        split_seed: seed of that split and subset.
        **kwargs: :class:`PoolDataModule` arguments.
    """

    def __init__(self, data_dir: str = "data", train_file: str = "???", test_file: str | None = None,
                 text_fields: Sequence[str] = ("text",), label_field: str = "label",
                 label_names: Sequence[str] | None = None, label_map: Mapping[str, str] | None = None,
                 id_field: str | None = None, tokenizer: str = "offline:minilm_l6", max_length: int = 64, format: str = "auto",
                 source: str | None = None, test_size: float = 0.3, test_items: int | None = None,
                 split_seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        if len(text_fields) not in (1, 2):
            raise ConfigError(f"dataset.text_fields must name one column (texts) or two (pairs), got {list(text_fields)}")
        if max_length < 2:
            raise ConfigError(f"dataset.max_length must be at least 2, got {max_length}")
        self.data_dir, self.train_file, self.test_file = Path(data_dir), train_file, test_file
        self.text_fields, self.label_field = tuple(text_fields), label_field
        self.label_names_cfg = list(label_names) if label_names is not None else None
        self.label_map = {str(k): str(v) for k, v in (label_map or {}).items()}
        self.id_field, self.tokenizer_spec, self.max_length = id_field, tokenizer, max_length
        self.format, self.source = format, source
        self.test_size, self.test_items, self.split_seed = test_size, test_items, split_seed
        self.tokenizer = None
        self._names: list[str] = []
        self._rows: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ loading
    @property
    def class_names(self) -> list[str]:
        self.setup()
        return list(self._names)

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2

    def _path(self, name: str) -> Path:
        if self.source is not None:
            from exil.common.acquire import require

            root = require(self.source, self.data_dir)
            return root / name
        path = Path(name).expanduser()
        path = path if path.is_absolute() else self.data_dir / path
        if not path.is_file():
            raise DataMissing(f"{path} does not exist. Put the file there, or point dataset.data_dir / "
                              f"dataset.train_file / dataset.test_file at it (GLUE tasks: the train.tsv and "
                              f"dev.tsv of the task's folder from the GLUE benchmark download).")
        return path

    def _read(self, name: str) -> list[dict[str, Any]]:
        rows = read_rows(self._path(name), self.format)
        for i, r in enumerate(rows):
            r["_row"] = i  # the row in its file: the id when there is no id column
        need = [*self.text_fields, self.label_field, *([self.id_field] if self.id_field else [])]
        if rows:
            missing = [c for c in need if c not in rows[0]]
            if missing:
                raise ConfigError(f"{name} has no column {missing}; its columns: {', '.join(rows[0])}")
        if self.label_map:
            for r in rows:
                r[self.label_field] = self.label_map.get(str(r[self.label_field]), r[self.label_field])
        return rows

    def load(self) -> tuple[TextItems, None, TextItems]:
        train = self._read(self.train_file)
        labels = [str(r[self.label_field]) for r in train]
        self._names = self.label_names_cfg or sorted(set(labels))
        if self.test_file is not None:
            test = self._read(self.test_file)
        else:
            from sklearn.model_selection import train_test_split

            tr, te = train_test_split(np.arange(len(train)), test_size=self.test_size, stratify=labels,
                                      random_state=self.split_seed)
            train, test = [train[i] for i in np.sort(tr)], [train[i] for i in np.sort(te)]
        self.tokenizer = load_tokenizer(self.tokenizer_spec, self.data_dir,
                                        texts=[str(r[f]) for r in train for f in self.text_fields])
        pool_items, test_items = self._items(train, self.train_file), self._items(test, self.test_file or "split")
        if self.test_items is not None and self.test_items < len(test):
            keep = stratified_subset(test_items.targets.numpy(), self.test_items, np.random.default_rng(self.split_seed))
            test_items = TextItems(**{k: v[torch.from_numpy(keep)] for k, v in test_items.fields.items()})
        self._rows = {"pool": train, "test": test}
        return pool_items, None, test_items

    def _items(self, rows: list[dict[str, Any]], name: str) -> TextItems:
        index = {n: c for c, n in enumerate(self._names)}
        unknown = sorted({str(r[self.label_field]) for r in rows} - set(index))
        if unknown:
            raise ConfigError(f"{name}: labels {unknown[:5]} are not in dataset.label_names {self._names}")
        y = torch.tensor([index[str(r[self.label_field])] for r in rows], dtype=torch.long)
        texts = [[str(r[f]) for r in rows] for f in self.text_fields]
        built = str(self.tokenizer_spec).startswith("words:")  # its ids depend on the pool it was built from
        key = (name, len(rows), hash(tuple(texts[0][:50])), hash(tuple(texts[-1][-50:])), self.tokenizer_spec,
               str(self.data_dir), self.max_length, self.text_fields,
               hash(tuple(sorted(self.tokenizer.get_vocab().items()))) if built else None)
        if key not in _TOKENIZED:
            enc = self.tokenizer(*texts, padding="max_length", truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
            while len(_TOKENIZED) >= 4:  # a few datasets' worth (pool and test) stay in memory
                _TOKENIZED.pop(next(iter(_TOKENIZED)))
            _TOKENIZED[key] = {k: enc[k] for k in ("input_ids", *TOKEN_FIELDS) if k in enc}
        enc = _TOKENIZED[key]
        return TextItems(x=enc["input_ids"], y=y, row=torch.arange(len(rows)),
                         **{k: enc[k] for k in TOKEN_FIELDS if k in enc})

    # ------------------------------------------------------------ raw text
    def text_of(self, idx: int, split: str = "pool") -> tuple[str, ...]:
        """The raw text (one string, or the pair) of a pool item (``split="test"``: a test item)."""
        self.setup()
        row = int((self.pool if split == "pool" else self.test)[int(idx)]["row"])
        return tuple(str(self._rows[split][row][f]) for f in self.text_fields)

    def item_id(self, idx: int) -> str:
        """A pool item's id: its ``id_field`` value, else its row in the training file."""
        self.setup()
        row = int(self.pool[int(idx)]["row"])
        return str(self._rows["pool"][row][self.id_field or "_row"])
