"""The state a web teacher's page sees: the questions on offer, who is looking at which, what was answered.

Thread-safe: the loop offers questions and reports its stage from its own thread, the server's threads
claim, answer and read. Every change bumps ``version`` and wakes the pages waiting for news (through its
``listeners``: the page server's :class:`~exil.common.web.app.LongPolls`).

* **Claims** — a tab that asks for the next question gets the first unanswered one no other tab holds
  (a claim lapses after ``claim_seconds`` without word from its tab); a reloaded tab gets its own back.
* **Answers** go to the asker's ``submit`` (validated, committed to the journal) before the entry is marked
  answered; a second answer to an answered question is refused as *taken* unless it is a revision.
* **Review** — when a round's questions are all answered, :meth:`settle` waits ``review_seconds`` after the
  last answer (or until the person says "train now"; "hold" waits for that) so a misclick can be taken back.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from exil.common.oracle.kinds import kind_of
from exil.common.oracle.question import OracleContext, Question
from exil.common.web.media import Media

STAGE_TEXT = {
    "initial": "labelling the initial set",
    "fit": "the model is training",
    "evaluate": "evaluating on the test set",
    "query": "choosing what to ask next",
    "ask": "preparing the questions",
    "incorporate": "learning from your answers",
    "done": "the run has finished",
    "stopped": "the run stopped",
}


def question_id(round: int, kind: str, key: str) -> str:
    return f"{round}:{kind}:{key}"


@dataclass
class Entry:
    round: int
    question: Question
    order: int
    view: dict[str, Any] | None = None
    claimed_by: str | None = None
    claimed_at: float = 0.0
    answered: bool = False
    answered_at: float = 0.0
    answer: Any = None
    summary: str = ""

    @property
    def id(self) -> str:
        return question_id(self.round, self.question.kind, self.question.key)


@dataclass
class Review:
    round: int
    last_activity: float
    hold: bool = False
    train_now: bool = False


@dataclass
class WebSession:
    claim_seconds: float = 120.0
    review_seconds: float = 5.0
    media: Media = field(default_factory=Media)

    def __post_init__(self):
        self.cond = threading.Condition()
        self.version = 0
        self.entries: dict[str, Entry] = {}
        self.status: dict[str, Any] = {"stage": "starting"}
        self.review: Review | None = None
        self.ctx: OracleContext | None = None
        self.desk: Any = None
        self._order = 0
        #: called (under the lock, from any thread) whenever the version moves: the page server's async long
        #: polls are woken through it without a thread waiting for each
        self.listeners: list[Callable[[], None]] = []
        self.waiting = 0  # long polls waiting right now (the page server's count)

    # ------------------------------------------------------------ the loop's side
    def _bump(self) -> None:
        self.version += 1
        self.cond.notify_all()
        for listener in self.listeners:
            listener()

    def set_status(self, info: dict[str, Any]) -> None:
        with self.cond:
            self.status = dict(info)
            self._bump()

    def offer(self, round: int, questions: list[Question], ctx: OracleContext, desk: Any) -> None:
        with self.cond:
            self.ctx, self.desk = ctx, desk
            for q in questions:
                qid = question_id(round, q.kind, q.key)
                if qid not in self.entries:
                    self._order += 1
                    self.entries[qid] = Entry(round, q, self._order)
            self._bump()

    def settle(self, round: int) -> None:
        """Give the person ``review_seconds`` after their last answer of the round (module docstring)."""
        with self.cond:
            self.review = Review(round, self._last_activity(round))
            self._bump()
            try:
                while True:
                    r = self.review
                    if r.train_now or self.review_seconds <= 0:
                        break
                    left = r.last_activity + self.review_seconds - time.monotonic()
                    if not r.hold and left <= 0:
                        break
                    self.cond.wait(timeout=0.25 if r.hold else min(left, 0.25))
            finally:
                self.review = None
                for qid in [k for k, e in self.entries.items() if e.round < round]:
                    del self.entries[qid]  # earlier rounds: in use, nothing left to show
                self._bump()

    def _last_activity(self, round: int) -> float:
        times = [e.answered_at for e in self.entries.values() if e.round == round and e.answered]
        return max(times, default=time.monotonic())

    def _held_elsewhere(self, e: Entry, tab: str | None, now: float) -> bool:
        """An open question another tab holds (its claim has not lapsed)."""
        return (not e.answered and e.claimed_by is not None and e.claimed_by != tab
                and now - e.claimed_at <= self.claim_seconds)

    # ---------------------------------------------------------- the page's side
    def release_lapsed(self) -> float | None:
        """Release the claims whose tab stopped renewing them (bumping the version if any); return when the
        next open claim lapses (``time.monotonic()`` seconds), or None when none is claimed."""
        with self.cond:
            now = time.monotonic()
            claimed = [e for e in self.entries.values() if e.claimed_by is not None and not e.answered]
            lapsed = [e for e in claimed if now - e.claimed_at > self.claim_seconds]
            for e in lapsed:
                e.claimed_by = None
            if lapsed:
                self._bump()
            held = [e.claimed_at + self.claim_seconds for e in claimed if e not in lapsed]
            return min(held) if held else None

    def touch(self, tab: str) -> None:
        """The tab is alive: its claims stay."""
        now = time.monotonic()
        with self.cond:
            for e in self.entries.values():
                if e.claimed_by == tab and not e.answered:
                    e.claimed_at = now

    def next_for(self, tab: str, keep: str | None = None) -> Entry | None:
        """The question this tab should show: ``keep`` (the one it shows) if it is still open and nobody else
        holds it, else its own unanswered claim, else the first free one (claimed)."""
        now = time.monotonic()
        with self.cond:
            kept = self.entries.get(keep) if keep else None
            if kept is not None and not kept.answered and not self._held_elsewhere(kept, tab, now):
                for e in self.entries.values():  # one question per tab: its other claims go back
                    if e is not kept and e.claimed_by == tab and not e.answered:
                        e.claimed_by = None
                kept.claimed_by, kept.claimed_at = tab, now
                self._bump()
                return kept
            open_ = sorted((e for e in self.entries.values() if not e.answered), key=lambda e: e.order)
            mine = [e for e in open_ if e.claimed_by == tab]
            if mine:
                return mine[0]
            for e in open_:
                if not self._held_elsewhere(e, tab, now):
                    e.claimed_by, e.claimed_at = tab, now
                    self._bump()
                    return e
        return None

    def entry(self, qid: str) -> Entry | None:
        with self.cond:
            return self.entries.get(qid)

    def view_of(self, e: Entry) -> dict[str, Any]:
        """The kind's web payload of an entry, made once (images encoded once)."""
        if e.view is None:
            e.view = kind_of(e.question.kind).web(e.question, self.ctx, self.media)
        return e.view

    def submit(self, qid: str, raw: Any, revise: bool) -> Entry:
        """Validate and commit through the asker (raises its errors); then mark the entry answered."""
        e = self.entry(qid)
        if e is None:
            raise KeyError(qid)
        answer = self.desk.submit(e.round, e.question, raw, revise=revise)
        with self.cond:
            e.answered, e.answer, e.answered_at = True, answer, time.monotonic()
            e.summary = kind_of(e.question.kind).summary(answer, self.ctx)
            if self.review is not None and self.review.round == e.round:
                self.review.last_activity = e.answered_at
            self._bump()
        return e

    def set_review(self, action: str) -> None:
        with self.cond:
            if self.review is not None:
                if action == "train":
                    self.review.train_now = True
                elif action == "hold":
                    self.review.hold = True
                self._bump()

    def preview(self, qid: str, data: Any) -> dict[str, Any]:
        e = self.entry(qid)
        if e is None:
            raise KeyError(qid)
        return kind_of(e.question.kind).preview(e.question, data, self.ctx)

    # ------------------------------------------------------------------ views
    def question_json(self, e: Entry) -> dict[str, Any]:
        with self.cond:
            same = [x for x in self.entries.values() if x.round == e.round]
            revisable = not (self.desk is not None and self.desk.is_closed(e.round))
        return {"id": e.id, "kind": e.question.kind,
                "key": e.question.key, "round": e.round, "item": e.question.item, "view": self.view_of(e),
                "answered": e.answered, "answer": e.answer if e.answered else None, "summary": e.summary,
                "revisable": revisable, "position": sorted(x.order for x in same).index(e.order) + 1,
                "of": len(same)}

    def state_json(self, tab: str | None = None) -> dict[str, Any]:
        with self.cond:
            status = dict(self.status)
            status["text"] = STAGE_TEXT.get(status.get("stage"), status.get("stage", ""))
            entries = sorted(self.entries.values(), key=lambda e: e.order)
            open_ = [e for e in entries if not e.answered]
            if status.get("stage") in ("ask", "initial") and open_:
                status["text"] = "waiting for your answers"
            now = time.monotonic()
            others = sum(1 for e in open_ if self._held_elsewhere(e, tab, now))
            review = None
            if self.review is not None:
                left = self.review.last_activity + self.review_seconds - now
                review = {"round": self.review.round, "seconds_left": max(0.0, left), "hold": self.review.hold}
            closed = self.desk.is_closed if self.desk is not None else (lambda r: False)
            return {
                "version": self.version, "status": status, "open": len(open_), "in_other_tabs": others,
                "total": len(entries), "review": review,
                "answered": [{"id": e.id, "kind": e.question.kind,
                              "key": e.question.key, "round": e.round, "summary": e.summary,
                              "revisable": not closed(e.round)} for e in entries if e.answered],
            }

