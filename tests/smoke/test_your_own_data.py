"""Your own data: an image folder (one sub-folder per class, optional masks beside) and torchvision's standard
datasets from their own files, each through a real run on files the test writes in the same format; and the
one-line message when the files are missing and there is no network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from exil.common.cli import _guard
from exil.common.engine import run
from exil.common.journal import Journal
from tests.conftest import compose
from tests.unit.test_data import write_idx_folder

TINY = ["loop.rounds=1", "loop.query_size=4", "loop.initial_per_class=1", "trainer.max_epochs=1", "loop.threads=1",
        "logger=csv", "backbone=small_cnn"]


def write_image_folder(root, classes=("cat", "dog", "owl"), per_class=12, masks_for=("cat",)):
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (20, 24, 3), dtype=np.uint8)
            img[:, :, c] += 180  # each class has its own dominant colour: learnable
            Image.fromarray(img).save(root / name / f"{i:03d}.png")
            if name in masks_for:
                (root / name / "masks").mkdir(exist_ok=True)
                m = np.zeros((20, 24), dtype=np.uint8)
                m[5:10, 5:12] = 255
                Image.fromarray(m).save(root / name / "masks" / f"{i:03d}.png")


def test_an_image_folder_with_optional_masks_runs(tmp_path):
    write_image_folder(tmp_path / "pets")
    cfg = compose(["dataset=image_folder", f"dataset.root={tmp_path / 'pets'}", "dataset.image_size=16", *TINY],
                  tmp_path / "run")
    run_dir = run(cfg)
    from hydra.utils import instantiate

    dm = instantiate(cfg.dataset)
    dm.setup()
    assert dm.class_names == ["cat", "dog", "owl"] and dm.input_shape == (3, 16, 16)
    assert len(dm.pool) + len(dm.test) == 36
    masks = torch.stack([dm.ground_truth(i, "mask") for i in range(len(dm.pool))])
    labels = torch.as_tensor([int(dm.pool[i]["y"]) for i in range(len(dm.pool))])
    assert (masks[labels != 0].all()) and not masks[labels == 0].all()  # masks where given, full elsewhere
    j = Journal(run_dir / "journal.sqlite")
    assert len(j.labelled()) == 3 + 4 and len(j.metrics_by_round()) == 2
    j.close()


def test_torchvision_fashion_mnist_from_its_own_files(tmp_path):
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"
    write_idx_folder(raw, n_train=60, n_test=30, gz=False)
    run_dir = run(compose(["dataset=torchvision", "dataset.name=fashion_mnist", f"dataset.root={tmp_path / 'tv'}",
                           *TINY], tmp_path / "run"))
    j = Journal(run_dir / "journal.sqlite")
    assert len(j.labelled()) == 10 + 4
    j.close()


@pytest.mark.parametrize("download", [False, True])
def test_missing_torchvision_files_say_where_they_go(tmp_path, capsys, monkeypatch, download):
    import urllib.request

    def offline(*a, **kw):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code = _guard(run, compose(["dataset=torchvision", "dataset.name=cifar10", f"dataset.root={tmp_path / 'tv'}",
                                f"dataset.download={str(download).lower()}", *TINY], tmp_path / "run"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "dataset.name=cifar10: its files are not in" in err and "dataset.download=true" in err, err


def test_a_hugging_face_text_dataset_saved_on_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    from hydra.utils import instantiate

    from tests.text_fixtures import tokenizer_folder

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    train = {"text": [f"a {'great' if i % 2 else 'dull'} movie {i}" for i in range(20)], "label": [i % 2 for i in range(20)]}
    test = {"text": ["a great film", "a dull film", "great fun", "dull mess"], "label": [1, 0, 1, 0]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(train, features=features),
                          "test": datasets.Dataset.from_dict(test, features=features)}).save_to_disk(str(tmp_path / "hf"))
    cfg = compose(["dataset=hf_text", f"dataset.path={tmp_path / 'hf'}",
                   f"dataset.tokenizer=file:{tokenizer_folder(tmp_path)}"], tmp_path / "run")
    dm = instantiate(cfg.dataset)
    dm.setup()
    assert dm.class_names == ["neg", "pos"] and len(dm.pool) == 20 and len(dm.test) == 4
    assert dm.text_of(1) == ("a great movie 1",) and dm.true_label(1) == 1 and dm.true_label(0) == 0
    bad = compose(["dataset=hf_text", f"dataset.path={tmp_path / 'hf'}", "dataset.test_split=validation",
                   f"dataset.tokenizer=file:{tokenizer_folder(tmp_path)}"], tmp_path / "run2")
    with pytest.raises(Exception, match="has no split 'validation'; its splits: train, test"):
        instantiate(bad.dataset).setup()


def write_own_texts(root, n_train=120, n_test=40):
    """Reviews (tests.text_fixtures) as a user's own data: a save_to_disk DatasetDict (``label`` a ClassLabel) and
    the same rows as one JSONL file."""
    import json

    import datasets

    from tests.text_fixtures import review

    rng = np.random.default_rng(0)
    rows = [{"text": review(rng, i % 5 < 3), "label": int(i % 5 < 3)} for i in range(n_train + n_test)]
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["bad", "good"])})
    split = {"train": rows[:n_train], "test": rows[n_train:]}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v, features=features) for k, v in split.items()}).save_to_disk(
        str(root / "reviews"))
    with open(root / "reviews.jsonl", "w") as f:
        f.writelines(json.dumps({"text": r["text"], "label": ["bad", "good"][r["label"]]}) + "\n" for r in rows)
    return root / "reviews", root / "reviews.jsonl"


@pytest.mark.parametrize("form", ["save_to_disk", pytest.param("jsonl", marks=pytest.mark.slow)])  # CI: one form
def test_your_own_texts_run_end_to_end_with_experiment_own_text(tmp_path, form):
    """``exil experiment=own_text dataset.path=...``, the README's one-liner, through the real command: nothing to
    fetch (a word tokenizer built from the pool, a small BERT from scratch), metrics for every round."""
    import csv

    pytest.importorskip("datasets")
    from tests.smoke.test_runs import exil

    folder, jsonl = write_own_texts(tmp_path)
    run_dir = tmp_path / "run"
    p = exil("experiment=own_text", f"dataset.path={folder if form == 'save_to_disk' else jsonl}", "loop.rounds=2",
             "loop.query_size=5", "loop.initial_per_class=2", "trainer.max_epochs=1", "loop.threads=1",
             f"hydra.run.dir={run_dir}")
    assert p.returncode == 0, p.stderr[-3000:]
    with open(run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["n_labels"]) for r in rows] == [4, 9, 14]
    assert all(0.0 <= float(r["test/acc"]) <= 1.0 and r["test/macro_f1"] for r in rows)
    j = Journal(run_dir / "journal.sqlite")
    assert len(j.labelled()) == 14
    j.close()
