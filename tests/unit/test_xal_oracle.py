"""The explain_label question: validator, explanation bank, the simulated VADER-lexicon teacher, and the LLM
client / oracle against a stand-in OpenAI-compatible server on loopback (retries, cache, concurrency,
re-ask of invalid answers, a resumed run that pays for nothing twice)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from exil.common.errors import ExilError
from exil.common.journal import Journal
from exil.common.oracle.asker import Asker
from exil.common.oracle.base import validate
from exil.common.oracle.explanations import ExplanationBank, explanation_question
from exil.common.oracle.lexicon import LexiconTeacher
from exil.common.oracle.llm import ChatClient, LLMOracle
from exil.common.oracle.question import InvalidAnswer, OracleContext, Question
from exil.common.oracle.simulated import SimulatedOracle


class FakeTexts:
    """What the oracles read of a text data module."""

    class_names = ["rotten", "fresh"]
    texts = {0: "a great and fun movie", 1: "a dull mess", 2: "the plot"}

    def text_of(self, i):
        return (self.texts[int(i)],)

    def item_id(self, i):
        return str(100 + int(i))

    def true_label(self, i):
        return {0: 1, 1: 0, 2: 1}[int(i)]


def octx(tmp_path) -> OracleContext:
    return OracleContext(FakeTexts(), FakeTexts.class_names, Path(tmp_path) / "oracle")


def test_validator_normalises_and_rejects(tmp_path):
    q = explanation_question(0, 1, ("a great movie",))
    ctx = octx(tmp_path)
    assert validate(q, {"explanations": {"fresh": " good ", "ROTTEN": "bad"}}, ctx) == \
        {"label": 1, "explanations": ["bad", "good"]}
    assert validate(q, {"label": 1, "explanations": ["bad", "good"]}, ctx)["explanations"] == ["bad", "good"]
    for bad in ({"explanations": ["bad"]}, {"explanations": ["", "good"]}, "good", {"explanations": {"fresh": "x"}}):
        with pytest.raises(InvalidAnswer):
            validate(q, bad, ctx)


def test_explanation_bank(tmp_path):
    path = tmp_path / "bank.jsonl"
    rows = [{"id": 100, "label": "fresh", "explanation": "it is great"}, {"id": 100, "label": "rotten", "explanation": "no"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    oracle = SimulatedOracle(explainer=ExplanationBank(path))
    ctx = octx(tmp_path)
    a = validate(explanation_question(0, 1, ("",)), oracle.answer(explanation_question(0, 1, ("",)), ctx), ctx)
    assert a == {"label": 1, "explanations": ["no", "it is great"]}
    with pytest.raises(ExilError, match="item id 101"):
        oracle.answer(explanation_question(1, 0, ("",)), ctx)
    with pytest.raises(ExilError, match="oracle.explainer"):
        SimulatedOracle().answer(explanation_question(0, 1, ("",)), ctx)


def test_simulated_lexicon_teacher_reasonable_and_unreasonable(tmp_path):
    teacher = LexiconTeacher({"fresh": 1, "rotten": -1}, top=2)
    ctx = octx(tmp_path)
    fresh = teacher.explain(explanation_question(0, 1, ("",)), ctx)["explanations"]
    assert fresh == ["rotten because of the negative words great, fun", "fresh because of the positive words great, fun"]
    rotten = teacher.explain(explanation_question(1, 0, ("",)), ctx)["explanations"]
    assert rotten[0].startswith("rotten because of the negative words") and "dull" in rotten[0] and "mess" in rotten[0]
    assert teacher.explain(explanation_question(2, 1, ("",)), ctx)["explanations"][1] == \
        "fresh although the review has no clearly positive words"


class Server:
    """A stand-in chat endpoint: fails the first ``fail`` requests with 500, replies ``empty_first`` empty
    answers next, then "because <last word of the prompt>"; records requests and peak concurrency."""

    def __init__(self, fail: int = 0, empty_first: int = 0, delay: float = 0.0, status: int = 500):
        self.fail, self.empty_first, self.delay, self.status = fail, empty_first, delay, status
        self.requests, self.in_flight, self.peak, self.lock = [], 0, 0, threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.requests.append((self.path, self.headers.get("Authorization"), body))
                    n = len(owner.requests)
                    owner.in_flight += 1
                    owner.peak = max(owner.peak, owner.in_flight)
                time.sleep(owner.delay)
                with owner.lock:
                    owner.in_flight -= 1
                if n <= owner.fail:
                    self.send_response(owner.status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                content = "" if n <= owner.fail + owner.empty_first else \
                    "because " + body["messages"][-1]["content"].rstrip(".").split()[-1]
                out = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    servers = []

    def make(**kw):
        servers.append(Server(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def client(server, tmp_path=None, **kw):
    return ChatClient(server.url, "stand-in", backoff=0.01, max_backoff=0.02, timeout=5, **kw)


def test_client_retries_server_errors_and_caches(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    s = server_factory(fail=2)
    c = client(s, retries=3, api_key_env="TEST_LLM_KEY", cache_path=tmp_path / "cache.jsonl")
    msgs = [{"role": "user", "content": "why fresh"}]
    assert c.complete(msgs) == "because fresh" and len(s.requests) == 3 and c.requests == 3
    path, auth, body = s.requests[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test" and body["model"] == "stand-in"
    assert c.complete(msgs) == "because fresh" and len(s.requests) == 3  # a cache hit
    again = client(s, cache_path=tmp_path / "cache.jsonl")  # a new process reads the cache file
    assert again.complete(msgs) == "because fresh" and len(s.requests) == 3


def test_client_gives_up_with_a_clear_error(server_factory):
    with pytest.raises(ExilError, match="failed 2 times.*HTTP 500"):
        client(server_factory(fail=10), retries=1).complete([{"role": "user", "content": "x"}])
    s = server_factory(fail=10, status=401)
    with pytest.raises(ExilError, match="refused the request"):
        client(s, retries=5).complete([{"role": "user", "content": "x"}])
    assert len(s.requests) == 1  # not retried


def test_client_bounds_concurrency(server_factory):
    s = server_factory(delay=0.05)
    c = client(s, concurrency=2)
    out = c.complete_many([[{"role": "user", "content": f"why {i}"}] for i in range(6)])
    assert out == [f"because {i}" for i in range(6)] and s.peak == 2


def test_llm_oracle_reasks_invalid_answers_and_resume_pays_nothing_twice(server_factory, tmp_path):
    s = server_factory(empty_first=1)
    oracle = LLMOracle(client(s, concurrency=2), labels=SimulatedOracle(), task="sentiment",
                       verbalizer={"fresh": "positive", "rotten": "negative"})
    ctx = octx(tmp_path)
    journal = Journal(tmp_path / "journal.sqlite")
    asker = Asker(oracle, journal, ctx)
    label = asker(0, Question("label", key="0", item=0))
    answer = asker(0, explanation_question(0, label, FakeTexts().text_of(0)))
    assert label == 1 and answer == {"label": 1, "explanations": ["because negative", "because positive"]}
    assert len(s.requests) == 3  # 2 prompts, one came back empty and was asked again
    prompts = [b["messages"][-1]["content"] for _, _, b in s.requests]
    assert any("a great and fun movie" in p and "positive" in p for p in prompts)
    journal.close()
    # a resumed run: a fresh oracle and client, the same journal: the answer is reused
    journal = Journal(tmp_path / "journal.sqlite")
    oracle2 = LLMOracle(client(s), labels=SimulatedOracle(), task="sentiment")
    again = Asker(oracle2, journal, ctx)(0, explanation_question(0, 1, FakeTexts().text_of(0)))
    assert again == answer and len(s.requests) == 3
    # a question cut off by a kill after its requests were paid: the request cache answers it
    oracle3 = LLMOracle(client(s), labels=SimulatedOracle(), task="sentiment",
                        verbalizer={"fresh": "positive", "rotten": "negative"})
    assert oracle3.answer(explanation_question(0, 1, FakeTexts().text_of(0)), ctx)["explanations"] == answer["explanations"]
    assert len(s.requests) == 3
    journal.close()


def test_asking_many_explanations_runs_requests_concurrently_across_items(server_factory, tmp_path):
    s = server_factory(delay=0.05)
    oracle = LLMOracle(client(s, concurrency=4), labels=SimulatedOracle(), task="sentiment")
    journal = Journal(tmp_path / "journal.sqlite")
    asker = Asker(oracle, journal, octx(tmp_path))
    questions = [explanation_question(i, FakeTexts().true_label(i), FakeTexts().text_of(i)) for i in range(3)]
    answers = asker.many(0, questions)
    # 3 items × 2 classes: the 6 prompts were in flight 4 at a time, not 2 (one item's) at a time
    assert len(s.requests) == 6 and s.peak == 4
    assert [a["label"] for a in answers] == [1, 0, 1] and all(len(a["explanations"]) == 2 for a in answers)
    assert {(r["key"], r["answer"]["label"]) for r in journal.answers(0)} == {(q.key, q.payload["label"]) for q in questions}
    assert asker.many(0, questions) == answers and len(s.requests) == 6  # journaled: reused, nothing re-sent
    journal.close()


def test_a_person_at_the_terminal_explains_every_label_and_is_reasked_on_an_empty_one(tmp_path):
    from exil.common.oracle.terminal import TerminalOracle

    typed = iter(["so much fun", "", "so much fun", "some might find it silly"])
    prompts, printed = [], []
    oracle = TerminalOracle(input_fn=lambda p: (prompts.append(p), next(typed))[1], print_fn=printed.append)
    journal = Journal(tmp_path / "journal.sqlite")
    answer = Asker(oracle, journal, octx(tmp_path))(0, explanation_question(0, 1, FakeTexts().text_of(0)))
    # the gold label (fresh) first, then the other class; the empty rotten explanation was asked again
    assert answer == {"label": 1, "explanations": ["some might find it silly", "so much fun"]}
    assert prompts == ["Why is it fresh? > ", "Why might someone (wrongly) say rotten? > "] * 2
    assert "text: a great and fun movie" in printed and "label: fresh" in printed
    assert any("rotten are empty" in p for p in printed)
    assert journal.answers(0)[0]["answer"] == answer
    journal.close()


def test_one_question_asks_the_label_too_of_every_teacher(server_factory, tmp_path):
    """An explain_label question without a label (one teacher labels and explains): the answer must name the label,
    the simulated teacher gives the label its label question would (noise included), the LLM oracle takes it from
    its labels oracle, and a person at the terminal types it first (a wrong one is asked again)."""
    from exil.common.oracle.explanations import label_question
    from exil.common.oracle.terminal import TerminalOracle

    ctx = octx(tmp_path)
    q = explanation_question(0, None, FakeTexts().text_of(0))
    with pytest.raises(InvalidAnswer, match="choose the item's label"):
        validate(q, {"explanations": ["bad", "good"]}, ctx)
    assert validate(q, {"label": "rotten", "explanations": ["bad", "good"]}, ctx)["label"] == 0
    noisy = SimulatedOracle(noise=0.5, explainer=LexiconTeacher({"fresh": 1, "rotten": -1}), seed=3)
    items = [explanation_question(i, None, FakeTexts().text_of(i)) for i in range(3)]
    labels = [validate(x, noisy.answer(x, ctx), ctx)["label"] for x in items]
    assert labels == [noisy.answer(label_question(x), ctx) for x in items]
    assert labels != [FakeTexts().true_label(i) for i in range(3)]  # the noise flipped one, the same one
    s = server_factory()
    llm = LLMOracle(client(s), labels=SimulatedOracle(), task="sentiment")
    assert validate(q, llm.answer(q, ctx), ctx)["label"] == 1 and len(s.requests) == 2
    typed = iter(["maybe", "1", "so much fun", "some might find it silly"])
    prompts = []
    term = TerminalOracle(input_fn=lambda p: (prompts.append(p), next(typed))[1], print_fn=lambda *a: None)
    journal = Journal(tmp_path / "journal.sqlite")
    answer = Asker(term, journal, ctx)(0, q)
    assert answer == {"label": 1, "explanations": ["some might find it silly", "so much fun"]}
    assert prompts[:3] == ["label? [0=rotten, 1=fresh] > "] * 2 + ["Why is it fresh? > "]
    journal.close()
