"""ALICE's grounding (boxes around named parts, random boxes), the garment-part proxy, the contrast
question and the pair strategies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from exil.alice.grounding import PartBoxes, RandomBoxes, crop_extras
from exil.alice.parser import GARMENT_PARTS, SemanticParser
from exil.alice.questions import contrast_question
from exil.alice.strategies import JSDPairs, RandomPairs
from exil.common.data.fashion_parts import (
    GARMENT_PART_NAMES,
    FashionPartsDataModule,
    garment_part_locations,
    read_contrasts,
)
from exil.common.data.mnist import FASHION_MNIST_CLASSES
from exil.common.data.parts import PartsDataModule, part_items
from exil.common.errors import ConfigError, ExilError
from exil.common.oracle.base import validate
from exil.common.oracle.question import InvalidAnswer, OracleContext
from exil.common.oracle.simulated import SimulatedOracle
from exil.common.oracle.terminal import TerminalOracle
from exil.common.strategies.context import QueryContext


class TinyParts(PartsDataModule):
    """Two 20 × 20 images with parts 'head' (visible in both) and 'tail' (visible in the second only)."""

    part_names = ["head", "tail"]

    def load(self):
        parts = torch.tensor([[[2.0, 3.0, 1.0], [15.0, 15.0, 0.0]], [[10.0, 10.0, 1.0], [19.0, 19.0, 1.0]]])
        items = part_items(torch.rand(2, 1, 20, 20), torch.tensor([0, 1]), parts)
        return items, None, items


def test_part_boxes_are_squares_around_visible_parts_shifted_inside_the_image():
    dm = TinyParts()
    rows, boxes = PartBoxes(size=0.5).boxes(dm, [0, 1], ["head", "tail"], torch.Generator())
    assert rows.tolist() == [[0, 0], [1, 0], [1, 1]]  # item 0's tail is not visible
    assert boxes.tolist() == [[0.0, 0.0, 10.0, 10.0],  # (2, 3) is near the corner: shifted inside
                              [5.0, 5.0, 15.0, 15.0],  # centred on (10, 10)
                              [10.0, 10.0, 20.0, 20.0]]
    extras = crop_extras([0, 1], [0, 1], rows, boxes)
    assert [(e.origin, e.label, e.kind) for e in extras] == [(0, 0, "crop"), (1, 1, "crop"), (1, 1, "crop")]
    assert bool(extras[0].fields["crop"]) and extras[2].fields["box"].tolist() == [10.0, 10.0, 20.0, 20.0]


def test_random_boxes_match_in_number_and_size_and_follow_the_generator():
    dm = TinyParts()
    a = RandomBoxes(size=0.25).boxes(dm, [0, 1], ["head", "tail"], torch.Generator().manual_seed(1))
    b = RandomBoxes(size=0.25).boxes(dm, [0, 1], ["head", "tail"], torch.Generator().manual_seed(1))
    assert torch.equal(a[1], b[1]) and len(a[0]) == 3
    side = a[1][:, 2:] - a[1][:, :2]
    assert torch.allclose(side, torch.full_like(side, 5.0)) and (a[1] >= 0).all() and (a[1] <= 20).all()


def test_a_part_the_dataset_does_not_locate_is_a_clear_error():
    with pytest.raises(ConfigError, match="head, tail"):
        PartBoxes().boxes(TinyParts(), [0], ["beak"], torch.Generator())


def test_garment_parts_on_hand_drawn_silhouettes():
    tee = np.zeros((28, 28), np.float32)
    tee[4:24, 8:20] = 1.0  # body rows 4..23, columns 8..19
    tee[4:10, 3:25] = 1.0  # short sleeves: columns 3..24, rows 4..9
    boot = np.zeros((28, 28), np.float32)
    boot[16:22, 2:26] = 1.0  # foot, toe to the left
    boot[6:16, 18:26] = 1.0  # shaft on the right
    loc = garment_part_locations(np.stack([tee, boot]), np.array([0, 9]))
    part = {n: i for i, n in enumerate(GARMENT_PART_NAMES)}
    assert loc[0, part["collar"]].tolist() == [14.0, 4.5, 1.0]  # top rows' centre column 13.5 (+0.5)
    assert loc[0, part["hem"]].tolist() == [14.0, 23.5, 1.0]
    assert loc[0, part["sleeve"]].tolist() == [3.5, 9.5, 1.0]  # the lowest leftmost point: the sleeve's end
    assert loc[0, part["toe"], 2] == 0  # tops have no toe
    assert loc[1, part["shaft"]].tolist() == [22.0, 7.5, 1.0]
    assert loc[1, part["toe"], 0] == 2.5 and loc[1, part["heel"], 0] == 25.5  # toe away from the shaft
    assert loc[1, part["sole"], 1] == 21.5


def test_the_explanation_bank_covers_every_pair_and_every_sentence_names_located_parts():
    from exil.common.data.fashion_parts import CONTRASTS_FILE

    bank = read_contrasts(CONTRASTS_FILE, FASHION_MNIST_CLASSES)
    assert len(bank) == 45
    parser = SemanticParser(GARMENT_PARTS)
    for sentence in bank.values():
        parts = parser.parse(sentence)
        assert parts and parts <= set(GARMENT_PART_NAMES), sentence


def test_a_bank_with_an_unknown_class_says_which(tmp_path):
    path = tmp_path / "bank.jsonl"
    path.write_text(json.dumps({"classes": ["Shirt", "Kilt"], "explanation": "x"}) + "\n")
    with pytest.raises(ExilError, match="Kilt"):
        read_contrasts(path, FASHION_MNIST_CLASSES)


class BankParts(TinyParts):
    def contrast_explanation(self, p, q):
        return f"class {p} has a head while class {q} has a tail"


def test_contrast_question_answered_by_the_simulated_expert_and_validated():
    dm = BankParts()
    ctx = OracleContext(dm, ["a", "b"], out_dir=None)
    q = contrast_question(1, 0, ["a", "b"])
    assert q.key == "0-1" and q.payload["names"] == ["a", "b"]
    answer = SimulatedOracle().answer(q, ctx)
    assert validate(q, answer, ctx) == "class 0 has a head while class 1 has a tail"
    with pytest.raises(InvalidAnswer):
        validate(q, "   ", ctx)
    assert validate(q, "  a   has\n a head ", ctx) == "a has a head"


def test_the_terminal_expert_sees_both_classes_and_types_a_sentence(tmp_path):
    dm = BankParts()
    typed, printed = iter(["the first has a head"]), []
    oracle = TerminalOracle(input_fn=lambda prompt: (printed.append(prompt), next(typed))[1], print_fn=printed.append)
    ctx = OracleContext(dm, ["a", "b"], out_dir=tmp_path, round=2)
    answer = oracle.answer(contrast_question(0, 1, ["a", "b"], {0: [0], 1: [1]}), ctx)
    assert answer == "the first has a head"
    assert any("How would you differentiate a and b" in str(p) for p in printed)
    assert (tmp_path / "round_002_contrast_0-1.png").exists()


def _clusters(centres, n=15, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.cat([c + 0.3 * torch.randn(n, d, generator=g, dtype=torch.float64) for c in centres])
    labels = torch.arange(len(centres)).repeat_interleave(n)
    return feats, labels


def test_jsd_pairs_choose_the_overlapping_classes_and_skip_excluded_pairs():
    d = 12
    base = torch.eye(d, dtype=torch.float64) * 4
    centres = [base[0], base[1], base[1] + 0.2, base[3]]  # classes 1 and 2 overlap
    feats, labels = _clusters(centres, d=d)
    for strategy in (JSDPairs(), JSDPairs(dims=3)):
        assert strategy.select_pairs(feats, labels, 4, 1, set(), torch.Generator()) == [(1, 2)]
        assert (1, 2) not in strategy.select_pairs(feats, labels, 4, 2, {(1, 2)}, torch.Generator())


def test_random_pairs_are_allowed_distinct_and_seeded():
    exclude = {(0, 1), (2, 3)}
    a = RandomPairs().select_pairs(None, None, 4, 3, exclude, torch.Generator().manual_seed(0))
    b = RandomPairs().select_pairs(None, None, 4, 3, exclude, torch.Generator().manual_seed(0))
    assert a == b and len(set(a)) == 3 and not set(a) & exclude and all(p < q for p, q in a)


def test_a_pair_strategy_refuses_to_choose_pool_items():
    with pytest.raises(ConfigError, match="method=alice"):
        JSDPairs().select(QueryContext(None, None, np.arange(3), torch.device("cpu"), torch.Generator()), 2)


def test_fashion_parts_reads_k_images_per_class_from_idx_files(tmp_path):
    from tests.unit.test_data import write_idx_folder

    write_idx_folder(tmp_path / "fm", n_train=60, n_test=20)
    dm = FashionPartsDataModule(root=str(tmp_path / "fm"), images_per_class=3, image_size=32)
    dm.setup()
    batch = dm.pool.__getitems__(list(range(len(dm.pool))))
    assert len(dm.pool) == 30 and np.bincount(batch["y"].numpy()).tolist() == [3] * 10
    assert batch["x"].shape == (30, 1, 32, 32) and batch["x"].dtype == torch.float32
    assert batch["parts"].shape == (30, len(GARMENT_PART_NAMES), 3) and batch["parts"][..., :2].max() <= 32
    assert batch["box"][0].tolist() == [0.0, 0.0, 32.0, 32.0] and not batch["crop"].any()
    assert dm.coarse_labels([0, 5, 8]).tolist() == [0, 1, 2]
    assert "sleeves" in dm.contrast_explanation(0, 2)
