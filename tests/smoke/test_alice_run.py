"""ALICE end to end through the real configs on a Fashion-MNIST-format dataset the test writes: class pairs
asked and journaled, crops added, the model morphed and checkpointed with its spec, and a killed run that
resumes with the same answers and results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from exil.common.engine import run
from exil.common.journal import Journal, read_journal
from exil.common.run_folder import load_checkpoint
from tests.conftest import compose
from tests.smoke.test_resume_after_kill import query, reference_and_resumed
from tests.unit.test_data import write_idx_folder


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


@pytest.mark.slow  # an ALICE run killed mid-round; CI keeps the in-process crash-after-morph resume (tests/unit/test_loop.py)
def test_a_killed_alice_run_resumes_without_asking_again(tmp_path):
    write_idx_folder(tmp_path / "fm", n_train=60, n_test=30)
    args = [*alice_args(tmp_path / "fm"), "oracle.latency=0.1", "loop.seed=2"]
    ref, killed = reference_and_resumed(tmp_path, args,
                                        "SELECT COUNT(*) FROM answers WHERE question = 'contrast_classes'")
    sql = "SELECT round, position, origin, label, payload FROM extras ORDER BY round, position"
    assert query(killed / "journal.sqlite", sql) == query(ref / "journal.sqlite", sql)


def test_the_marks_task_runs_end_to_end_and_its_expert_names_the_marked_part(tmp_path):
    """experiment=alice_fashion_marks through the real configs: 8 sub-classes, every asked pair answered, a pair
    of sub-classes of one garment parsed to exactly its marked part and cropped there."""
    from exil.common.data.fashion_marks import MARKED

    write_idx_folder(tmp_path / "fm", n_train=200, n_test=60)
    args = ["experiment=alice_fashion_marks", f"dataset.root={tmp_path / 'fm'}", "dataset.images_per_class=4",
            "dataset.image_size=32", "dataset.mark=4", "dataset.test_size=null", "backbone=small_cnn",
            "strategy.dims=4", "loop.rounds=3", "trainer.max_epochs=1", "loop.threads=1", "method.hooks.saliency=0"]
    run_dir = run(compose(args, tmp_path / "run"))
    m = read_journal(run_dir / "journal.sqlite")["metrics"]
    assert all(m[r]["n_labels"] == 32 for r in m) and m[3]["alice/super_classes"] <= 7
    asked = [p for r in range(3) for p in json.loads((run_dir / "alice" / f"round_{r:03d}.json").read_text())["pairs"]]
    assert len(asked) == 3
    for pair in asked:
        p, q = pair["pair"]
        if p // 2 == q // 2:
            assert pair["parts"] == [MARKED[sorted(MARKED)[p // 2]]] and pair["crops"] == 8
        else:
            assert "checked" not in pair["explanation"]


def test_pairs_from_the_initial_encoder_are_the_lowest_jsd_of_its_features(tmp_path):
    """strategy.encoder=initial: the pairs asked after round 1's fit are the lowest-JSD pairs of the features
    that the checkpointed initial weights give (recomputed here from init.pt), not of the fitted encoder's."""
    from exil.alice.pairs import most_confusable_pairs
    from exil.alice.strategies import principal_components
    from exil.common.backbones import build_backbone

    write_idx_folder(tmp_path / "fm", n_train=60, n_test=30)
    args = [*alice_args(tmp_path / "fm"), "strategy.encoder=initial", "method.hooks.saliency=0"]
    run_dir = run(compose(args, tmp_path / "run"))
    asked = [json.loads((run_dir / "alice" / f"round_{r:03d}.json").read_text())["pairs"][0]["pair"] for r in (0, 1)]
    state = load_checkpoint(run_dir / "checkpoints" / "init.pt")["state_dict"]
    encoder = build_backbone("exil", "small_cnn", input_shape=(1, 32, 32))
    encoder.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    from hydra.utils import instantiate

    dm = instantiate(compose(args, tmp_path / "probe").dataset)
    dm.setup()
    batch = dm.pool.__getitems__(list(range(len(dm.pool))))
    with torch.no_grad():
        f = principal_components(encoder.eval()(batch["x"]).double(), 4)
    first, _ = most_confusable_pairs(f, batch["y"], 10, budget=1)
    assert asked[0] == list(first[0])
    second, _ = most_confusable_pairs(f, batch["y"], 10, budget=1, exclude={tuple(first[0])})
    assert asked[1] == list(second[0])
