"""The images + masks folder data module on generated PNG folders in the Kaggle COVID-19 Radiography
layout: labels, shapes, masks after resizing, oracle-only masks, splits, and the errors a user meets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from exil.common.data.masks_folder import MaskFolderDataModule
from exil.common.errors import DataMissing
from tests.conftest import compose

CLASSES = ["COVID", "Normal", "Viral Pneumonia"]  # sorted; one name with a space, as in the Kaggle archive
IMAGE, MASK, SIZE = 30, 20, 8  # images 30x30, masks 20x20 (different resolutions, as 299 vs 256), resized to 8


def shade(label: int, k: int) -> int:
    """The constant grey value of image ``k`` of class ``label``: identifies the file after resizing."""
    return 20 + 60 * label + 7 * k


def relevant(label: int) -> np.ndarray:
    """The MASK x MASK mask of class ``label``: rows 3..12 x cols 4..13 and a 1-pixel line at column 18,
    turned ``label`` quarter turns (so that every class has its own)."""
    m = np.zeros((MASK, MASK), dtype=bool)
    m[3:13, 4:14] = True
    m[:, 18] = True
    return np.rot90(m, label).copy()


def nearest(m: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize: output pixel i samples input pixel floor((i + 0.5) * scale)."""
    pick = np.floor((np.arange(size) + 0.5) * m.shape[0] / size).astype(int)
    return m[np.ix_(pick, pick)]


def write_folder(root: Path, per_class: int = 4, classes=CLASSES, no_mask: tuple[str, ...] = ()) -> Path:
    """root/<class>/images/<class>-<k>.png (constant grey) and root/<class>/masks/<same name> (0/255)."""
    for label, name in enumerate(classes):
        (root / name / "images").mkdir(parents=True)
        (root / name / "masks").mkdir(parents=True)
        for k in range(per_class):
            file = f"{name}-{k}.png"
            image = np.full((IMAGE, IMAGE), shade(label, k), dtype=np.uint8)
            Image.fromarray(image).save(root / name / "images" / file)
            if file not in no_mask:
                mask = relevant(label).astype(np.uint8) * 255
                Image.fromarray(mask).save(root / name / "masks" / file)
    return root


def module(root: Path, **kwargs) -> MaskFolderDataModule:
    dm = MaskFolderDataModule(root=str(root), **{"image_size": SIZE, "test_size": 0.25, **kwargs})
    dm.setup()
    return dm


def labels_of_shades(x: torch.Tensor) -> torch.Tensor:
    """The class of each image from its constant grey value (see :func:`shade`)."""
    return ((x[:, 0, 0, 0] * 255).round().long() - 20) // 60


def all_items(ds) -> dict:
    return ds.__getitems__(list(range(len(ds))))


def test_labels_classes_and_shapes(tmp_path):
    dm = module(write_folder(tmp_path / "data"))
    assert dm.class_names == CLASSES and dm.num_classes == 3
    assert dm.input_shape == (1, SIZE, SIZE)
    pool, test = all_items(dm.pool), all_items(dm.test)
    assert len(dm.pool) == 9 and len(dm.test) == 3
    for items in (pool, test):
        assert items["x"].dtype == torch.float32 and items["y"].dtype == torch.long
        assert 0 <= float(items["x"].min()) and float(items["x"].max()) <= 1
        assert torch.equal(labels_of_shades(items["x"]), items["y"])  # every image carries its own class
    assert sorted(test["y"].tolist()) == [0, 1, 2]  # stratified


def test_three_channels_replicate_the_grey_image(tmp_path):
    dm = module(write_folder(tmp_path / "data"), channels=3)
    x = dm.pool[0]["x"]
    assert x.shape == (3, SIZE, SIZE) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_masks_are_resized_with_nearest_neighbour_and_binarised(tmp_path):
    by_hand = np.zeros((SIZE, SIZE), dtype=bool)  # rows 3..12 -> 1..4, cols 4..13 -> 2..5, column 18 -> 7
    by_hand[1:5, 2:6] = True
    by_hand[:, 7] = True
    assert np.array_equal(nearest(relevant(0), SIZE), by_hand)
    dm = module(write_folder(tmp_path / "data"))
    for i in range(len(dm.pool)):
        mask = dm.ground_truth(i, "mask")
        assert mask.dtype == torch.bool and mask.shape == (1, SIZE, SIZE)
        assert np.array_equal(mask[0].numpy(), nearest(relevant(dm.true_label(i)), SIZE))


def test_masks_stored_as_zero_one_count_one_as_relevant(tmp_path):
    root = write_folder(tmp_path / "data")
    file = root / "Normal" / "masks" / "Normal-0.png"
    Image.fromarray(relevant(1).astype(np.uint8)).save(file)  # values 0 and 1
    dm = module(root, test_size=3)
    i = next(i for i in range(len(dm.pool)) if round(float(dm.pool[i]["x"][0, 0, 0]) * 255) == shade(1, 0))
    assert np.array_equal(dm.ground_truth(i, "mask")[0].numpy(), nearest(relevant(1), SIZE))


def test_mask_is_oracle_only(tmp_path):
    dm = module(write_folder(tmp_path / "data"))
    assert "mask" not in dm.pool[0] and "mask" not in dm.pool_item(0) and "mask" not in dm.test[0]
    dm.label([0, 1], [dm.true_label(0), dm.true_label(1)])
    for loader in (dm.train_dataloader(), dm.pool_dataloader(), dm.test_dataloader()):
        assert "mask" not in next(iter(loader))
    assert dm.ground_truth(0, "mask").any()
    assert next(iter(dm.test_ground_truth_dataloader()))["mask"].shape == (3, 1, SIZE, SIZE)  # for metrics


