"""Your own texts with nothing fetched: the word tokenizer built from the pool (``dataset.tokenizer=words:N``), and
``dataset=hf_text`` on a folder of one saved Dataset or on a CSV / JSONL file."""

from __future__ import annotations

import json
import random

import pytest

from exil.common.data.hf_text import HFTextDataModule
from exil.common.data.text import load_tokenizer, word_tokenizer
from exil.common.errors import ConfigError

TEXTS = ["The movie is GREAT!", "a dull, dull film.", "Café au lait", "the plot is dull"]


def test_the_word_tokenizer_keeps_the_commonest_words_with_the_same_ids_every_time():
    tok = word_tokenizer(TEXTS, size=5 + 4)
    vocab = tok.get_vocab()
    assert len(vocab) == 9 and [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1])][5:] == ["dull", "is", "the", "!"]  # 3, 2, 2, 1×
    shuffled = TEXTS[:]
    random.Random(1).shuffle(shuffled)
    assert word_tokenizer(shuffled, size=9).get_vocab() == vocab  # the same texts in any order: the same ids
    enc = tok("the FILM is dull", "dull")
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "the", "[UNK]", "is", "dull", "[SEP]", "dull", "[SEP]"]
    assert enc["token_type_ids"] == [0] * 6 + [1] * 2 and enc["attention_mask"] == [1] * 8


def test_a_words_tokenizer_needs_a_size_and_texts():
    with pytest.raises(ConfigError, match="takes the vocabulary size"):
        load_tokenizer("words:many", texts=TEXTS)
    with pytest.raises(ConfigError, match="built from a text dataset's pool"):
        load_tokenizer("words:100")
    with pytest.raises(ConfigError, match="more than 5 tokens"):
        load_tokenizer("words:5", texts=TEXTS)


def rows(n=40):
    return [{"text": f"{'good' if i % 4 else 'bad'} film number {i}", "label": "pos" if i % 4 else "neg"} for i in range(n)]


def test_a_jsonl_or_csv_file_is_the_pool_with_a_stratified_test_split(tmp_path):
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows()))
    (tmp_path / "mine.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows()))
    for name in ("mine.jsonl", "mine.csv"):
        dm = HFTextDataModule(path=str(tmp_path / name), test_split="test", tokenizer="words:50", max_length=8)
        dm.setup()
        assert dm.class_names == ["neg", "pos"] and (len(dm.pool), len(dm.test)) == (28, 12)
        assert sum(dm.true_label(i) == 0 for i in range(len(dm.pool))) == 7  # stratified: a quarter "neg"
        pool = {dm.text_of(i)[0] for i in range(len(dm.pool))}
        test = {dm.text_of(i, "test")[0] for i in range(len(dm.test))}
        assert not pool & test and len(pool | test) == 40
    with pytest.raises(Exception, match="no such file"):
        HFTextDataModule(path=str(tmp_path / "missing.csv"), tokenizer="words:50").setup()


def test_a_folder_of_one_saved_dataset_is_split_never_tested_on_its_pool(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(rows()).save_to_disk(str(tmp_path / "one"))
    dm = HFTextDataModule(path=str(tmp_path / "one"), tokenizer="words:50", max_length=8)
    dm.setup()
    assert (len(dm.pool), len(dm.test)) == (28, 12)
    assert not {dm.text_of(i)[0] for i in range(28)} & {dm.text_of(i, "test")[0] for i in range(12)}
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows())}).save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(ConfigError, match="has no split 'test'; its splits: train; dataset.test_split=null splits"):
        HFTextDataModule(path=str(tmp_path / "dict"), tokenizer="words:50").setup()
