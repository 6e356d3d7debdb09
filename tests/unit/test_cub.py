"""CUB-200-2011 in its standard layout, on a small tree the test writes: subset, parts, the simulated expert."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from exil.alice.parser import BIRD_PARTS, SemanticParser
from exil.common.data.cub import BIRD_PART_NAMES, CUBDataModule, attribute_part
from exil.common.errors import ConfigError, DataMissing

CLASSES = ["001.Black_footed_Albatross", "059.California_Gull", "064.Ring_billed_Gull", "147.Least_Tern"]
PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing", "nape",
         "right eye", "right leg", "right wing", "tail", "throat"]
ATTRS = ["has_bill_shape::dagger", "has_bill_shape::hooked", "has_wing_color::grey", "has_wing_color::black",
         "has_size::small_(5_-_9_in)", "has_size::large_(16_-_32_in)", "has_leg_color::red", "has_leg_color::yellow"]


def write_cub(root, per_class=(3, 2)):
    """4 classes, ``per_class`` = (train, test) images each, 40 × 20 PNGs, parts and class attributes."""
    (root / "images").mkdir(parents=True)
    (root / "parts").mkdir()
    (root / "attributes").mkdir()
    images, labels, split, locs = [], [], [], []
    i = 0
    for c, name in enumerate(CLASSES, 1):
        (root / "images" / name).mkdir()
        for k in range(sum(per_class)):
            i += 1
            path = f"{name}/img_{i}.png"
            Image.fromarray(np.full((20, 40, 3), 10 * i, np.uint8)).save(root / "images" / path)
            images.append(f"{i} {path}")
            labels.append(f"{i} {c}")
            split.append(f"{i} {int(k < per_class[0])}")
            for p in range(1, 16):  # beak at (20, 10) visible; the left eye at (4, 2), the right eye at (8, 6)
                x, y, v = {2: (20, 10, 1), 7: (4, 2, 1), 11: (8, 6, 1)}.get(p, (0, 0, 0))
                locs.append(f"{i} {p} {x} {y} {v}")
    (root / "images.txt").write_text("\n".join(images))
    (root / "image_class_labels.txt").write_text("\n".join(labels))
    (root / "train_test_split.txt").write_text("\n".join(split))
    (root / "classes.txt").write_text("\n".join(f"{c} {n}" for c, n in enumerate(CLASSES, 1)))
    (root / "parts" / "parts.txt").write_text("\n".join(f"{p} {n}" for p, n in enumerate(PARTS, 1)))
    (root / "parts" / "part_locs.txt").write_text("\n".join(locs))
    (root / "attributes.txt").write_text("\n".join(f"{k} {a}" for k, a in enumerate(ATTRS, 1)))
    table = np.array([[90, 10, 80, 20, 0, 100, 50, 50],   # albatross
                      [80, 20, 90, 10, 0, 100, 0, 100],   # california gull: dagger bill, grey wing, yellow legs
                      [10, 90, 10, 90, 0, 100, 0, 100],   # ring-billed gull: hooked bill, black wing, yellow legs
                      [90, 10, 90, 10, 100, 0, 100, 0]])  # least tern
    np.savetxt(root / "attributes" / "class_attribute_labels_continuous.txt", table, fmt="%.1f")


def test_species_subset_k_images_and_parts_rescaled(tmp_path):
    write_cub(tmp_path / "CUB_200_2011")
    dm = CUBDataModule(root=str(tmp_path / "CUB_200_2011"), families=["Gull", "Tern"], per_family=1,
                       images_per_class=2, image_size=16)
    dm.setup()
    assert dm.class_names == ["California Gull", "Least Tern"] and dm.coarse_names == ["Gull", "Tern"]
    assert len(dm.pool) == 4 and len(dm.test) == 4
    item = dm.pool[0]
    assert item["x"].shape == (3, 16, 16) and item["x"].dtype.is_floating_point
    loc = dict(zip(BIRD_PART_NAMES, item["parts"].tolist()))
    assert loc["bill"] == [8.0, 8.0, 1.0]  # (20, 10) in 40 × 20 → (8, 8) in 16 × 16
    assert loc["eye"] == pytest.approx([2.4, 3.2, 1.0])  # the two eyes averaged: (6, 4) → (2.4, 3.2)
    assert loc["tail"][2] == 0.0


def test_the_simulated_expert_contrasts_the_most_different_part_attributes(tmp_path):
    write_cub(tmp_path / "CUB_200_2011")
    dm = CUBDataModule(root=str(tmp_path / "CUB_200_2011"), species=["California Gull", 3], images_per_class=1,
                       image_size=8, contrast_parts=2)
    sentence = dm.contrast_explanation(0, 1)
    # wing colour differs by 160 points, bill shape by 140, leg colour by 0 (size has no body part)
    assert sentence == "California Gull has a grey wing and a dagger bill, while Ring billed Gull has a black wing " \
                       "and a hooked bill"
    assert SemanticParser(BIRD_PARTS).parse(sentence) == {"bill", "wing"}
    assert attribute_part("has_upper_tail_color") == "tail" and attribute_part("has_size") is None


def test_a_missing_or_partial_tree_says_how_to_get_cub(tmp_path):
    with pytest.raises(DataMissing, match="CUB_200_2011.tgz"):
        CUBDataModule(root=str(tmp_path)).setup()
    with pytest.raises(ConfigError, match="dataset.root"):
        CUBDataModule(root=None)


def test_an_unknown_species_names_the_valid_form(tmp_path):
    write_cub(tmp_path / "CUB_200_2011")
    with pytest.raises(ConfigError, match="not a CUB class"):
        CUBDataModule(root=str(tmp_path / "CUB_200_2011"), species=["Dodo"]).setup()
