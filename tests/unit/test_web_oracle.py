"""The web teacher's server, in-process over real HTTP: the token, the host check, bounded bodies, no paths
served from disk; answers validated and journaled before "saved"; claims per tab; taken, revised and in-use
answers; routing labels elsewhere. (A real browser answers every view in tests/browser.)"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from exil.common.errors import ConfigError
from exil.common.journal import Journal
from exil.common.oracle.asker import Asker
from exil.common.oracle.question import OracleContext, Question
from exil.common.oracle.router import LabelFile, RoutingOracle
from exil.common.oracle.simulated import SimulatedOracle
from exil.common.oracle.web import WebOracle
from tests.unit.test_oracle import Tiny


def client(oracle: WebOracle, tab: str = "a", token: str | None = "ok") -> httpx.Client:
    headers = {"X-Exil-Tab": tab}
    if token is not None:
        headers["X-Exil-Token"] = oracle.token if token == "ok" else token
    return httpx.Client(base_url=f"http://127.0.0.1:{oracle.port}", headers=headers, timeout=10)


def ask_in_background(asker: Asker, round: int, questions: list[Question]) -> dict:
    out: dict = {}

    def work():
        out["answers"] = asker.many(round, questions)
        out["stale"] = asker.settle(round)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    out["thread"] = t
    deadline = time.monotonic() + 5
    while not asker.oracle.session.entries and time.monotonic() < deadline:
        time.sleep(0.01)
    return out


def labels(n: int, payload: dict | None = None) -> list[Question]:
    return [Question("label", str(i), item=i, payload=dict(payload or {})) for i in range(n)]


def test_every_request_needs_the_token_and_the_first_visit_trades_it_for_a_cookie(served):
    oracle, _, _ = served
    assert client(oracle, token=None).get("/api/state").status_code == 403
    assert client(oracle, token="wrong").get("/api/state").status_code == 403
    assert client(oracle, token=None).get("/static/app.js").status_code == 403
    assert client(oracle, token=None).get("/").status_code == 403
    with httpx.Client(base_url=f"http://127.0.0.1:{oracle.port}") as c:
        r = c.get(f"/?token={oracle.token}")
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200  # the cookie now
        # ... but never for the API, which another site's request could carry it to: the header only
        assert c.get("/api/state").status_code == 403 and "X-Exil-Token" in c.get("/api/state").json()["error"]
    assert client(oracle).get("/api/state").status_code == 200


def test_only_loopback_hosts_no_files_by_path_and_bounded_bodies(served):
    oracle, _, _ = served
    c = client(oracle)
    assert c.get("/api/state", headers={"Host": "evil.example:80"}).status_code == 421  # DNS rebinding
    for path in ("/static/../../../../etc/passwd", "/static/..%2f..%2fapp.py", "/media/../journal.sqlite.png",
                 "/views/..%2f..%2fetc%2fpasswd.js"):
        assert c.get(path).status_code in (404, 403), path
    assert c.post("/api/answer", content=b"x" * 30_000, headers={"Content-Type": "application/json"}).status_code == 413


def test_binding_another_address_without_a_token_is_refused():
    with pytest.raises(ConfigError, match="without a token"):
        WebOracle(host="0.0.0.0", token=False)
    WebOracle(host="127.0.0.1", token=False)  # loopback may go without


def test_answers_are_validated_journaled_then_saved_and_tabs_get_different_questions(served):
    oracle, asker, journal = served
    job = ask_in_background(asker, 0, labels(3, {"probs": [0.2, 0.5, 0.3], "strategy": "entropy", "score": 1.2}))
    a, b = client(oracle, "a"), client(oracle, "b")
    qa, qb = a.post("/api/next", json={}).json()["question"], b.post("/api/next", json={}).json()["question"]
    assert qa["id"] != qb["id"] and qa["kind"] == "label"
    assert a.post("/api/next", json={}).json()["question"]["id"] == qa["id"]  # a reloaded tab gets its own back
    view = qa["view"]
    assert view["predictions"][0] == {"class": 1, "name": "dog", "p": 0.5} and "entropy" in view["why"]
    assert view["item"]["image"]["src"].startswith("media/") and a.get("/" + view["item"]["image"]["src"]).content[:4] == b"\x89PNG"
    bad = a.post("/api/answer", json={"id": qa["id"], "answer": "horse"})
    assert bad.status_code == 422 and "not a class" in bad.json()["error"]
    assert journal.answers() == []  # nothing written for an invalid answer
    ok = a.post("/api/answer", json={"id": qa["id"], "answer": "bird"})
    assert ok.status_code == 200 and ok.json()["saved"] and ok.json()["summary"] == "bird"
    assert journal.answer(0, "label", qa["key"]) == (True, 2)  # in the journal when "saved" came back
    taken = b.post("/api/answer", json={"id": qa["id"], "answer": 0})
    assert taken.status_code == 409 and taken.json()["taken"] and taken.json()["next"]["id"] == qb["id"]
    nxt = ok.json()["next"]
    assert nxt is not None and nxt["id"] not in (qa["id"], qb["id"])
    assert b.post("/api/answer", json={"id": qb["id"], "answer": 0}).status_code == 200
    assert a.post("/api/answer", json={"id": nxt["id"], "answer": 1}).status_code == 200
    job["thread"].join(5)
    assert job["answers"] == [2, 0, 1]  # in question order, whatever order they were answered in
    assert {r["oracle"] for r in journal.answers()} == {"WebOracle"}


def test_a_revision_before_the_round_settles_counts_and_after_it_is_refused(served):
    oracle, asker, journal = served
    job = ask_in_background(asker, 1, labels(2))
    c = client(oracle)
    q0 = c.post("/api/next", json={}).json()["question"]
    q1 = c.post("/api/answer", json={"id": q0["id"], "answer": 0}).json()["next"]
    c.post("/api/answer", json={"id": q1["id"], "answer": 1})
    deadline = time.monotonic() + 5
    while oracle.session.review is None and time.monotonic() < deadline:  # the method has read the answers
        time.sleep(0.005)
    revised = c.post("/api/answer", json={"id": q0["id"], "answer": 2, "revise": True})  # during the review
    assert revised.status_code == 200 and revised.json()["summary"] == "bird"
    job["thread"].join(5)
    assert job["stale"] is True  # the method had read 0: its ask stage runs again on the newest answers
    assert asker.many(1, labels(2)) == [2, 1] and asker.settle(1) is False
    assert journal.answer(1, "label", q0["key"]) == (True, 2)
    assert [r["answer"] for r in journal.revisions(1)] == [2] and journal.answers(1)[0]["revisions"] == 1
    late = c.post("/api/answer", json={"id": q0["id"], "answer": 1, "revise": True})
    assert late.status_code == 410 and "already in use" in late.json()["error"]


def test_state_reports_the_loop_and_long_polls(served):
    oracle, _, _ = served
    c = client(oracle)
    v = c.get("/api/state").json()["version"]
    threading.Timer(0.2, oracle.status, args=({"round": 2, "rounds": 5, "stage": "fit", "labels": 30,
                                               "budget": 50, "curve": [[10, 0.5], [20, 0.6]]},)).start()
    t0 = time.monotonic()
    s = c.get(f"/api/state?since={v}&wait=5").json()
    assert 0.1 < time.monotonic() - t0 < 4 and s["status"]["text"] == "the model is training"
    assert s["status"]["curve"] == [[10, 0.5], [20, 0.6]] and s["status"]["labels"] == 30


def test_router_sends_labels_to_a_file_and_the_rest_to_the_web(tmp_path):
    dm = Tiny()
    dm.setup()
    ctx = OracleContext(dm, dm.class_names, tmp_path / "oracle")
    (tmp_path / "labels.csv").write_text("id,label\n0,cat\n1,bird\n")
    web = WebOracle(print_fn=lambda s: None)
    router = RoutingOracle({"label": LabelFile(tmp_path / "labels.csv")}, default=web)
    assert not router.labels_from_truth and RoutingOracle({"label": SimulatedOracle()}, web).labels_from_truth
    j = Journal(tmp_path / "j.sqlite")
    asker = Asker(router, j, ctx)
    assert asker.many(0, labels(2)) == [0, 2] and web._server is None  # no page needed for labels
    assert {r["oracle"] for r in j.answers()} == {"LabelFile"}
    j.close()


def test_a_closed_tab_s_claim_lapses_and_wakes_the_waiting_pages(tmp_path):
    dm = Tiny()
    dm.setup()
    ctx = OracleContext(dm, dm.class_names, tmp_path / "oracle")
    oracle = WebOracle(claim_seconds=0.4, review_seconds=0, print_fn=lambda s: None)
    journal = Journal(tmp_path / "journal.sqlite")
    asker = Asker(oracle, journal, ctx)
    oracle.start(ctx)
    try:
        job = ask_in_background(asker, 0, labels(1))
        a, b = client(oracle, "a"), client(oracle, "b")
        q = a.post("/api/next", json={}).json()["question"]
        assert b.post("/api/next", json={}).json()["question"] is None  # held by tab a ...
        a.close()  # ... which is closed
        state = b.get("/api/state").json()
        assert state["in_other_tabs"] == 1
        t0 = time.monotonic()
        woke = b.get(f"/api/state?since={state['version']}&wait=10").json()
        assert time.monotonic() - t0 < 3 and woke["in_other_tabs"] == 0  # woken when the claim lapsed
        got = b.post("/api/next", json={"keep": "0:label:9"}).json()["question"]  # keep: not open, ignored
        assert got["id"] == q["id"]
        assert b.post("/api/next", json={"keep": q["id"]}).json()["question"]["id"] == q["id"]
        assert b.post("/api/answer", json={"id": q["id"], "answer": 1}).status_code == 200
        job["thread"].join(5)
        assert job["answers"] == [1]
    finally:
        oracle.close()
        journal.close()


def test_keeping_the_shown_question_gives_back_other_claims(served):
    oracle, asker, _ = served
    ask_in_background(asker, 0, labels(3))
    a, b = client(oracle, "a"), client(oracle, "b")
    first = a.post("/api/next", json={}).json()["question"]
    third = {"id": "0:label:2"}
    assert a.post("/api/next", json={"keep": third["id"]}).json()["question"]["id"] == third["id"]
    assert b.post("/api/next", json={}).json()["question"]["id"] == first["id"]  # a's earlier claim went back


def as_teacher(oracle: WebOracle, name: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{oracle.port}", timeout=10,
                        headers={"X-Exil-Tab": "t", "X-Exil-Token": oracle.urls[name].split("token=")[1]})


def test_named_teachers_each_answer_with_their_own_token_and_disagreements_go_to_the_reviewer(team):
    oracle, asker, journal = team
    assert client(oracle).get("/api/state").status_code == 403  # a team has no unnamed token
    work = ask_in_background(asker, 0, labels(2, {"probs": [0.1, 0.8, 0.1]}))
    alice, bob, carol = (as_teacher(oracle, n) for n in ("alice", "bob", "carol"))
    q = alice.post("/api/next", json={}).json()["question"]
    assert "predictions" not in q["view"]  # show_model_explanation=false: nothing to be anchored by
    assert alice.post("/api/answer", json={"id": q["id"], "answer": 1, "seconds": 2.5}).status_code == 200
    assert alice.post("/api/answer", json={"id": q["id"], "answer": 1}).status_code == 409  # opinions are final
    assert bob.post("/api/next", json={}).json()["question"]["id"] == q["id"]
    assert bob.post("/api/answer", json={"id": q["id"], "answer": 1, "seconds": 4.0}).status_code == 200
    q2 = alice.post("/api/next", json={}).json()["question"]
    alice.post("/api/answer", json={"id": q2["id"], "answer": 0, "seconds": 1.0})
    bob.post("/api/answer", json={"id": q2["id"], "answer": 2, "seconds": 1.0})
    assert alice.post("/api/next", json={}).json()["question"] is None  # the dispute is carol's
    assert bob.post("/api/answer", json={"id": q2["id"], "answer": 2}).status_code == 409
    disputed = carol.post("/api/next", json={}).json()["question"]
    assert disputed["id"] == q2["id"] and {d["teacher"] for d in disputed["dispute"]} == {"alice", "bob"}
    # a revision is no way round the review: nobody but the reviewer settles or revises a team's answer (the round
    # is still open: q, settled by agreement, could be revised by the reviewer alone)
    assert bob.post("/api/answer", json={"id": q2["id"], "answer": 2, "revise": True}).status_code == 409
    r = bob.post("/api/answer", json={"id": q["id"], "answer": 0, "revise": True})
    assert r.status_code == 409 and "only the reviewer (carol)" in r.json()["error"]
    listed = bob.get("/api/state").json()["answered"]
    assert [a["revisable"] for a in listed if a["id"] == q["id"]] == [False]
    assert carol.post("/api/answer", json={"id": q2["id"], "answer": 2, "seconds": 3.0}).status_code == 200
    work["thread"].join(5)
    assert work["answers"] == [1, 2]
    rows = {r["key"]: r for r in journal.answers()}
    assert (rows["0"]["teacher"], rows["0"]["seconds"]) == ("alice+bob", 6.5)
    assert (rows["1"]["teacher"], rows["1"]["seconds"]) == ("carol", 5.0)
    assert {(o["key"], o["teacher"]) for o in journal.opinions(0)} == {("0", "alice"), ("0", "bob"), ("1", "alice"),
                                                                        ("1", "bob")}
    assert journal.teacher_seconds() == 11.5
    from exil.common.teachers import teacher_rows

    got = {r["teacher"]: r for r in teacher_rows(journal.path.parent)}
    assert (got["alice"]["answers"], got["alice"]["total_s"], got["alice"]["matched"]) == (2, 3.5, 0.5)
    assert (got["bob"]["answers"], got["bob"]["total_s"], got["bob"]["matched"]) == (2, 5.0, 1.0)
    assert (got["carol"]["answers"], got["carol"]["reviews"], got["carol"]["total_s"], got["carol"]["matched"]) == \
        (0, 1, 3.0, None)


def test_xal_answers_of_two_teachers_that_give_different_labels_go_to_the_reviewer(team):
    """One question asks the label and the explanations (XAL): answers with the same label but other words settle
    on the first; different labels are a dispute, as for a label question, and the reviewer's answer stands."""
    from exil.common.oracle.explanations import explanation_question

    oracle, asker, journal = team
    qs = [explanation_question(i, None, (f"text {i}",)) for i in range(2)]
    work = ask_in_background(asker, 0, qs)
    alice, bob, carol = (as_teacher(oracle, n) for n in ("alice", "bob", "carol"))
    q = alice.post("/api/next", json={}).json()["question"]
    assert q["view"]["label"] is None and q["view"]["classes"]
    n = len(q["view"]["classes"])

    def xal(label, word):
        return {"label": label, "explanations": [f"{word} {c}" for c in range(n)]}

    assert alice.post("/api/answer", json={"id": q["id"], "answer": xal(1, "alice")}).status_code == 200
    assert bob.post("/api/answer", json={"id": q["id"], "answer": xal(1, "bob")}).status_code == 200
    q2 = alice.post("/api/next", json={}).json()["question"]
    alice.post("/api/answer", json={"id": q2["id"], "answer": xal(0, "alice")})
    bob.post("/api/answer", json={"id": q2["id"], "answer": xal(2, "bob")})
    disputed = carol.post("/api/next", json={}).json()["question"]
    assert disputed["id"] == q2["id"] and {d["teacher"] for d in disputed["dispute"]} == {"alice", "bob"}
    assert carol.post("/api/answer", json={"id": q2["id"], "answer": xal(2, "carol")}).status_code == 200
    work["thread"].join(5)
    assert [a["label"] for a in work["answers"]] == [1, 2]
    assert work["answers"][0]["explanations"][0] == "alice 0"  # agreed: the first teacher's words
    rows = {r["key"]: r for r in journal.answers()}
    assert rows["0"]["teacher"] == "alice+bob" and rows["1"]["teacher"] == "carol"
    from exil.common.teachers import teacher_rows

    got = {r["teacher"]: r for r in teacher_rows(journal.path.parent)}  # matched by label, not by the words
    assert (got["alice"]["matched"], got["bob"]["matched"], got["carol"]["reviews"]) == (0.5, 1.0, 1)


