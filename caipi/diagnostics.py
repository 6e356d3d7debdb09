"""Does a model use the decoy? Two behavioural measures on decoy data (Ross et al. 2017's swatches),
independent of any explainer, for the test set (whose swatch shows the shade of a random label).

* ``test/decoy_agreement`` — the share of test items predicted as the label their swatch's shade
  encodes, P(ŷ = decoy_y). A model blind to the swatch agrees by chance, about 1/K (K classes);
  a model that reads the shade agrees more.
* ``test/acc_noise_swatch`` — test accuracy with every swatch pixel replaced by its own
  u ~ U[0, 1] (per-pixel noise, what ``cx_strategy=randomise`` puts in a counterexample), beside the
  plain ``test/acc`` (a uniform swatch, as every real decoy). A model that learned "a noisy swatch
  means: look elsewhere" but still reads uniform ones scores much higher here than on ``test/acc``.
* ``test/acc_label_swatch`` — test accuracy with every swatch showing its item's *true* label's
  shade, (255 − shade_step · y) / 255, as in training (for a data module with ``decoy_args``). Its
  excess over ``test/acc`` is what the model gains from reading the shade: 0 for a model blind to it.

The noise is drawn from a fixed seed, so two runs are compared on the same images.
"""

from __future__ import annotations

from typing import Any

import torch

from exil.common.explain.metrics import as_mask

NOISE_SEED = 0


@torch.no_grad()
def decoy_diagnostics(module: Any, datamodule: Any, device: torch.device) -> dict[str, float]:
    """The module docstring's measures; ``{}`` when the test set has no ``decoy`` / ``decoy_y`` field."""
    was_training = module.training
    module.eval()
    generator = torch.Generator().manual_seed(NOISE_SEED)
    step = (getattr(datamodule, "decoy_args", None) or {}).get("shade_step")
    agree = right_noise = right_label = n = 0
    try:
        for batch in datamodule.test_ground_truth_dataloader():
            if "decoy" not in batch or "decoy_y" not in batch:
                return {}
            x = module.inputs(batch).to(device)
            swatch = as_mask(batch["decoy"]).to(device).unsqueeze(1).expand_as(x)
            noise = torch.rand(x.shape, generator=generator).to(device, x.dtype)
            pred = module(x).argmax(-1).cpu()
            pred_noise = module(torch.where(swatch, noise, x)).argmax(-1).cpu()
            if step is not None:
                label_shade = ((255.0 - step * batch["y"].to(x.dtype)) / 255.0).to(device).view(-1, *[1] * (x.dim() - 1))
                right_label += int((module(torch.where(swatch, label_shade, x)).argmax(-1).cpu() == batch["y"]).sum())
            agree += int((pred == batch["decoy_y"]).sum())
            right_noise += int((pred_noise == batch["y"]).sum())
            n += len(x)
    finally:
        module.train(was_training)
    out = {"test/decoy_agreement": agree / max(n, 1), "test/acc_noise_swatch": right_noise / max(n, 1)}
    if step is not None:
        out["test/acc_label_swatch"] = right_label / max(n, 1)
    return out
