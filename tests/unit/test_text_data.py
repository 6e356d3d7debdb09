"""The text DataModule on generated files: JSONL with a split, GLUE RTE / MRPC TSV pairs, CSV; batches
trimmed to their longest item; tokenisation once; raw text and ids for oracles; helpful errors."""

from __future__ import annotations

import csv

import pytest
import torch

from exil.common.data import text as text_data
from exil.common.data.text import TextDataModule
from exil.common.errors import ConfigError, DataMissing
from tests.text_fixtures import CLS, SEP, rotten_tomatoes, tokenizer_folder


@pytest.fixture
def tok(tmp_path):
    return f"file:{tokenizer_folder(tmp_path)}"


def test_rotten_tomatoes_jsonl_split_and_raw_text(tmp_path, tok):
    rotten_tomatoes(tmp_path, n=100)
    dm = TextDataModule(data_dir=str(tmp_path), source="rotten_tomatoes", train_file="reviews.jsonl",
                        label_names=["rotten", "fresh"], id_field="id", tokenizer=tok, max_length=16, test_size=0.3)
    dm.setup()
    assert dm.class_names == ["rotten", "fresh"] and dm.num_classes == 2
    assert len(dm.pool) == 70 and len(dm.test) == 30
    item = dm.pool[0]
    assert item["x"].shape == (16,) and int(item["x"][0]) == CLS and "attention_mask" in item
    text, = dm.text_of(0)
    ids = dm.tokenizer(text)["input_ids"]
    assert item["x"][: len(ids)].tolist() == ids and int(item["x"][len(ids) - 1]) == SEP
    assert int(dm.item_id(0)) >= 1000
    y = "fresh" if any(w in text for w in ("great", "fun", "wonderful", "brilliant", "charming")) else "rotten"
    assert dm.class_names[dm.true_label(0)] == y


def test_batches_are_trimmed_to_their_longest_item(tmp_path, tok):
    rotten_tomatoes(tmp_path, n=60)
    dm = TextDataModule(data_dir=str(tmp_path), source="rotten_tomatoes", train_file="reviews.jsonl",
                        tokenizer=tok, max_length=32, eval_batch_size=7)
    batch = next(iter(dm.pool_dataloader(list(range(7)))))
    width = int(batch["attention_mask"].sum(1).max())
    assert batch["x"].shape == (7, width) < (7, 32) and batch["attention_mask"][:, -1].any()


def test_tokenisation_is_cached_once_per_run(tmp_path, tok, monkeypatch):
    rotten_tomatoes(tmp_path, n=50)
    kw = dict(data_dir=str(tmp_path), source="rotten_tomatoes", train_file="reviews.jsonl", tokenizer=tok, max_length=16)
    TextDataModule(**kw).setup()
    calls = []
    real = text_data.load_tokenizer

    def counting(*a, **k):
        t = real(*a, **k)
        original = t.__call__
        t.__class__ = type("Counting", (type(t),), {"__call__": lambda self, *x, **y: calls.append(1) or original(*x, **y)})
        return t

    monkeypatch.setattr(text_data, "load_tokenizer", counting)
    dm = TextDataModule(**kw)
    dm.setup()
    dm.setup()
    assert calls == [] and len(dm.pool) == 35  # the same texts were tokenised by the first data module


def write_tsv(path, header, rows):
    """A GLUE-style TSV: tab-separated, quotes left as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in [header, *rows]))


def test_glue_rte_pairs(tmp_path, tok):
    header = ["index", "sentence1", "sentence2", "label"]
    rows = [[i, f'the "movie" is {"great" if i % 2 else "bad"}', "the film is great", "entailment" if i % 2 else "not_entailment"]
            for i in range(12)]
    write_tsv(tmp_path / "glue/RTE/train.tsv", header, rows)
    write_tsv(tmp_path / "glue/RTE/dev.tsv", header, rows[:4])
    dm = TextDataModule(data_dir=str(tmp_path), train_file="glue/RTE/train.tsv", test_file="glue/RTE/dev.tsv",
                        text_fields=["sentence1", "sentence2"], label_names=["entailment", "not_entailment"],
                        id_field="index", tokenizer=tok, max_length=24)
    dm.setup()
    assert len(dm.pool) == 12 and len(dm.test) == 4 and dm.is_pair
    assert dm.text_of(1) == ('the "movie" is great', "the film is great") and dm.true_label(1) == 0
    item = dm.pool[1]
    assert int(item["token_type_ids"].max()) == 1  # the second segment
    assert int((item["x"] == SEP).sum()) == 2


def test_glue_mrpc_layout(tmp_path, tok):
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    rows = [[i % 2, 10 + i, 20 + i, "the plot is dull", "the story is boring"] for i in range(8)]
    write_tsv(tmp_path / "glue/MRPC/train.tsv", header, rows)
    write_tsv(tmp_path / "glue/MRPC/dev.tsv", header, rows[:2])
    dm = TextDataModule(data_dir=str(tmp_path), train_file="glue/MRPC/train.tsv", test_file="glue/MRPC/dev.tsv",
                        text_fields=["#1 String", "#2 String"], label_field="Quality", label_names=["0", "1"],
                        tokenizer=tok, max_length=24)
    dm.setup()
    assert [dm.true_label(i) for i in range(4)] == [0, 1, 0, 1] and dm.item_id(3) == "3"


def test_csv_and_test_subset(tmp_path, tok):
    with open(tmp_path / "t.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([[f"a great, fun movie {i}", "pos"] if i % 2 else [f"a dull mess {i}", "neg"] for i in range(40)])
    dm = TextDataModule(data_dir=str(tmp_path), train_file="t.csv", tokenizer=tok, max_length=12, test_size=0.5,
                        test_items=10)
    dm.setup()
    assert dm.class_names == ["neg", "pos"] and len(dm.test) == 10
    assert torch.bincount(dm.test.targets).tolist() == [5, 5]
    assert dm.text_of(0, split="test")[0].startswith("a ")


def test_errors_say_what_to_do(tmp_path, tok):
    with pytest.raises(DataMissing, match="exil data fetch rotten_tomatoes"):
        TextDataModule(data_dir=str(tmp_path), source="rotten_tomatoes", train_file="reviews.jsonl", tokenizer=tok).setup()
    with pytest.raises(DataMissing, match="GLUE"):
        TextDataModule(data_dir=str(tmp_path), train_file="glue/RTE/train.tsv", tokenizer=tok).setup()
    rotten_tomatoes(tmp_path, n=20)
    with pytest.raises(ConfigError, match="its columns: id, text, label, movie"):
        TextDataModule(data_dir=str(tmp_path), source="rotten_tomatoes", train_file="reviews.jsonl",
                       text_fields=["sentence"], tokenizer=tok).setup()
    with pytest.raises(ConfigError, match="not in dataset.label_names"):
        TextDataModule(data_dir=str(tmp_path), source="rotten_tomatoes", train_file="reviews.jsonl",
                       label_names=["fresh", "splat"], tokenizer=tok).setup()