def test_stratified_split_is_fixed_by_split_seed_not_the_run_seed(tmp_path):
    root = write_folder(tmp_path / "data", per_class=6)
    a, b = module(root, test_size=0.5, seed=1), module(root, test_size=0.5, seed=2)
    other = module(root, test_size=0.5, split_seed=1)
    assert torch.equal(all_items(a.test)["x"], all_items(b.test)["x"])
    assert torch.equal(all_items(a.pool)["x"], all_items(b.pool)["x"])
    assert not torch.equal(all_items(a.test)["x"], all_items(other.test)["x"])
    assert torch.bincount(all_items(a.test)["y"]).tolist() == [3, 3, 3]


@pytest.mark.parametrize("make", ["absent", "empty", "nested"])
def test_missing_data_says_what_layout_and_where_to_get_it(tmp_path, make):
    root = tmp_path / "covid"
    if make == "empty":
        root.mkdir()
    if make == "nested":
        write_folder(root / "COVID-19_Radiography_Dataset")
    with pytest.raises(DataMissing) as e:
        module(root)
    message = str(e.value)
    assert str(root) in message and "<class>/images/" in message and "<class>/masks/" in message
    assert "tawsifurrahman/covid19-radiography-database" in message and "unpack it yourself" in message
    if make == "nested":
        assert f"dataset.root={root / 'COVID-19_Radiography_Dataset'}" in message


def test_missing_mask_is_an_error_naming_the_file(tmp_path):
    root = write_folder(tmp_path / "data", no_mask=("Normal-2.png",))
    with pytest.raises(DataMissing, match="Normal-2.png") as e:
        module(root)
    assert "missing_mask=skip" in str(e.value)


def test_missing_mask_skip_and_full(tmp_path):
    root = write_folder(tmp_path / "data", no_mask=("Normal-2.png",))
    skipped = module(root, missing_mask="skip", test_size=3)
    assert len(skipped.pool) + len(skipped.test) == 11
    assert shade(1, 2) not in (all_items(skipped.pool)["x"][:, 0, 0, 0] * 255).round().long().tolist()
    full = module(root, missing_mask="full", test_size=3)
    i = next(i for i in range(len(full.pool)) if round(float(full.pool[i]["x"][0, 0, 0]) * 255) == shade(1, 2))
    assert bool(full.ground_truth(i, "mask").all())


def test_explicit_train_val_test_folders(tmp_path):
    root = tmp_path / "data"
    write_folder(root / "train", per_class=3)
    write_folder(root / "val", per_class=1)
    write_folder(root / "test", per_class=2, classes=CLASSES[:2])  # a class may lack test images
    dm = module(root, test_size=0.9)  # ignored: the folders split the data
    assert dm.class_names == CLASSES
    assert len(dm.pool) == 9 and len(dm.val) == 3 and len(dm.test) == 4
    assert torch.equal(labels_of_shades(all_items(dm.test)["x"]), all_items(dm.test)["y"])
    assert sorted(all_items(dm.test)["y"].tolist()) == [0, 0, 1, 1]


def test_classes_choose_a_subset_in_label_order(tmp_path):
    dm = module(write_folder(tmp_path / "data"), classes=["Normal", "COVID"])
    assert dm.class_names == ["Normal", "COVID"] and dm.num_classes == 2
    pool = all_items(dm.pool)
    assert torch.equal(labels_of_shades(pool["x"]), 1 - pool["y"])  # Normal (folder class 1) is label 0


def test_max_per_class_caps_every_class(tmp_path):
    dm = module(write_folder(tmp_path / "data", per_class=6), max_per_class=2, test_size=3)
    assert torch.bincount(all_items(dm.pool)["y"]).tolist() == [1, 1, 1]
    assert torch.bincount(all_items(dm.test)["y"]).tolist() == [1, 1, 1]


def test_mask_folder_config_composes_and_builds(tmp_path):
    root = write_folder(tmp_path / "data")
    cfg = compose(["dataset=mask_folder", f"dataset.root={root}", f"dataset.image_size={SIZE}"], tmp_path / "run")
    dm = instantiate(cfg.dataset)
    assert dm.class_names == CLASSES and dm.input_shape == (1, SIZE, SIZE) and dm.num_classes == 3


def test_covid_radiography_preset_reads_the_kaggle_layout(tmp_path):
    kaggle = ["COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"]
    write_folder(tmp_path / "data" / "covid19_radiography", per_class=5, classes=kaggle)
    cfg = compose(["dataset=covid_radiography", f"paths.data_dir={tmp_path / 'data'}", f"dataset.image_size={SIZE}"],
                  tmp_path / "run")
    dm = instantiate(cfg.dataset)
    assert dm.class_names == kaggle and dm.input_shape == (3, SIZE, SIZE)
    assert len(dm.pool) == 16 and len(dm.test) == 4


def test_a_test_folder_without_images_is_reported(tmp_path):
    root = tmp_path / "data"
    write_folder(root / "train", per_class=2)
    (root / "test" / "COVID" / "images").mkdir(parents=True)
    with pytest.raises(DataMissing, match="no test images"):
        module(root)
