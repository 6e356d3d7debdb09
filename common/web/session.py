"""The state a web teacher's page sees: the questions on offer, who is looking at which, what was answered.

Thread-safe: the loop offers questions and reports its stage from its own thread, the server's threads
claim, answer and read. Every change bumps ``version`` and wakes the pages waiting for news (through its
``listeners``: the page server's :class:`~exil.common.web.app.LongPolls`).

* **Claims** — a tab that asks for the next question gets the first unanswered one no other tab holds
  (a closing tab gives its claim back at once, :meth:`release`; a claim of a tab that vanished lapses after
  ``claim_seconds`` without word from it); a reloaded tab gets its own back.
* **Answers** go to the asker's ``submit`` (validated, committed to the journal) before the entry is marked
  answered; a second answer to an answered question is refused as *taken* unless it is a revision.
* **Review** — when a round's questions are all answered, :meth:`settle` waits ``review_seconds`` after the
  last answer (or until the person says "train now"; "hold" waits for that) so a misclick can be taken back.
* **Teams** — with named teachers and ``overlap`` k > 1, each question is answered by k different teachers
  (no claims: each teacher gets the first question they have not answered). Every answer is journaled as an
  *opinion*; when k are in, equal answers (any answer, for kinds other than ``label``) settle the question, with
  the teachers joined by ``+`` as who answered and the sum of their seconds as its cost; different labels send
  it to the ``reviewer``, whose answer settles it (and is what the model trains on). Opinions are final; the
  settled answer may be revised until the round is used.
* **Cost** — each answer carries the seconds the question was on the teacher's screen (the page's own clock;
  the server's, from when it handed the question out, when the page sends none).
* ``hide_model``: the model's prediction and explanation are left out of every question (anchoring control).
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


def _thumb(e: "Entry") -> str | None:
    """The address of an answered item's image (already encoded for its question), for the list of answers."""
    item = (e.view or {}).get("item") or {}
    return (item.get("image") or {}).get("src")


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
    opinions: dict[str, Any] = field(default_factory=dict)  # teacher → answer (overlap > 1)
    opinion_seconds: dict[str, float | None] = field(default_factory=dict)
    disputed: bool = False  # its k answers differ: waiting for the reviewer
    by: str | None = None  # who settled it (a teacher, several joined by "+"; None: the run's one teacher)

    @property
    def id(self) -> str:
        return question_id(self.round, self.question.kind, self.question.key)


@dataclass
class Review:
    round: int
    last_activity: float
    hold: bool = False
    train_now: bool = False


#: keys of a question's view that show what the model predicts or why (left out with ``hide_model``)
MODEL_KEYS = ("predictions", "prediction", "probs", "explanation", "explanations", "saliency", "model",
              "model_explanation")
#: the longest time an answer may claim to have taken (a tab left open overnight is not a day of work)
MAX_SECONDS = 3600.0