def test_a_team_with_an_overlap_it_cannot_fill_is_refused():
    with pytest.raises(ConfigError, match="oracle.overlap=3"):
        WebOracle(teachers=["a", "b"], overlap=3)
    with pytest.raises(ConfigError, match="oracle.reviewer=zoe"):
        WebOracle(teachers=["a", "b"], overlap=2, reviewer="zoe")


def test_opinions_given_before_a_kill_stand_and_an_agreed_question_settles_on_resume(team):
    """Two teachers agreed, then the run was killed before the settled answer was written: the resumed page
    settles it from the journal's opinions, and a half-answered one waits only for the teacher still missing."""
    oracle, asker, journal = team
    journal.add_opinion(0, "label", "0", "alice", 2, 1.5)
    journal.add_opinion(0, "label", "0", "bob", 2, 2.5)
    journal.add_opinion(0, "label", "1", "alice", 0, 1.0)
    work = ask_in_background(asker, 0, labels(2))
    bob = as_teacher(oracle, "bob")
    q = bob.post("/api/next", json={}).json()["question"]
    assert q["key"] == "1"  # item 0 is settled already; item 1 waits for bob alone
    assert as_teacher(oracle, "alice").post("/api/next", json={}).json()["question"] is None
    bob.post("/api/answer", json={"id": q["id"], "answer": 0, "seconds": 1.0})
    work["thread"].join(5)
    assert work["answers"] == [2, 0]
    rows = {r["key"]: (r["teacher"], r["seconds"]) for r in journal.answers()}
    assert rows == {"0": ("alice+bob", 4.0), "1": ("alice+bob", 2.0)}
