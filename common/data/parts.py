"""Images with named part locations — the data ALICE's semantic grounding reads (CUB-200-2011, the
Fashion-MNIST garment proxy), and a contrastive explanation per class pair for a simulated expert.

Every item has

* ``x`` (C, H, W) float in [0, 1] and ``y``;
* ``parts`` (P, 3) float: per part of :attr:`PartsDataModule.part_names`, its location (column,
  row) in pixel coordinates of ``x`` and whether it is visible (1.0) in this image;
* ``box`` (4,) float ``[x0, y0, x1, y1]``: the region of ``x`` the model looks at — the whole image
  for pool items; an extra example that is a *crop* of a part keeps its origin's ``x`` and gets the
  part's box instead (``crop`` True), and the model crops and resizes the batch on its device
  (:func:`crop_to_boxes`), so a crop costs four numbers in the journal, not an image.

Images are kept as uint8 (:class:`ByteImages`: CUB at 448 × 448 is 0.6 MB per image as bytes,
2.4 MB as floats) and converted when a batch is fetched.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from exil.common.data.base import PoolDataModule

from exil.common.data.items import ByteImages, TensorItems
from exil.common.errors import ExilError


def part_items(x: torch.Tensor, y: torch.Tensor, parts: torch.Tensor) -> ByteImages | TensorItems:
    """Items with ``parts``, a whole-image ``box`` and ``crop`` False (module docstring). ``x`` (N, C, H, W)
    uint8 (kept as bytes) or float in [0, 1]."""
    n, _, h, w = x.shape
    if parts.shape[0] != n or parts.dim() != 3 or parts.shape[2] != 3:
        raise ValueError(f"parts must be (N={n}, P, 3), got {tuple(parts.shape)}")
    box = torch.tensor([0.0, 0.0, float(w), float(h)]).expand(n, 4).clone()
    kind = ByteImages if x.dtype == torch.uint8 else TensorItems
    return kind(x=x, y=y.long(), parts=parts.float(), box=box, crop=torch.zeros(n, dtype=torch.bool))


def crop_to_boxes(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Crop each image of ``x`` (B, C, H, W) to its box ``[x0, y0, x1, y1]`` (pixels) and resize the crop to
    H × W (bilinear: ``torchvision.ops.roi_align``, one sample at each output pixel's centre): one
    batched, differentiable call on ``x``'s device."""
    from torchvision.ops import roi_align

    h, w = x.shape[-2:]
    rois = torch.cat([torch.arange(len(x), device=x.device, dtype=x.dtype).unsqueeze(1), boxes.to(x)], dim=1)
    return roi_align(x, rois, output_size=(h, w), spatial_scale=1.0, sampling_ratio=1, aligned=True)


class PartsDataModule(PoolDataModule):
    """A pool of part-annotated images (module docstring). Subclasses set :attr:`part_names`,
    :attr:`coarse_names` and :attr:`coarse_of` (fine class → coarse group, for the coarse accuracy)
    and may answer :meth:`contrast_explanation` (a simulated expert's sentence for a class pair)."""

    part_names: list[str] = []
    coarse_names: list[str] = []
    coarse_of: list[int] = []

    def part_locations(self, items: Sequence[int]) -> torch.Tensor:
        """``parts`` (N, P, 3) of pool items."""
        self.setup()
        if len(items) == 0:
            return torch.zeros(0, len(self.part_names), 3)
        return self.pool.__getitems__([int(i) for i in items])["parts"]

    def image_hw(self) -> tuple[int, int]:
        h, w = self.input_shape[-2:]
        return int(h), int(w)

    def contrast_explanation(self, p: int, q: int) -> str:
        raise ExilError(f"{type(self).__name__} has no simulated expert explanations of class pairs; "
                        "use oracle=terminal or a dataset with an explanation bank")

    def coarse_labels(self, fine: np.ndarray | torch.Tensor) -> np.ndarray:
        return np.asarray(self.coarse_of)[np.asarray(fine, dtype=np.int64)]
