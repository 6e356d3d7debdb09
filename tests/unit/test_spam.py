"""SpamAssassin bags of words with decoy words, on a generated corpus in the fetched file's format,
and CAIPI's feature path (LIME over words, drop-the-word counterexamples) end to end on it."""

import json

import numpy as np
import pytest
import torch

from exil.common.data.spam import DECOY_WORDS, SpamAssassinDataModule, body_words
from exil.common.errors import DataMissing

SPAMMY, HAMMY = ["free", "money", "winner", "offer"], ["meeting", "project", "thanks", "lunch"]


def corpus(root, n=120, seed=0):
    rng = np.random.default_rng(seed)
    (root / "spam_assassin").mkdir(parents=True)
    with open(root / "spam_assassin" / "spam_assassin.jsonl", "w") as f:
        for i in range(n):
            spam = i % 3 == 0
            words = list(rng.choice(SPAMMY if spam else HAMMY, 3)) + ["the", "and"]
            text = f"From: someone\nSubject: hi there\n\n{' '.join(words)} Hello!"
            f.write(json.dumps({"id": str(i), "group": "spam-1" if spam else "easy-ham-1", "text": text}) + "\n")


def test_body_words_skip_headers():
    assert body_words("Subject: winner\n\nHello there, X1 friend") == {"hello", "there", "friend"}


def test_bag_of_words_with_decoys(tmp_path):
    corpus(tmp_path)
    dm = SpamAssassinDataModule(data_dir=str(tmp_path), min_df=1, test_size=0.25)
    dm.setup()
    vocab = dm.vocabulary
    assert vocab[-2:] == list(DECOY_WORDS) and "subject" not in vocab and "hello" in vocab
    d_ham, d_spam = vocab.index("decoyham"), vocab.index("decoyspam")
    x, y = dm.pool.base.fields["x"] if hasattr(dm.pool, "base") else dm.pool.fields["x"], dm._targets
    assert (x[:, d_spam] == torch.from_numpy(y == 1).float()).all() and (x[:, d_ham] == torch.from_numpy(y == 0).float()).all()
    assert "decoy" not in dm.pool[0] and dm.ground_truth(0, "decoy")[[d_ham, d_spam]].all()
    assert not dm.ground_truth(0, "mask")[[d_ham, d_spam]].any()
    test_x = dm._ground_truth_test.fields["x"]
    assert (test_x[:, [d_ham, d_spam]].sum(1) == 1).all()  # one decoy word per test mail, at random


def test_missing_corpus_says_how_to_fetch(tmp_path):
    with pytest.raises(DataMissing, match="exil data fetch spam_assassin"):
        SpamAssassinDataModule(data_dir=str(tmp_path)).setup()


def test_caipi_on_words_drops_the_decoy_word(tmp_path):
    from exil.common.engine import run
    from exil.common.journal import Journal
    from tests.conftest import compose

    corpus(tmp_path / "data", n=300)
    run_dir = run(compose(["experiment=caipi_spam", f"paths.data_dir={tmp_path / 'data'}", "dataset.min_df=1",
                           "loop.rounds=2", "loop.query_size=10", "trainer.max_epochs=5",
                           "method.hooks.lime.num_samples=200", "method.hooks.lime_metric_items=40"], tmp_path / "run"))
    j = Journal(run_dir / "journal.sqlite")
    corrections = [a for a in j.answers() if a["question"] == "correct_explanation"]
    assert corrections
    extras = j.extras()
    assert len(extras) == sum(len(a["answer"]) for a in corrections)
    assert all(e.fields["x@index"].numel() == 1 and float(e.fields["x@values"][0]) == 0.0 for e in extras)
