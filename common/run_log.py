"""What a run sends to its Lightning loggers (CSV, TensorBoard, W&B), and on which axes.

* **Per round** (after each evaluation and each incorporation): the metrics, with ``round``, ``n_labels``
  (labels the training set holds) and ``n_questions`` (oracle answers so far) logged beside them as values.
  The logger step is ``n_labels`` for a method that asks labels, so runs of different methods share an
  x-axis; for a method whose rounds ask no labels (eXBL, ALICE: their hooks' ``asks``) it is
  ``n_questions``, which grows every round — never one step for every round. W&B gets ``define_metric``
  for each axis, so its charts can be drawn against any of the three.
* **Per epoch** inside a round's fit (:class:`EpochLog`, a Lightning callback the loop gives each fit):
  what the module logs (``train/loss``, ``val/acc`` where there is a validation set, ...) and the learning
  rate of each optimiser group, under ``fit/``, at a round-scoped step ``round · max_epochs + epoch``
  (``fit/epoch`` for W&B), so it never disturbs the per-round step.
* **Images and tables**, bounded in size: the learning curve, a method's explanation sheets
  (``hooks.sheets``), and each round's queried items (index, score, prediction, answer), at most
  :data:`MAX_TABLE_ROWS` rows and :data:`MAX_IMAGES` images a round. TensorBoard gets the images and the
  hyperparameters (HParams, with the final metrics); CSV gets what fits in a table of numbers.
* **The end**: every logger is finalised and a W&B run finished (``wandb.finish``), so the next job of a
  multirun in the same process opens its own run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as pl

from exil.common.config_secrets import redact_config

MAX_TABLE_ROWS = 200
MAX_IMAGES = 8
AXES = ("round", "n_labels", "n_questions", "n_explanations")


def _kind(lg: Any) -> str:
    return type(lg).__name__


def _epoch_rows(lg: Any) -> list[tuple[int, dict[str, float]]]:
    """The per-epoch rows (``fit/*``) an earlier session of this run wrote to the CSV logger's file."""
    import csv
    import math

    path = Path(lg.log_dir) / "metrics.csv"
    if not path.is_file() or path.is_symlink():
        return []
    rows = []
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                fit = {}
                for k, v in row.items():
                    if k and k.startswith("fit/") and v not in ("", None):
                        try:
                            fit[k] = float(v)
                        except ValueError:
                            continue
                if fit and row.get("step") not in ("", None):
                    step = float(row["step"])
                    if math.isfinite(step):
                        rows.append((int(step), fit))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []
    return rows


class RunLog:
    """The run's loggers, with the axes and bounds of the module docstring.

    Args:
        loggers: Lightning loggers.
        label_axis: ``n_labels`` or ``n_questions``, the step of the per-round metrics.
    """

    def __init__(self, loggers: Sequence[Any] = (), label_axis: str = "n_labels"):
        if label_axis not in ("n_labels", "n_questions"):
            raise ValueError(f"label_axis must be n_labels or n_questions, got {label_axis!r}")
        self.loggers, self.axis = list(loggers), label_axis
        self._defined = False
        self._round_keys: set[str] = set()
        self.config: dict[str, Any] = {}
        self.last: dict[str, float] = {}

    # ---------------------------------------------------------------- start
    def start(self, config: dict[str, Any]) -> None:
        """The resolved config as hyperparameters (credentials in URLs redacted); W&B's axes declared. A resumed
        run's CSV keeps the per-epoch rows of its earlier sessions (Lightning's CSV writer deletes ``metrics.csv``
        when it opens it; the per-round rows come back from the journal, :meth:`ActiveLoop._replay_logs`)."""
        kept = [(lg, _epoch_rows(lg)) for lg in self.loggers if _kind(lg) == "CSVLogger"]
        self.config = redact_config(config)  # csv/hparams.yaml, TensorBoard's HParams, W&B: no credential in a URL
        for lg in self.loggers:
            if _kind(lg) != "TensorBoardLogger":  # TensorBoard's HParams need the metrics: written at the end
                lg.log_hyperparams(self.config)
        for lg, rows in kept:
            for step, row in rows:
                lg.log_metrics(row, step=step)
            if rows:
                lg.save()
        self._define_axes()

    def _define_axes(self) -> None:
        if self._defined:
            return
        for lg in self.loggers:
            if _kind(lg) == "WandbLogger":
                run = lg.experiment
                for axis in AXES:
                    run.define_metric(axis)
                run.define_metric("fit/epoch")
                run.define_metric("fit/*", step_metric="fit/epoch")
        self._defined = True

    def _define_round_keys(self, keys) -> None:
        """Every metric logged per round — the built-in ones and any method's own (``my/score``) — is drawn
        against the run's axis in W&B (``define_metric`` per key, once)."""
        new = [k for k in keys if k not in self._round_keys and k not in AXES]
        if not new:
            return
        self._round_keys.update(new)
        for lg in self.loggers:
            if _kind(lg) == "WandbLogger":
                for k in new:
                    lg.experiment.define_metric(k, step_metric=self.axis)

    # ---------------------------------------------------------------- rounds
    def round(self, r: int, metrics: dict[str, float], n_labels: int, n_questions: int) -> None:
        """Round ``r``'s metrics at the run's step (module docstring)."""
        step = n_labels if self.axis == "n_labels" else n_questions
        values = {**metrics, "round": r, "n_labels": n_labels, "n_questions": n_questions}
        self.last.update({k: v for k, v in metrics.items() if k.startswith(("test/", "val/"))})
        self._define_round_keys(values)
        for lg in self.loggers:
            lg.log_metrics(values, step=step)
            lg.save()

    def epoch(self, step: int, metrics: dict[str, float]) -> None:
        values = {f"fit/{k}" if not k.startswith("fit/") else k: v for k, v in metrics.items()}
        values["fit/epoch"] = step
        for lg in self.loggers:
            lg.log_metrics(values, step=step)

    # ---------------------------------------------------------- media, tables
    def images(self, key: str, paths: Sequence[Path], r: int) -> None:
        """Up to :data:`MAX_IMAGES` PNGs under ``key`` for round ``r``."""
        paths = [Path(p) for p in paths if Path(p).exists()][:MAX_IMAGES]
        if not paths:
            return
        for lg in self.loggers:
            kind = _kind(lg)
            if kind == "WandbLogger":
                import wandb

                lg.experiment.log({key: [wandb.Image(str(p), caption=p.stem) for p in paths], "round": r})
            elif kind == "TensorBoardLogger":
                import matplotlib.image as mpimg

                for p in paths:
                    lg.experiment.add_image(f"{key}/{p.stem}", _rgb(mpimg.imread(p)), global_step=r,
                                            dataformats="HWC")

    def table(self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], r: int) -> None:
        """A table for round ``r`` (at most :data:`MAX_TABLE_ROWS` rows): a W&B table, a TensorBoard text."""
        rows = [list(row) for row in rows[:MAX_TABLE_ROWS]]
        if not rows:
            return
        for lg in self.loggers:
            kind = _kind(lg)
            if kind == "WandbLogger":
                lg.log_table(key=key, columns=list(columns), data=rows)
            elif kind == "TensorBoardLogger":
                head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
                body = "\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in rows)
                lg.experiment.add_text(key, head + body, global_step=r)

    def final(self, metrics: dict[str, float]) -> None:
        """The run's summary values (``final/test/acc``, ``final/test/acc_auc``): the W&B summary, TensorBoard's
        HParams metrics."""
        self.last.update(metrics)
        for lg in self.loggers:
            if _kind(lg) == "WandbLogger":
                lg.experiment.summary.update(metrics)

    # ----------------------------------------------------------------- end
    def finish(self, status: str = "success") -> None:
        """Finalise every logger (TensorBoard HParams get the last test metrics) and finish the W&B run."""
        for lg in self.loggers:
            kind = _kind(lg)
            try:
                if kind == "TensorBoardLogger" and self.last:  # the HParams tab: the config beside these metrics
                    lg.log_hyperparams(self.config, metrics={f"hp/{k}": v for k, v in self.last.items()}, step=0)
                lg.finalize(status)
                if kind == "WandbLogger":
                    lg.experiment.finish(exit_code=0 if status == "success" else 1)
            except Exception:  # a logger that cannot finish must not hide the run's own outcome
                if status == "success":
                    raise


def _rgb(img):
    """An (H, W, 3) float image from what matplotlib read (grey, RGB or RGBA)."""
    import numpy as np

    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return img[..., :3]


class EpochLog(pl.Callback):
    """Sends each training epoch's logged metrics and learning rates to the run's loggers (module docstring)."""

    def __init__(self, log: RunLog, round: int):
        self.run_log, self.round = log, round

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self.run_log.loggers or trainer.global_rank != 0:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if getattr(v, "numel", lambda: 1)() == 1 and not k.startswith("test/")}
        for i, opt in enumerate(trainer.optimizers):
            for j, group in enumerate(opt.param_groups):
                name = "lr" if (i, j) == (0, 0) else f"lr/{i}.{j}"
                metrics[name] = float(group["lr"])
        metrics["round"] = self.round
        per_round = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 10_000
        self.run_log.epoch(self.round * per_round + trainer.current_epoch, metrics)