@dataclass
class WebSession:
    claim_seconds: float = 120.0
    review_seconds: float = 5.0
    media: Media = field(default_factory=Media)
    overlap: int = 1
    reviewer: str | None = None
    hide_model: bool = False

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
        self._team = threading.Lock()  # one opinion at a time settles a question
        self._handed: dict[tuple[str, str | None], float] = {}  # (question, teacher) → when it was handed out

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

    def offer(self, round: int, questions: list[Question], ctx: OracleContext, desk: Any,
              answered: list[tuple[Question, Any]] = ()) -> None:
        """Show ``questions``; ``answered``: the round's questions answered in an earlier session of a resumed
        run, listed as answered (and revisable until the round is used), before them."""
        with self.cond:
            self.ctx, self.desk = ctx, desk
            for q, a in answered:
                qid = question_id(round, q.kind, q.key)
                if qid not in self.entries:
                    self._order += 1
                    self.entries[qid] = e = Entry(round, q, self._order, answered=True, answer=a,
                                                  answered_at=time.monotonic())
                    e.summary = kind_of(q.kind).summary(a, ctx)
            for q in questions:
                qid = question_id(round, q.kind, q.key)
                if qid not in self.entries:
                    self._order += 1
                    self.entries[qid] = Entry(round, q, self._order)
            if self.overlap > 1:  # a resumed run: the opinions given before the kill stand
                for o in desk.opinions(round):
                    e = self.entries.get(question_id(round, o["question"], o["key"]))
                    if e is not None and not e.answered:
                        e.opinions[o["teacher"]] = o["answer"]
                        e.opinion_seconds[o["teacher"]] = o["seconds"]
                        e.disputed = len(e.opinions) >= self.overlap and not self._agreed(e)
            complete = [e for e in self.entries.values() if e.round == round and not e.answered
                        and not e.disputed and self.overlap > 1 and len(e.opinions) >= self.overlap]
            self._bump()
        for e in complete:  # agreed before a kill that came before the settled answer was written
            self._settle_agreed(e)

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
                self._handed = {k: t for k, t in self._handed.items() if k[0] in self.entries}
                self._bump()

    def _last_activity(self, round: int) -> float:
        times = [e.answered_at for e in self.entries.values() if e.round == round and e.answered]
        return max(times, default=time.monotonic())

    def _held_elsewhere(self, e: Entry, tab: str | None, now: float) -> bool:
        """An open question another tab holds (its claim has not lapsed; teams do not claim)."""
        return (self.overlap <= 1 and not e.answered and e.claimed_by is not None and e.claimed_by != tab
                and now - e.claimed_at <= self.claim_seconds)

    def _open_for(self, e: Entry, teacher: str | None) -> bool:
        """Whether ``teacher`` has something to answer on ``e``."""
        if e.answered:
            return False
        if self.overlap <= 1:
            return True
        if e.disputed:
            return teacher is not None and teacher == self.reviewer
        return teacher not in e.opinions

    @staticmethod
    def _given_by(e: Entry, teacher: str | None) -> bool:
        """Whether ``e`` is in ``teacher``'s list of answers (every answer, when the run has one teacher)."""
        if teacher is None:
            return e.answered
        return teacher in e.opinions or (e.answered and teacher in (e.by or "").split("+"))

    @staticmethod
    def _agreed(e: Entry) -> bool:
        """Whether the teachers' answers give one label (:meth:`QuestionKind.label_of`; a kind that gives none,
        e.g. a relevance mask, is settled by its first answer)."""
        label_of = kind_of(e.question.kind).label_of
        labels = [label_of(v) for v in e.opinions.values()]
        return all(y == labels[0] for y in labels[1:])

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

    def release(self, tab: str) -> None:
        """The tab is closing (or reloading): its claims go back at once, not after ``claim_seconds``."""
        with self.cond:
            mine = [e for e in self.entries.values() if e.claimed_by == tab and not e.answered]
            for e in mine:
                e.claimed_by = None
            if mine:
                self._bump()

    def next_for(self, tab: str, keep: str | None = None, teacher: str | None = None) -> Entry | None:
        """The question this tab should show: ``keep`` (the one it shows) if it is still open and nobody else
        holds it, else its own unanswered claim, else the first free one (claimed). In a team, a question this
        ``teacher`` has not answered yet; the reviewer gets the disputed ones first."""
        e = self._next_for(tab, keep, teacher)
        if e is not None:
            self._handed.setdefault((e.id, teacher), time.monotonic())
        return e

    def _next_for(self, tab: str, keep: str | None, teacher: str | None) -> Entry | None:
        now = time.monotonic()
        with self.cond:
            kept = self.entries.get(keep) if keep else None
            if self.overlap > 1:
                if kept is not None and self._open_for(kept, teacher):
                    return kept
                open_ = sorted((e for e in self.entries.values() if self._open_for(e, teacher)),
                               key=lambda e: (not e.disputed, e.order))
                return open_[0] if open_ else None
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
        """The kind's web payload of an entry, made once (images encoded once); without the model's prediction
        and explanation when ``hide_model``."""
        if e.view is None:
            view = kind_of(e.question.kind).web(e.question, self.ctx, self.media)
            if self.hide_model:
                view = {k: v for k, v in view.items() if k not in MODEL_KEYS}
            e.view = view
        return e.view

    def submit(self, qid: str, raw: Any, revise: bool, teacher: str | None = None,
               seconds: float | None = None) -> Entry:
        """Validate and commit through the asker (raises its errors); then mark the entry answered. In a team, an
        opinion, which settles the question when it is the k-th (module docstring). ``seconds``: the page's own
        measure of how long the question was on screen (the server's is used when it sends none)."""
        from exil.common.oracle.asker import AnswerTaken

        e = self.entry(qid)
        if e is None:
            raise KeyError(qid)
        seconds = self._seconds(e, teacher, seconds)
        if self.overlap > 1 and revise and (not e.answered or teacher != self.reviewer):
            # a team's settled answer is the team's: one teacher alone neither revises it nor settles a question
            raise AnswerTaken(f"in a team only the reviewer ({self.reviewer}) revises a settled answer" if e.answered
                              else "this question is not settled yet: answer it, or let the reviewer settle it")
        if self.overlap <= 1 or revise:
            answer = self.desk.submit(e.round, e.question, raw, revise=revise, teacher=teacher, seconds=seconds)
            self._answered(e, answer, e.by if revise and e.by else teacher)
            return e
        with self._team:
            if e.answered:
                raise AnswerTaken("this question was settled already")
            if e.disputed:
                if teacher != self.reviewer:
                    raise AnswerTaken(f"the teachers disagree on this question: it waits for {self.reviewer}")
                total = sum(s for s in e.opinion_seconds.values() if s) + (seconds or 0.0)
                answer = self.desk.submit(e.round, e.question, raw, teacher=teacher, seconds=total)
                self._answered(e, answer, teacher)
                return e
            if teacher in e.opinions:
                raise AnswerTaken("you answered this question already")
            answer = self.desk.opinion(e.round, e.question, teacher, raw, seconds)
            with self.cond:
                e.opinions[teacher], e.opinion_seconds[teacher] = answer, seconds
                e.summary = kind_of(e.question.kind).summary(answer, self.ctx)
                self._bump()
            if len(e.opinions) < self.overlap:
                return e
            if not self._agreed(e):
                with self.cond:
                    e.disputed = True
                    self._bump()
                return e
            self._settle_agreed(e)
        return e

    def _settle_agreed(self, e: Entry) -> None:
        """Commit the answer the teachers agreed on (the first, where answers differ beyond their label), as all of
        theirs."""
        first = next(iter(e.opinions.values()))
        total = sum(s for s in e.opinion_seconds.values() if s)
        who = "+".join(sorted(e.opinions))
        answer = self.desk.submit(e.round, e.question, first, teacher=who, seconds=total or None)
        self._answered(e, answer, who)

    def _answered(self, e: Entry, answer: Any, by: str | None) -> None:
        with self.cond:
            e.answered, e.answer, e.answered_at, e.by = True, answer, time.monotonic(), by
            e.summary = kind_of(e.question.kind).summary(answer, self.ctx)
            if self.review is not None and self.review.round == e.round:
                self.review.last_activity = e.answered_at
            self._bump()

    def _seconds(self, e: Entry, teacher: str | None, given: float | None) -> float | None:
        """The page's measure when it is a sane number, else the server's (from when the question was handed)."""
        if isinstance(given, (int, float)) and not isinstance(given, bool) and 0 <= given <= MAX_SECONDS:
            return float(given)
        handed = self._handed.get((e.id, teacher))
        return None if handed is None else min(time.monotonic() - handed, MAX_SECONDS)

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
            dispute = None
            if e.disputed and not e.answered:
                summary = kind_of(e.question.kind).summary
                dispute = [{"teacher": t, "summary": summary(a, self.ctx)} for t, a in sorted(e.opinions.items())]
        return {"id": e.id, "kind": e.question.kind,
                "key": e.question.key, "round": e.round, "item": e.question.item, "view": self.view_of(e),
                "answered": e.answered, "answer": e.answer if e.answered else None, "summary": e.summary,
                "revisable": revisable, "position": sorted(x.order for x in same).index(e.order) + 1,
                "of": len(same), "dispute": dispute}

    def state_json(self, tab: str | None = None, teacher: str | None = None) -> dict[str, Any]:
        with self.cond:
            status = dict(self.status)
            status["text"] = STAGE_TEXT.get(status.get("stage"), status.get("stage", ""))
            entries = sorted(self.entries.values(), key=lambda e: e.order)
            newest = max((e.round for e in entries), default=None)
            this_round = [e for e in entries if e.round == newest]  # the header counts the round being asked
            open_ = [e for e in entries if self._open_for(e, teacher)]
            waiting = [e for e in entries if not e.answered and not self._open_for(e, teacher)] \
                if self.overlap > 1 else []
            if status.get("stage") in ("ask", "initial") and open_:
                status["text"] = "waiting for your answers"
            now = time.monotonic()
            others = sum(1 for e in open_ if self._held_elsewhere(e, tab, now))
            review = None
            if self.review is not None:
                left = self.review.last_activity + self.review_seconds - now
                review = {"round": self.review.round, "seconds_left": max(0.0, left), "hold": self.review.hold}
            closed = self.desk.is_closed if self.desk is not None else (lambda r: False)
            mine = [e for e in entries if self._given_by(e, teacher)]
            return {
                "version": self.version, "status": status, "open": len(open_), "in_other_tabs": others,
                "total": len(this_round), "review": review, "teacher": teacher, "waiting_for_others": len(waiting),
                "answered": [{"id": e.id, "kind": e.question.kind, "thumb": _thumb(e),
                              "key": e.question.key, "round": e.round,
                              "summary": e.summary if e.answered else
                              ("the teachers disagree: you settle it" if teacher == self.reviewer else
                               f"the teachers disagree: {self.reviewer} settles it") if e.disputed else
                              "waiting for the other teachers",
                              "by": None if e.answered or teacher is None else teacher,
                              "revisable": e.answered and not closed(e.round)
                              and (self.overlap <= 1 or teacher == self.reviewer)} for e in mine],
            }

