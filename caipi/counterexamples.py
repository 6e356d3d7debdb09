"""CAIPI's counterexamples (Teso & Kersting, AIES 2019, section 3): when the learner is right for
the wrong reasons, every component the teacher marks as wrongly relevant is changed in ``c`` copies
of the query, which keep the (correct) predicted label — evidence that the component does not
matter. Four ways to change it:

* ``randomise``    — the component's pixels / features drawn uniformly from ``[low, high]``, each
  on its own (per-pixel noise);
* ``shade``        — the whole component set to one value v ~ U[low, high] per copy (a uniform
  patch of a random shade: for a decoy swatch, which is itself one uniform shade, a copy that
  looks like a real swatch of another class);
* ``alternatives`` — the component set to other values from a finite set (the colours of the
  colors problem), one copy per alternative value different from the current one (``c`` caps them);
* ``substitute``   — the component's values taken from another training example of the same class
  (a donor, drawn at random per copy).

All functions work on a batch: inputs ``x`` (B, *S) (e.g. S = (C, H, W)), masks (B, *S') that
broadcast against ``x`` after unsqueezing channel dimensions (e.g. (B, H, W) for images), and
return (B, c, *S). Randomness comes from ``generator``, so a run replays exactly.
"""

from __future__ import annotations

from typing import Sequence

import torch

STRATEGIES = ("randomise", "shade", "alternatives", "substitute")


def _broadcast(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    m = mask.bool().to(x.device)
    while m.dim() < x.dim():
        m = m.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W): the same mask for every channel
    return m.expand_as(x)


def randomise(x: torch.Tensor, mask: torch.Tensor, c: int, generator: torch.Generator,
              low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """``c`` copies of each item with the masked entries drawn uniformly from [low, high]."""
    m = _broadcast(mask, x).unsqueeze(1)
    noise = torch.rand((x.shape[0], c, *x.shape[1:]), generator=generator, dtype=x.dtype, device=generator.device)
    noise = low + (high - low) * noise.to(x.device)
    return torch.where(m, noise, x.unsqueeze(1))


def shade(x: torch.Tensor, mask: torch.Tensor, c: int, generator: torch.Generator,
          low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """``c`` copies of each item with all its masked entries set to one value v ~ U[low, high], drawn per copy."""
    m = _broadcast(mask, x).unsqueeze(1)
    v = torch.rand((x.shape[0], c), generator=generator, dtype=x.dtype, device=generator.device)
    v = (low + (high - low) * v.to(x.device)).view(x.shape[0], c, *([1] * (x.dim() - 1)))
    return torch.where(m, v, x.unsqueeze(1))


def alternatives(x: torch.Tensor, mask: torch.Tensor, values: Sequence[float] | torch.Tensor,
                 c: int | None = None) -> torch.Tensor:
    """One copy per value in ``values`` with every masked entry set to it, skipping copies identical to the
    item (the value it already has everywhere in the mask); at most ``c`` copies, padded by repeating the
    last valid copy so that every item has the same number. Items whose mask is empty are returned as is."""
    vals = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    m = _broadcast(mask, x)
    copies = torch.where(m.unsqueeze(1), vals.view(1, -1, *([1] * (x.dim() - 1))), x.unsqueeze(1))  # (B, V, *S)
    same = (copies == x.unsqueeze(1)).flatten(2).all(-1)  # (B, V): value already in place
    order = torch.argsort(same.to(torch.int8), dim=1, stable=True)  # changed copies first, in value order
    n_changed = (~same).sum(1)
    k = len(vals) if c is None else min(c, len(vals))
    pos = torch.arange(k, device=x.device).unsqueeze(0)
    pos = torch.minimum(pos, (n_changed - 1).clamp_min(0).unsqueeze(1))
    picked = order.gather(1, pos)
    return copies[torch.arange(len(x), device=x.device).unsqueeze(1), picked]


def substitute(x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, donors: torch.Tensor,
               donor_labels: torch.Tensor, c: int, generator: torch.Generator,
               exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``c`` copies with the masked entries taken from random donors of the item's class.

    ``exclude`` (B,) are donor positions not to use for each item (the item itself, when it is among
    the donors). A class without another donor leaves its items unchanged.
    """
    donor_labels = donor_labels.to(x.device)
    same = labels.to(x.device).unsqueeze(1) == donor_labels.unsqueeze(0)  # (B, N)
    if exclude is not None:
        same[torch.arange(len(x), device=x.device), exclude.to(x.device)] = False
    weights = same.float()
    has = weights.sum(1) > 0
    weights[~has] = 1.0  # placeholder draw, discarded below
    pick = torch.multinomial(weights.cpu(), c, replacement=True, generator=generator).to(x.device)  # (B, c)
    src = donors.to(x.device)[pick]  # (B, c, *S)
    m = _broadcast(mask, x).unsqueeze(1) & has.view(-1, *([1] * x.dim()))
    return torch.where(m, src, x.unsqueeze(1))
