"""ALICE's semantic grounding (Liang, Zou & Yu 2020, section 3.3): the parts an explanation mentions,
cropped from every training image of the two classes and resized to full resolution — extra training
images for the local classifier of the pair's group.

Where a part is comes from a :class:`BoxProvider`, so annotations and detectors are interchangeable:

* :class:`PartBoxes`: boxes around the dataset's part locations (CUB's ``part_locs.txt``, the
  Fashion-MNIST proxy's silhouette points): a square of side ``size`` × the image's shorter side,
  centred on the part and shifted to lie inside the image; a part not visible in an image gives no box;
* :class:`RandomBoxes`: the same number of boxes of the same size at uniformly random places — the
  paper's "random grounding" ablation.

A detector (the paper's PIPA experiments used one) is one more subclass whose ``boxes`` returns
``(item, part, box)`` rows. A crop is an :class:`~exil.common.data.pool_state.Extra` holding only its box (see
:mod:`exil.common.data.parts`); the model cuts it out of the origin image on its own device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch

from exil.common.data.parts import PartsDataModule
from exil.common.data.pool_state import Extra
from exil.common.errors import ConfigError


class BoxProvider(ABC):
    """``boxes(dm, items, parts, generator)`` → ``(rows, boxes)``: rows (K, 2) of (item, part position in
    ``parts``) and boxes (K, 4) ``[x0, y0, x1, y1]`` in pixels of the item's image."""

    def __init__(self, size: float = 0.5):
        if not 0 < size <= 1:
            raise ConfigError(f"grounding box size must be in (0, 1] (a fraction of the image side), got {size}")
        self.size = size

    @abstractmethod
    def boxes(self, dm: PartsDataModule, items: Sequence[int], parts: Sequence[str],
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...

    def square(self, centres: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Squares of side ``size · min(h, w)`` around ``centres`` (K, 2), shifted to lie inside the image."""
        side = self.size * min(h, w)
        lo = torch.stack([(centres[:, 0] - side / 2).clamp(0, w - side), (centres[:, 1] - side / 2).clamp(0, h - side)], 1)
        return torch.cat([lo, lo + side], 1)


def part_positions(dm: PartsDataModule, parts: Sequence[str]) -> list[int]:
    """Positions of ``parts`` in the dataset's part vocabulary (unknown names are an error)."""
    names = list(dm.part_names)
    unknown = [p for p in parts if p not in names]
    if unknown:
        raise ConfigError(f"the parser's lexicon yields parts {unknown} that {type(dm).__name__} does not locate; "
                          f"its parts: {', '.join(names)} (method.hooks.lexicon must match the dataset)")
    return [names.index(p) for p in parts]


class PartBoxes(BoxProvider):
    """Boxes around annotated part locations (module docstring)."""

    def boxes(self, dm, items, parts, generator):
        loc = dm.part_locations(items)[:, part_positions(dm, parts)]  # (N, k, 3)
        rows = (loc[..., 2] > 0).nonzero()  # (K, 2): (item row, part)
        h, w = dm.image_hw()
        return rows, self.square(loc[rows[:, 0], rows[:, 1], :2], h, w)


class RandomBoxes(PartBoxes):
    """As many boxes as :class:`PartBoxes` gives, of the same size, at random places (the ablation)."""

    def boxes(self, dm, items, parts, generator):
        rows, boxes = super().boxes(dm, items, parts, generator)
        h, w = dm.image_hw()
        centres = torch.rand(len(rows), 2, generator=generator) * torch.tensor([float(w), float(h)])
        return rows, self.square(centres, h, w)


def crop_extras(items: Sequence[int], labels: Sequence[int], rows: torch.Tensor, boxes: torch.Tensor) -> list[Extra]:
    """One extra example per box: the origin item's label, its ``box``, ``crop`` True."""
    return [Extra(fields={"box": b.float(), "crop": torch.tensor(True)}, label=int(labels[i]), origin=int(items[i]),
                  kind="crop") for (i, _), b in zip(rows.tolist(), boxes)]
