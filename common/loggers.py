"""exil's own Lightning loggers: Lightning's, less what makes them noisy on every run.

* :class:`WandbLogger`: Lightning's W&B logger always passes ``anonymous=None`` to ``wandb.init``, and W&B
  (0.19 and later) answers any ``anonymous`` it is given with ``The anonymous setting has no effect and will be
  removed in a future version`` — once a run. This one passes ``anonymous`` only when it is set
  (``logger.wandb.anonymous=true``: W&B's own warning then says what it does today). Everything else is
  Lightning's; the class keeps the name ``WandbLogger`` that the run log and reports look for.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger


class WandbLogger(_LightningWandbLogger):
    """:class:`lightning.pytorch.loggers.WandbLogger` without the ``anonymous=None`` (module docstring)."""

    def __init__(self, *args: Any, anonymous: bool | None = None, **kwargs: Any):
        super().__init__(*args, anonymous=anonymous, **kwargs)
        if anonymous is None:
            self._wandb_init.pop("anonymous", None)
