"""ALICE end to end through the real configs on a Fashion-MNIST-format dataset the test writes: class pairs
asked and journaled, crops added, the model morphed and checkpointed with its spec, and a killed run that
resumes with the same answers and results."""

from __future__ import annotations

import json

import numpy as np
import torch

from common.cli import run
from common.journal import Journal, read_journal
from tests.conftest import compose
from tests.smoke.test_resume_after_kill import query, reference_and_resumed
from tests.unit.test_data import write_idx_folder
from common.run_folder import load_checkpoint


def alice_args(root) -> list[str]:
    return ["experiment=alice_fashion_mnist", f"dataset.root={root}", "dataset.images_per_class=4",
            "dataset.image_size=32", "dataset.test_size=null", "backbone=small_cnn", "strategy.dims=4",
            "loop.rounds=2", "trainer.max_epochs=2", "loop.threads=1", "method.hooks.saliency=2"]


def test_alice_rounds_ask_pairs_add_crops_and_morph(tmp_path):
    write_idx_folder(tmp_path / "fm", n_train=60, n_test=30)
    run_dir = run(compose(alice_args(tmp_path / "fm"), tmp_path / "run"))
    j = Journal(run_dir / "journal.sqlite")
    asked = [a for a in j.answers() if a["question"] == "contrast_classes"]
    assert [a["round"] for a in asked] == [0, 1] and len({a["key"] for a in asked}) == 2
    m = read_journal(run_dir / "journal.sqlite")["metrics"]
    assert [m[r]["alice/super_classes"] for r in (0, 1, 2)][0] == 10 and m[2]["alice/super_classes"] < 10
    assert m[2]["alice/crops"] == len(j.extras()) > 0 and all(0 <= m[r]["test/coarse_acc"] <= 1 for r in m)
    assert all(m[r]["n_labels"] == 40 for r in m)  # rounds ask no labels
    end = load_checkpoint(run_dir / "checkpoints" / "round_001_end.pt")
    record = json.loads((run_dir / "alice" / "round_001.json").read_text())
    assert end["arch"]["groups"] == record["groups"] and len(end["arch"]["asked"]) == 2
    assert record["pairs"][0]["parts"] and record["pairs"][0]["explanation"] == asked[1]["answer"]
    assert list((run_dir / "alice" / "saliency").glob("round_001_*.png"))
    assert np.load(run_dir / "predictions" / "round_002.npy").shape == (30,)


def test_a_killed_alice_run_resumes_without_asking_again(tmp_path):
    write_idx_folder(tmp_path / "fm", n_train=60, n_test=30)
    args = [*alice_args(tmp_path / "fm"), "oracle.latency=0.1", "loop.seed=2"]
    ref, killed = reference_and_resumed(tmp_path, args,
                                        "SELECT COUNT(*) FROM answers WHERE question = 'contrast_classes'")
    sql = "SELECT round, position, origin, label, payload FROM extras ORDER BY round, position"
    assert query(killed / "journal.sqlite", sql) == query(ref / "journal.sqlite", sql)
