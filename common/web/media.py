"""Images for the web page: PNGs encoded once, kept in memory under random ids, served by id only.

Nothing from the disk is served by name (no path can be asked for), and the store is bounded: the oldest
images go first once ``capacity`` are held.
"""

from __future__ import annotations

import base64
import io
import secrets
import threading
from collections import OrderedDict

import numpy as np
import torch

from exil.common.abilities import HasTexts
from exil.common.display import as_display


class Media:
    """An in-memory store of PNGs, each at ``/media/<id>.png``."""

    def __init__(self, capacity: int = 20000):
        self.capacity = capacity
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def png(self, a: np.ndarray) -> str:
        """The URL of an (H, W) or (H, W, 3|4) uint8 array, encoded as PNG."""
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG", compress_level=1)
        key = secrets.token_urlsafe(9)
        with self._lock:
            self._items[key] = buf.getvalue()
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return f"media/{key}.png"

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._items.get(key)

    def image(self, x: torch.Tensor) -> dict:
        """``{"src", "width", "height"}`` of an image tensor (C, H, W) or (H, W) in [0, 1], at its own size
        (the page scales it up, pixelated)."""
        a = (as_display(x) * 255).round().astype(np.uint8)
        return {"src": self.png(a), "width": int(a.shape[1]), "height": int(a.shape[0])}

    def overlay(self, x: torch.Tensor, heat: torch.Tensor, scale: tuple[float, float] | None = None) -> dict:
        """The image in grey with ``heat`` (H, W) over it in red: where a model looks. ``scale``: the (low, high)
        values mapped to none and full red — one scale for maps shown side by side, so their reds compare
        (None: this map's own min and max)."""
        grey = as_display(x)
        grey = grey.mean(-1) if grey.ndim == 3 else grey
        h = heat.detach().float().cpu().numpy()
        lo, hi = scale if scale is not None else (float(h.min()), float(h.max()))
        h = np.clip((h - lo) / max(hi - lo, 1e-12), 0, 1)
        alpha = 0.6 * h
        rgb = np.stack([grey * (1 - alpha) + alpha, grey * (1 - alpha), grey * (1 - alpha)], -1)
        a = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
        return {"src": self.png(a), "width": int(a.shape[1]), "height": int(a.shape[0])}


def label_map(m: np.ndarray | torch.Tensor) -> dict:
    """An (H, W) map of small non-negative ints (< 256) as ``{"width", "height", "data": base64 bytes}``,
    row-major: what the page needs to know which region is under the pointer."""
    a = np.asarray(m.cpu() if torch.is_tensor(m) else m).astype(np.uint8)
    return {"width": int(a.shape[1]), "height": int(a.shape[0]), "data": base64.b64encode(a.tobytes()).decode()}


def item_view(ctx, item: int, media: Media) -> dict:
    """What a person sees of a pool item: ``{"text": [parts]}`` for text data, else ``{"image": {...}}``."""
    dm = ctx.datamodule
    if isinstance(dm, HasTexts):
        return {"text": list(dm.text_of(item))}
    x = dm.pool_item(item).get("x")
    if torch.is_tensor(x) and x.dim() in (2, 3):
        return {"image": media.image(x)}
    return {"features": x.tolist() if torch.is_tensor(x) else x}
