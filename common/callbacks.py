"""Lightning callbacks a run can add with ``callbacks=<name>`` (besides the method's round hooks).

:class:`EpochTestAccuracy` measures test accuracy after every training epoch and appends
``epoch,acc`` rows to ``<round dir>/epochs.csv`` — convergence curves (accuracy per epoch) as in
Tao & Shokri (2025)'s comparison of alternating and joint training. It only observes: the test
set never steers training.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch


class EpochTestAccuracy(pl.Callback):
    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        was = module.training
        module.eval()
        correct = total = 0
        try:
            with torch.no_grad():
                for batch in trainer.datamodule.test_dataloader():
                    pred = module(module.inputs(batch).to(module.device)).argmax(-1).cpu()
                    correct += int((pred == batch["y"]).sum())
                    total += len(pred)
        finally:
            module.train(was)
        path = Path(trainer.default_root_dir) / "epochs.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with open(path, "a") as f:
            if new:
                f.write("epoch,acc\n")
            f.write(f"{trainer.current_epoch},{correct / max(total, 1):.6f}\n")
