"""CUB-200-2011 (Wah et al. 2011) in its standard layout, for ALICE's bird experiments.

``root`` is the unpacked ``CUB_200_2011`` folder:

* ``images.txt`` (``<image id> <path under images/>``), ``image_class_labels.txt`` (``<image id>
  <class id>``), ``train_test_split.txt`` (``<image id> <1 = train>``), ``classes.txt`` (``<class id>
  <nnn.Name_With_Underscores>``);
* ``parts/parts.txt`` (15 parts) and ``parts/part_locs.txt`` (``<image id> <part id> <x> <y>
  <visible>``): the locations ALICE grounds explanations in. They are mapped onto the parser's bird
  vocabulary: beak → bill, left/right eye → eye, left/right wing → wing, left/right leg → leg (also
  ``foot``, which CUB does not annotate separately); the two sides are averaged where both are visible;
* ``attributes/class_attribute_labels_continuous.txt`` (200 × 312 percentages) and ``attributes.txt``
  (in the folder or its parent, as the archive ships it): the simulated expert. For a class pair the
  attribute groups with a body part (``has_bill_shape``, ``has_wing_color``, ...) are ranked by the L1
  distance between the two classes' value distributions, and the top ``contrast_parts`` groups whose
  most frequent values differ become one sentence: "California Gull has a yellow bill and a grey
  back, while Ring billed Gull has a black bill and a white back" — a simulation of an expert built
  from annotations, not an expert.

The subset: ``species`` (class ids or names), or ``families`` × ``per_family`` — the first species (by
id) whose name ends in each family word. The default is five families of five species (gulls, terns,
sparrows, warblers, wrens): 25 species as in the paper, from families whose members look alike. (We
could not confirm the paper's exact 25; set ``species`` to use another list.) The coarse group of a
species (for the coarse accuracy) is its family, the last word of its name. ``images_per_class``
training images per species (the first, by image id) form the pool; the test set is every test image
of those species. Images are resized to ``image_size`` (448 in the paper) and kept as bytes.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from exil.common.data.parts import PartsDataModule, part_items
from exil.common.errors import ConfigError, DataMissing, ExilError

BIRD_PART_NAMES = ["bill", "crown", "nape", "throat", "eye", "forehead", "breast", "belly", "back", "wing", "tail",
                   "leg", "foot"]
CUB_PART_MAP = {"back": ["back"], "beak": ["bill"], "belly": ["belly"], "breast": ["breast"], "crown": ["crown"],
                "forehead": ["forehead"], "left eye": ["eye"], "right eye": ["eye"], "left leg": ["leg", "foot"],
                "right leg": ["leg", "foot"], "left wing": ["wing"], "right wing": ["wing"], "nape": ["nape"],
                "tail": ["tail"], "throat": ["throat"]}
ATTRIBUTE_PART = {"bill": "bill", "wing": "wing", "upperparts": "back", "underparts": "belly", "breast": "breast",
                  "back": "back", "tail": "tail", "upper_tail": "tail", "under_tail": "tail", "head": "crown",
                  "throat": "throat", "eye": "eye", "forehead": "forehead", "nape": "nape", "belly": "belly",
                  "leg": "leg", "crown": "crown"}
DEFAULT_FAMILIES = ["Gull", "Tern", "Sparrow", "Warbler", "Wren"]
REQUIRED = ["images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "parts/parts.txt",
            "parts/part_locs.txt"]


def _rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def species_name(raw: str) -> str:
    """``059.California_Gull`` → ``California Gull``."""
    return raw.split(".", 1)[-1].replace("_", " ")


def attribute_part(group: str) -> str | None:
    """``has_upper_tail_color`` → ``tail``; groups without a body part (size, shape, primary colour) → None."""
    body = group.removeprefix("has_").rsplit("_", 1)[0]
    return ATTRIBUTE_PART.get(body)


class CUBDataModule(PartsDataModule):
    """CUB-200-2011, a species subset with k images per class (module docstring).

    Args:
        root: the ``CUB_200_2011`` folder.
        species: class ids (1-based, as ``classes.txt``) or names; ``None``: ``families`` × ``per_family``.
        families, per_family: the default subset.
        images_per_class: k training images per species in the pool.
        image_size: side images are resized to.
        contrast_parts: attribute groups per simulated explanation.
        **kwargs: :class:`PoolDataModule` arguments.
    """

    part_names = BIRD_PART_NAMES

    def __init__(self, root: str | None = None, species: Sequence[int | str] | None = None,
                 families: Sequence[str] = tuple(DEFAULT_FAMILIES), per_family: int = 5, images_per_class: int = 15,
                 image_size: int = 448, contrast_parts: int = 2, **kwargs: Any):
        super().__init__(**kwargs)
        if not root:
            raise ConfigError("dataset.root must be the unpacked CUB_200_2011 folder (download CUB_200_2011.tgz from "
                              "https://www.vision.caltech.edu/datasets/cub_200_2011/ and unpack it)")
        self.root = Path(root)
        self.species_arg, self.families, self.per_family = species, list(families), per_family
        self.images_per_class, self.image_size, self.contrast_parts = images_per_class, image_size, contrast_parts

    # ------------------------------------------------------------------ loading
    def _check(self) -> None:
        missing = [f for f in REQUIRED if not (self.root / f).exists()]
        if missing:
            raise DataMissing(f"{self.root} is not a CUB_200_2011 folder: missing {', '.join(missing)}. Download "
                              "CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/, unpack it "
                              "and set dataset.root to its CUB_200_2011 folder")

    def _select_species(self, names: dict[int, str]) -> list[int]:
        if self.species_arg is not None:
            by_name = {species_name(n).lower(): c for c, n in names.items()}
            out = []
            for s in self.species_arg:
                c = int(s) if str(s).isdigit() else by_name.get(species_name(str(s)).lower())
                if c not in names:
                    raise ConfigError(f"dataset.species: {s!r} is not a CUB class (ids 1..{len(names)} or names "
                                      f"like {species_name(names[min(names)])!r})")
                out.append(c)
            return out
        out = []
        for family in self.families:
            members = [c for c in sorted(names) if species_name(names[c]).split()[-1].lower() == family.lower()]
            if len(members) < self.per_family:
                raise ConfigError(f"dataset.families: {family!r} has {len(members)} CUB species, fewer than "
                                  f"per_family={self.per_family}")
            out += members[: self.per_family]
        return out

    def load(self):
        self._check()
        names = {int(r[0]): r[1] for r in _rows(self.root / "classes.txt")}
        chosen = self._select_species(names)
        self._species = chosen
        self._names = [species_name(names[c]) for c in chosen]
        families = [n.split()[-1] for n in self._names]
        self.coarse_names = sorted(set(families), key=families.index)
        self.coarse_of = [self.coarse_names.index(f) for f in families]
        label_of = {c: i for i, c in enumerate(chosen)}
        paths = {int(r[0]): r[1] for r in _rows(self.root / "images.txt")}
        cls = {int(r[0]): int(r[1]) for r in _rows(self.root / "image_class_labels.txt")}
        train = {int(r[0]): r[1] == "1" for r in _rows(self.root / "train_test_split.txt")}
        ids = [i for i in sorted(paths) if cls[i] in label_of]
        by_class: dict[int, list[int]] = {c: [] for c in chosen}
        for i in ids:
            if train[i]:
                by_class[cls[i]].append(i)
        pool = [i for c in chosen for i in by_class[c][: self.images_per_class]]
        test = [i for i in ids if not train[i]]
        if not test:
            raise ExilError(f"{self.root}: the chosen species have no test images")
        locs = self._part_locations()
        return (self._items(pool, paths, cls, label_of, locs), None, self._items(test, paths, cls, label_of, locs))

    def _part_locations(self) -> dict[int, np.ndarray]:
        """image id → (P, 3) [x, y, visible] in original pixels, on the bird vocabulary."""
        cub_parts = {int(r[0]): " ".join(r[1:]) for r in _rows(self.root / "parts" / "parts.txt")}
        sums: dict[int, np.ndarray] = {}
        for r in _rows(self.root / "parts" / "part_locs.txt"):
            image, part, x, y, visible = int(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[4])
            acc = sums.setdefault(image, np.zeros((len(BIRD_PART_NAMES), 3)))
            if visible > 0:
                for name in CUB_PART_MAP.get(cub_parts[part], []):
                    acc[BIRD_PART_NAMES.index(name)] += (x, y, 1.0)
        out = {}
        for image, acc in sums.items():
            loc = np.zeros_like(acc)
            seen = acc[:, 2] > 0
            loc[seen, :2] = acc[seen, :2] / acc[seen, 2:3]
            loc[seen, 2] = 1.0
            out[image] = loc
        return out

    def _items(self, ids, paths, cls, label_of, locs):
        from PIL import Image

        s = self.image_size
        x = torch.empty(len(ids), 3, s, s, dtype=torch.uint8)
        parts = torch.zeros(len(ids), len(BIRD_PART_NAMES), 3)
        for k, i in enumerate(ids):
            with Image.open(self.root / "images" / paths[i]) as im:
                im = im.convert("RGB")
                w, h = im.size
                x[k] = torch.from_numpy(np.array(im.resize((s, s), Image.BILINEAR))).permute(2, 0, 1)
            if i in locs:
                loc = torch.from_numpy(locs[i]).float()
                parts[k] = loc * torch.tensor([s / w, s / h, 1.0])
        y = torch.tensor([label_of[cls[i]] for i in ids])
        return part_items(x, y, parts)

    @property
    def class_names(self) -> list[str]:
        self.setup()
        return list(self._names)

    # ------------------------------------------------------------------ the simulated expert
    @cached_property
    def _attributes(self) -> tuple[np.ndarray, list[tuple[str, str]], dict[str, list[int]]]:
        """Class-level attribute values (200, 312), (group, value) names, and the part groups' attribute
        columns: read once, at the expert's first question."""
        table = self.root / "attributes" / "class_attribute_labels_continuous.txt"
        names = next((p for p in (self.root / "attributes" / "attributes.txt", self.root / "attributes.txt",
                                  self.root.parent / "attributes.txt") if p.exists()), None)
        if not table.exists() or names is None:
            raise DataMissing(f"the simulated CUB expert needs {table} and attributes.txt (in {self.root}, its "
                              "attributes/ folder or its parent, as CUB_200_2011.tgz unpacks them)")
        values = np.loadtxt(table, ndmin=2)
        attrs = [tuple(" ".join(r[1:]).split("::", 1)) for r in _rows(names)]
        groups: dict[str, list[int]] = {}
        for k, (group, _) in enumerate(attrs):
            if attribute_part(group):
                groups.setdefault(group, []).append(k)
        return values, attrs, groups

    def contrast_explanation(self, p: int, q: int) -> str:
        """A sentence from the class-level attribute differences (module docstring)."""
        self.setup()
        values, attrs, groups = self._attributes
        a, b = values[self._species[p] - 1], values[self._species[q] - 1]
        ranked = sorted(groups, key=lambda g: -np.abs(a[groups[g]] - b[groups[g]]).sum())
        phrases_p, phrases_q = [], []
        for g in ranked:
            va, vb = attrs[groups[g][int(np.argmax(a[groups[g]]))]][1], attrs[groups[g][int(np.argmax(b[groups[g]]))]][1]
            if va != vb:
                part = attribute_part(g)
                phrases_p.append(f"a {va.replace('_', ' ')} {part}")
                phrases_q.append(f"a {vb.replace('_', ' ')} {part}")
            if len(phrases_p) == self.contrast_parts:
                break
        if not phrases_p:
            return f"{self._names[p]} and {self._names[q]} look alike"
        return (f"{self._names[p]} has {' and '.join(phrases_p)}, while {self._names[q]} has "
                f"{' and '.join(phrases_q)}")
