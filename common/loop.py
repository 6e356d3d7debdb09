"""The outer active-learning loop: rounds of fit → evaluate → query → ask → incorporate → save.

Round ``r`` (``r = 0 .. rounds``):

1. **fit** — a fresh ``lightning.Trainer`` fits the module on the labelled set plus extras
   (from the initial weights if ``reset_each_round``, else from the end of round ``r−1``);
   the weights are checkpointed (``checkpoints/round_RRR_fit.pt``).
2. **evaluate** — test metrics plus the method's own (``hooks.metrics``), journaled and logged
   with step = number of labels. The last round stops here.
3. **query** — ``hooks.query`` chooses ``query_size`` pool items (journaled).
4. **ask** — ``hooks.ask`` asks the oracle through the journal (each answer committed before use); then the
   round is *settled*: a live teacher (the web page) may revise answers until then, and if one the method
   had read was revised, ``hooks.ask`` runs again on the newest answers.
5. **incorporate** — ``hooks.incorporate`` returns new labels, annotations and extras (and may morph
   the module);
   the module is checkpointed with its architecture spec (``round_RRR_end.pt``), then the labels, annotations,
   extras and the stage mark are journaled in one transaction; the round before's end checkpoint is then
   removed unless ``keep_checkpoints=all``.

The initial set is stratified by class only when the oracle's labels come from ground truth
(``oracle.labels_from_truth``); a person's initial set is ``initial_per_class`` × C items drawn at random,
since the loop does not know the classes of items nobody has labelled. A label a person skipped
(``null``, where the method allows it) leaves its item out of every later round's candidates.

Every stage draws its randomness from ``seed_for(seed, round, stage)``, never from what ran
before it in the process, so a run resumed after a kill at any moment replays exactly:
completed stages are read back (weights from checkpoints, queries and answers from the
journal), the interrupted one is redone, and no oracle answer is asked twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning.pytorch as pl
import numpy as np
import torch

from exil.common.abilities import HasTexts, TextData, check_composition
from exil.common.config_secrets import redact_config
from exil.common.data.base import PoolDataModule
from exil.common.distributed import alone
from exil.common.errors import ConfigError, ExilError
from exil.common.hooks import Incorporation, RoundContext, RoundHooks
from exil.common.journal import Journal
from exil.common.loop_config import LoopConfig
from exil.common.modules.base import ExilModule
from exil.common.oracle.asker import Asker
from exil.common.oracle.base import Oracle
from exil.common.oracle.question import OracleContext, Question
from exil.common.run_folder import (
    check_journal,
    config_hash,
    load_checkpoint,
    load_module_state,
    never_started,
    save_checkpoint,
)
from exil.common.run_log import EpochLog, RunLog
from exil.common.strategies.base import QueryStrategy, Selection

STAGES = ("initial", "fit", "evaluate", "query", "ask", "incorporate")


def seed_for(seed: int, round: int, stage: str) -> int:
    """A 31-bit seed that depends only on (run seed, round, stage)."""
    h = hashlib.sha256(f"{seed}/{round}/{stage}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def seed_init(seed: int) -> None:
    """Seed every RNG before a module is built, so its initial weights depend on the run seed only."""
    pl.seed_everything(seed_for(seed, 0, "init-weights"), verbose=False)


log = logging.getLogger(__name__)


class ActiveLoop:
    """Drives one active-learning run in ``run_dir`` (see the module docstring).

    Args:
        cfg: the loop settings.
        module: the model (an :class:`ExilModule`).
        datamodule: the pool.
        strategy: the query strategy the hooks may use.
        oracle: the teacher.
        hooks: the method's round hooks.
        make_trainer: ``make_trainer(round, root_dir, single_device=False) -> Trainer``: a fresh Trainer
            for each round's fit, and a single-device one for its evaluation.
        run_dir: where the journal, checkpoints and results live.
        loggers: Lightning loggers that receive the per-round metrics (step = labels).
        device: where pool scoring runs.
        config: the resolved config, stored in the journal (a resumed run must match it), credentials in URLs
            redacted (:mod:`exil.common.config_secrets`).
        on_stage: optional ``callback(round, stage, seconds)`` after each stage (progress display).
        overrides: the command line's overrides, kept in the journal (a resumed run's ``.hydra/overrides.yaml``
            is put back), redacted as ``config``.
    """

    def __init__(
        self,
        cfg: LoopConfig,
        module: ExilModule,
        datamodule: PoolDataModule,
        strategy: QueryStrategy,
        oracle: Oracle,
        hooks: RoundHooks,
        make_trainer: Callable[..., pl.Trainer],
        run_dir: str | Path,
        loggers: Sequence[Any] = (),
        device: str | torch.device = "cpu",
        config: dict[str, Any] | None = None,
        on_stage: Callable[[int, str, float], None] | None = None,
        overrides: Sequence[str] | None = None,
        team: Any = None,
    ):
        self.cfg = cfg
        #: the run's processes when a launcher started several (exil.common.distributed.Team; rank 0's view),
        #: else None: followers fit with this process, and pool passes are sharded through it
        self.team = team
        self.module, self.dm, self.strategy, self.oracle, self.hooks = module, datamodule, strategy, oracle, hooks
        self.make_trainer = make_trainer
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.loggers = list(loggers)
        self.run_log = RunLog(self.loggers, hooks.progress_axis)
        self._query_predictions: dict[int, dict[int, int]] = {}  # round → {item: the model's class when queried}
        self.device = torch.device(device)
        self.config = redact_config(config or {})  # no credential in a URL is written to the journal
        self.overrides = redact_config(list(overrides)) if overrides is not None else None
        self.on_stage = on_stage
        self.journal: Journal | None = None
        self.asker: Asker | None = None
        self.stopped_early: str | None = None  # why the run ended before its last round, if it did

    # ------------------------------------------------------------------ run
    def run(self) -> Journal:
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.dm.setup()
        self.check_composition()
        path = self.run_dir / "journal.sqlite"
        if never_started(path):  # killed during its journal's first writes: nothing to keep, start afresh
            for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                f.unlink(missing_ok=True)
        if path.exists() or path.with_name(path.name + "-wal").exists():
            check_journal(path)  # a resumed run's journal: damage is named before anything runs
        self.journal = Journal(path)
        try:
            self.asker = Asker(self.oracle, self.journal,
                               OracleContext(self.dm, self.dm.class_names, self.run_dir / "oracle",
                                             strategy=getattr(self.strategy, "name", None)
                                             or type(self.strategy).__name__))
            self._check_config()
            self.oracle.start(self.asker.ctx)
            self._initial()
            start = self._restore()
            if self.journal.metrics():
                self._replay_logs()
            for r in range(start, self.cfg.rounds + 1):
                self._fit(r)
                self._evaluate(r)
                k = self._query_size()
                if r == self.cfg.rounds:
                    break
                if self.hooks.done(k) or self._time_left() == 0:
                    self.stopped_early = self._why_stopped(r)
                    self._status(r, "done", message=self.stopped_early)
                    break
                selection = self._query(r, k)
                answers = self._ask(r, selection)
                self._incorporate(r, selection, answers)
            self._status(self.cfg.rounds, "done")
        except BaseException:
            self._status(None, "stopped")
            self.journal.close()  # releases the run's lock: a crashed loop can be resumed in-process
            raise
        return self.journal

    def check_composition(self) -> None:
        """Refuse, before anything runs, a method, strategy, model and dataset that cannot work together
        (each declares what it needs of the others: :mod:`exil.common.abilities`)."""
        choices = self.config.get("choices") or {}
        who = {f"method={choices.get('method', type(self.hooks).__name__)}": self.hooks,
               f"strategy={choices.get('strategy', type(self.strategy).__name__)}": self.strategy}
        if isinstance(self.dm, HasTexts):
            who[f"dataset={choices.get('dataset', type(self.dm).__name__)}"] = TextData
        check_composition(who, {"module": self.module, "datamodule": self.dm, "strategy": self.strategy}, choices)
        if self.cfg.reset_each_round and self.cfg.rounds and getattr(self.module, "changes_architecture", False):
            raise ConfigError(f"method={choices.get('method', type(self.module).__name__)} changes its model between "
                              "rounds, so a round cannot start over from the initial weights: add "
                              "loop.reset_each_round=false")

    # --------------------------------------------------------------- stages
    def _initial(self) -> None:
        """The initial labelled set, labelled by the oracle (journaled as round −1 answers)."""
        j = self.journal
        if j.done(0, "initial"):
            return
        rng = np.random.default_rng(seed_for(self.cfg.seed, 0, "initial"))
        per_class, size = self.cfg.initial_per_class, self.cfg.initial_size
        how = "stratified by class (ground-truth labels)"
        if per_class and not getattr(self.oracle, "labels_from_truth", False):
            per_class, size = None, min(per_class * self.dm.num_classes, len(self.dm.pool))
            how = f"{size} items drawn at random (a teacher's labels: no stratification by classes nobody gave)"
        elif not per_class:
            how = "the whole pool" if size == -1 else f"{size} items drawn at random"
        idx = self.dm.initial_indices(per_class, size, rng)
        if self.journal.meta("initial_set") is None:
            self.journal.set_meta("initial_set", how)
        self._status(0, "initial", message=f"initial set: {how}")
        questions = [Question("label", key=str(int(i)), item=int(i), payload={"why": f"initial set: {how}"})
                     for i in idx]
        while True:
            labels = self.hooks.initial_labels(self._ctx(0, "initial", ask_round=-1), questions)
            self._seed_stage(0, "initial")
            inc = self.hooks.initial(self._ctx(0, "initial", ask_round=-1), dict(zip(map(int, idx), labels)))
            if not self.asker.settle(-1):
                break
        if inc.labels:
            raise ExilError(f"{type(self.hooks).__name__}.initial returned labels; the initial set is labelled already")
        sha = self._save(self.ckpt_dir / "init.pt")
        with self._stage_transaction():
            j.add_labels(0, idx, labels, source="initial")
            j.add_annotations(0, inc.annotations)
            j.add_extras(0, inc.extras)
            j.add_file("init.pt", sha, 0, "initial")
            j.mark(0, "initial", 0.0)

    def _restore(self) -> int:
        """Rebuild the pool from the journal and the module from the last round-end checkpoint."""
        j = self.journal
        rows = j.labelled()
        self.dm.restore([r[1] for r in rows], [r[2] for r in rows], j.annotations(), j.extras())
        done = [r for r in range(self.cfg.rounds + 1) if j.done(r, "incorporate")]
        start = (max(done) + 1) if done else 0
        self._load(self.ckpt_dir / (f"round_{start - 1:03d}_end.pt" if start else "init.pt"))
        return start

    def _fit(self, r: int) -> None:
        path = self.ckpt_dir / f"round_{r:03d}_fit.pt"
        if self.journal.done(r, "fit"):
            self._load(path)
            return
        self._status(r, "fit")
        t0 = time.perf_counter()
        if self.cfg.reset_each_round:
            if self.module.architecture_spec():
                raise ConfigError("loop.reset_each_round=true cannot reset a module whose architecture changed; "
                                  "set loop.reset_each_round=false for this method")
            self._load(self.ckpt_dir / "init.pt")
        pl.seed_everything(seed_for(self.cfg.seed, r, "fit"), workers=True, verbose=False)
        trainer = self.make_trainer(r, self.run_dir / "rounds" / f"{r:03d}")
        trainer.callbacks.append(EpochLog(self.run_log, r))
        if self.team is not None:  # the other ranks of a launched run fit with us (exil.common.distributed)
            self.team.fit(r, seed_for(self.cfg.seed, r, "fit"), self.module, self.dm)
        trainer.fit(self.module, datamodule=self.dm)
        sha = self._save(path)
        with self._stage_transaction():
            self.journal.add_file(path.name, sha, r, "fit")
            self.journal.mark(r, "fit", time.perf_counter() - t0)
        self._stage(r, "fit", t0)

    def _evaluate(self, r: int) -> None:
        if self.journal.done(r, "evaluate"):
            return
        self._status(r, "evaluate")
        t0 = time.perf_counter()
        pl.seed_everything(seed_for(self.cfg.seed, r, "evaluate"), verbose=False)
        # evaluation on one device in this process: a DistributedSampler would pad the test set
        trainer = self.make_trainer(r, self.run_dir / "rounds" / f"{r:03d}", single_device=True)
        with alone(self.module) if self.team is not None else contextlib.nullcontext():
            (results,) = trainer.test(self.module, dataloaders=self.dm.test_dataloader(), verbose=False)
            metrics = {k: float(v) for k, v in results.items()}
            self._save_predictions(r)
            metrics.update(self.hooks.metrics(self._ctx(r, "evaluate")))
        metrics["n_explanations"] = float(self.journal.explanation_count(before_round=r))
        metrics.update(self._teacher_metrics(r))
        n = len(self.dm.labels)
        with self._stage_transaction():
            self.journal.add_metrics(r, n, metrics)
            self.journal.mark(r, "evaluate", time.perf_counter() - t0)
        self._log_evaluation(r)
        self._stage(r, "evaluate", t0)

    def _teacher_metrics(self, r: int) -> dict[str, float]:
        """What teaching cost so far and how well the teachers agreed: ``teacher/seconds`` (all answers before round
        ``r``), ``teacher/seconds_per_<kind>`` (the mean of each kind), and the agreement of the round just
        answered (:mod:`exil.common.agreement`) when several teachers answered its questions."""
        from exil.common.agreement import agreement

        by_kind = self.journal.seconds_by_kind(before_round=r)
        out = {}
        if by_kind:
            out["teacher/seconds"] = self.journal.teacher_seconds(before_round=r)
            out.update({f"teacher/seconds_per_{kind}": total / n for kind, (n, total) in by_kind.items() if n})
        out.update(agreement(self.journal.opinions(r - 1), self.hooks))
        return out

    def _query(self, r: int, k: int) -> Selection | None:
        """The items round ``r`` asks labels of; None for a method whose rounds ask something else (its hooks'
        ``asks``), which has no query stage."""
        if not self.hooks.asks_labels:
            return None
        if self.journal.done(r, "query"):
            items, scores = self.journal.queries(r)
            return Selection(np.asarray(items), np.asarray(scores))
        self._status(r, "query")
        t0 = time.perf_counter()
        self._seed_stage(r, "query")
        ctx = self._ctx(r, "query")
        selection = self.hooks.query(ctx, k)
        self._check_selection(r, selection, ctx.candidates, k)
        if len(selection.indices):  # what the model predicted of the queried items (the round's query table)
            probs = ctx.query_context(selection.indices).probs()
            self._query_predictions[r] = dict(zip(map(int, selection.indices), probs.argmax(1).tolist()))
        with self._stage_transaction():
            self.journal.add_queries(r, selection.indices, selection.scores)
            self.journal.mark(r, "query", time.perf_counter() - t0)
        self._stage(r, "query", t0)
        return selection

    def _ask(self, r: int, selection: Selection | None) -> dict:
        t0 = time.perf_counter()
        self._status(r, "ask")
        self._seed_stage(r, "ask")
        answers = self.hooks.ask(self._ctx(r, "ask"), selection)
        while self.asker.settle(r):  # a teacher revised an answer the method had read: ask again on the newest
            self._seed_stage(r, "ask")
            answers = self.hooks.ask(self._ctx(r, "ask"), selection)
        if not self.journal.done(r, "ask"):
            with self._stage_transaction():
                self.journal.mark(r, "ask", time.perf_counter() - t0)
            self._stage(r, "ask", t0)
        return answers

    def _incorporate(self, r: int, selection: Selection | None, answers: dict) -> None:
        self._status(r, "incorporate")
        t0 = time.perf_counter()
        self._seed_stage(r, "incorporate")
        inc: Incorporation = self.hooks.incorporate(self._ctx(r, "incorporate"), selection, answers)
        items = list(inc.labels)
        self.dm.label(items, [inc.labels[i] for i in items])
        self.dm.annotate(inc.annotations)
        self.dm.add_extras(inc.extras)
        end = self.ckpt_dir / f"round_{r:03d}_end.pt"
        sha = self._save(end)
        with self._stage_transaction():
            self.journal.add_labels(r + 1, items, [inc.labels[i] for i in items], source="oracle")
            self.journal.add_annotations(r + 1, inc.annotations)
            self.journal.add_extras(r + 1, inc.extras)
            self.journal.add_file(end.name, sha, r, "incorporate")
            self.journal.mark(r, "incorporate", time.perf_counter() - t0)
        (self.ckpt_dir / f"round_{r:03d}_fit.pt").unlink(missing_ok=True)  # only needed to resume inside round r
        if r and self.cfg.keep_checkpoints == "last":  # a resume needs only the newest round end
            (self.ckpt_dir / f"round_{r - 1:03d}_end.pt").unlink(missing_ok=True)
        self._stage(r, "incorporate", t0)
        self._log_round(r)

    # -------------------------------------------------------------- helpers
    def _check_selection(self, r: int, selection: Selection, candidates: np.ndarray, k: int) -> None:
        """A selection is journaled only if it can be asked: 1..k distinct candidates."""
        n = len(selection.indices)
        if not (0 < n <= k or n == k == 0):
            raise ExilError(f"round {r}: {type(self.strategy).__name__} chose {n} items; 1 to {k} were asked for")
        outside = np.setdiff1d(selection.indices, candidates)
        if len(outside):
            raise ExilError(f"round {r}: the selection holds items that are not unlabelled candidates: "
                            f"{outside[:10].tolist()}")

    def _replay_logs(self) -> None:
        """A resumed run sends what the journal already holds to the loggers (they start empty)."""
        for r in sorted(self.journal.metrics_by_round()):
            self._log_evaluation(r)
            if self.journal.done(r, "incorporate"):
                self._log_round(r)

    def _log_evaluation(self, r: int) -> None:
        """Round ``r``'s journaled metrics, at its labels and questions when it was evaluated."""
        row = dict(self.journal.metrics_by_round()[r])
        n = row.pop("n_labels")
        self.run_log.round(r, row, n, self.journal.answer_count(before_round=r))

    def _log_round(self, r: int) -> None:
        """Round ``r``'s stage times, what it added, its queried items and the method's explanation sheets, at
        the step of its evaluation."""
        n = self.journal.metrics_by_round()[r]["n_labels"]
        times = {f"time/{s}": sec for rr, s, sec in self.journal.stages() if rr == r and s != "initial"}
        queried, extras = self.journal.added_in(r)
        self.run_log.round(r, {**times, "queried": queried, "extras_added": extras}, n,
                           self.journal.answer_count(before_round=r))
        items, scores = self.journal.queries(r)
        if items:
            answers = self.journal.answers_of(r, {"label"})
            preds = self._query_predictions.get(r, {})
            rows = [[r, i, None if s != s else round(float(s), 6), preds.get(i, ""), answers.get(("label", str(i)), "")]
                    for i, s in zip(items, scores)]
            self.run_log.table("queries", ["round", "item", "score", "prediction", "answer"], rows, r)
        self.run_log.images("explanations", self.hooks.sheets(self.run_dir, r), r)

    def _why_stopped(self, r: int) -> str:
        used = self.journal.label_count("oracle")
        budget = self.cfg.label_budget
        spent = self.journal.teacher_seconds()
        if self._time_left() == 0:
            why = (f"the teachers' time budget is spent ({spent:.0f} s of loop.budget_seconds="
                   f"{self.cfg.budget_seconds:g})")
        elif used >= budget:
            why = f"the label budget is spent ({used} of loop.budget={budget})"
        else:
            why = f"the pool has no unlabelled item left to ask ({len(self.dm.pool)} items, all labelled or skipped)"
        return f"the run stopped after round {r} of {self.cfg.rounds}: {why}"

    def _query_size(self) -> int:
        used = self.journal.label_count("oracle")
        budget = self.cfg.label_budget
        left = len(np.setdiff1d(self.dm.unlabelled_indices, self.journal.skipped_items()))
        affordable = self._time_left()
        return int(max(0, min(self.cfg.query_size, budget - used, left,
                              affordable if affordable is not None else left)))

    def _time_left(self) -> int | None:
        """How many more questions ``loop.budget_seconds`` affords at the mean cost per answered question so far
        (None: no time budget, or no cost known yet; 0: spent)."""
        if self.cfg.budget_seconds is None:
            return None
        spent = self.journal.teacher_seconds()
        if spent >= self.cfg.budget_seconds:
            return 0
        by_kind = self.journal.seconds_by_kind()
        n = sum(c for c, _ in by_kind.values())
        if not n:
            return None
        return int((self.cfg.budget_seconds - spent) // (spent / n)) if spent > 0 else None

    def _save_predictions(self, r: int) -> None:
        """The test predictions of round ``r`` (``predictions/round_RRR.npy``), for agreement between runs."""
        preds = getattr(self.module, "test_predictions", None)
        if preds is not None:
            path = self.run_dir / "predictions" / f"round_{r:03d}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.asarray(preds))

    def _ctx(self, r: int, stage: str, ask_round: int | None = None) -> RoundContext:
        """The hooks' context for one stage (built once per stage; the stage seeded the global RNG)."""
        seed = seed_for(self.cfg.seed, r, stage)
        gen = torch.Generator().manual_seed(seed)
        candidates = self.dm.unlabelled_indices
        skipped = self.journal.skipped_items() if self.journal is not None else []
        if skipped:
            candidates = np.setdiff1d(candidates, skipped)
        n = self.cfg.pool_subsample
        if n is not None and n < len(candidates):
            rng = np.random.default_rng(seed_for(self.cfg.seed, r, "subsample"))
            candidates = np.sort(rng.choice(candidates, size=n, replace=False))
        return RoundContext(
            round=r, module=self.module, datamodule=self.dm, strategy=self.strategy,
            ask=lambda q: self.asker(r if ask_round is None else ask_round, q),
            ask_many=lambda qs: self.asker.many(r if ask_round is None else ask_round, qs), candidates=candidates, device=self.device,
            generator=gen, run_dir=self.run_dir, seed=seed, embeddings=self.cfg.embeddings, scorer=self.team,
            say=lambda text: self._say(r, stage, text), teacher_of=self.asker.oracle_for,
        )

    def _say(self, r: int, stage: str, text: str) -> None:
        """A method's word to the person: the console's log, and the teacher's page (its status line)."""
        log.warning(text)
        self._status(r, stage, message=text)

    def _seed_stage(self, r: int, stage: str) -> None:
        """Seed every global RNG once at the start of a stage, from (run seed, round, stage) alone."""
        pl.seed_everything(seed_for(self.cfg.seed, r, stage), verbose=False)

    def _save(self, path: Path) -> str:
        """Checkpoint the module (atomically); returns the SHA-256 the stage's transaction records."""
        return save_checkpoint(path, self.module.architecture_spec(), self.module.state_dict())

    def _load(self, path: Path) -> None:
        """Load a checkpoint the journal recorded, refusing one that does not match its hash."""
        last = self.journal.last_stage()
        context = f"the journal's last finished stage is round {last[0]} · {last[1]}" if last else ""
        ckpt = load_checkpoint(path, self.journal.file_hash(path.name), context=context)
        load_module_state(self.module, ckpt)

    @contextlib.contextmanager
    def _stage_transaction(self):
        """A stage's rows and its mark in one transaction; then the write-ahead log is moved into
        ``journal.sqlite``, so that file alone holds the run up to this stage."""
        with self.journal.transaction():
            yield
        self.journal.checkpoint_wal()

    def _status(self, r: int | None, stage: str, message: str | None = None) -> None:
        """Tell the oracle what the loop is doing (a teacher's page shows it)."""
        j = self.journal
        try:
            curve = [[m["n_labels"], m.get("test/acc")] for _, m in sorted(j.metrics_by_round().items())]
            used = j.label_count("oracle")
        except Exception:  # a closed or damaged journal: the status is only for display
            curve, used = [], None
        budget = self.cfg.label_budget
        self.oracle.status({"round": r, "rounds": self.cfg.rounds, "stage": stage, "labels": used,
                            "budget": budget, "curve": curve, "message": message})

    def _stage(self, r: int, stage: str, t0: float) -> None:
        if self.on_stage is not None:
            self.on_stage(r, stage, time.perf_counter() - t0)

    def _check_config(self) -> None:
        stored = self.journal.meta("config")
        if stored is None:
            with self.journal.transaction():
                self.journal.set_meta("config", self.config)
                self.journal.set_meta("config_sha256", config_hash(self.config))
                self.journal.set_meta("seed", self.cfg.seed)
                if self.overrides is not None:
                    self.journal.set_meta("overrides", self.overrides)
        elif _identity(stored) != _identity(self.config):
            diff = sorted(_diff(_identity(stored), _identity(self.config)))
            raise ConfigError(f"{self.run_dir} was started with another config; differing keys: {', '.join(diff[:20])}.\n"
                              f"Resume with the run's own config (exil loop.resume={self.run_dir} and no other overrides).")


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """What a run's results depend on: its config less where its logs go (loggers, tags), credentials in URLs
    redacted (a journal written before they were still has them)."""
    return {k: v for k, v in redact_config(config).items() if k not in NOT_IDENTITY}


#: config keys that say where and how a run is reported, not what it computes
NOT_IDENTITY = ("logger", "tags", "print_config", "optimized_metric", "debug")


def _diff(a: Any, b: Any, prefix: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in set(a) | set(b):
            out |= _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return set() if a == b else {prefix.rstrip(".")}
