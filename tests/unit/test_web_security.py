"""The teacher page's server against requests a person's browser would never send from the page itself: other
origins (cross-site request forgery), cookies without the page's header, framing, bodies that are not what an
endpoint takes, and more open long polls than the server has threads — over real HTTP to a served run."""

from __future__ import annotations

import json
import threading
import time

import httpx

from exil.common.web.app import MAX_DEPTH, cookie_name
from tests.unit.test_web_oracle import ask_in_background, client, labels


def base(oracle) -> str:
    return f"http://127.0.0.1:{oracle.port}"


def test_a_change_from_another_origin_or_without_the_page_s_header_is_refused(served):
    oracle, asker, journal = served
    job = ask_in_background(asker, 0, labels(2))
    qid = client(oracle).post("/api/next", json={}).json()["question"]["id"]
    body = json.dumps({"id": qid, "answer": 1})
    token = {"X-Exil-Token": oracle.token, "X-Exil-Tab": "x"}
    attacks = {
        # what `fetch(..., {mode: "no-cors", credentials: "include"})` from another port can send: the cookie,
        # a "simple" content type, no custom header
        "cookie, text/plain": dict(headers={"Content-Type": "text/plain"},
                                   cookies={cookie_name(oracle.token): oracle.token}),
        "cookie, form": dict(headers={"Content-Type": "application/x-www-form-urlencoded"},
                             cookies={cookie_name(oracle.token): oracle.token}),
        "cookie, JSON, no header": dict(headers={"Content-Type": "application/json"},
                                        cookies={cookie_name(oracle.token): oracle.token}),
        "token, text/plain": dict(headers={**token, "Content-Type": "text/plain"}),
        "token, JSON, another origin": dict(headers={**token, "Content-Type": "application/json",
                                                     "Origin": "http://127.0.0.1:9"}),
        "token, JSON, same site other port": dict(headers={**token, "Content-Type": "application/json",
                                                           "Sec-Fetch-Site": "same-site"}),
        "token, JSON, cross site": dict(headers={**token, "Content-Type": "application/json",
                                                 "Sec-Fetch-Site": "cross-site"}),
    }
    for name, kw in attacks.items():
        for path, payload in (("/api/answer", body), ("/api/review", '{"action": "hold"}'), ("/api/release", "{}")):
            r = httpx.post(base(oracle) + path, content=payload, timeout=10, **kw)
            assert r.status_code == 403, (name, path, r.status_code, r.text)
    assert journal.answers() == []
    # the page itself: its header, JSON, its own origin
    ok = httpx.post(base(oracle) + "/api/answer", content=body, timeout=10,
                    headers={**token, "Content-Type": "application/json", "Origin": base(oracle),
                             "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200 and ok.json()["saved"], ok.text
    client(oracle, "x").post("/api/answer", json={"id": ok.json()["next"]["id"], "answer": 0})
    job["thread"].join(10)
    assert len(journal.answers()) == 2


def test_every_response_forbids_framing_and_foreign_scripts(served):
    oracle, _, _ = served
    for r in (client(oracle).get("/"), client(oracle).get("/api/state"), client(oracle, token=None).get("/"),
              client(oracle).get("/static/app.js")):
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "object-src 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"


def test_each_run_has_its_own_cookie(served):
    oracle, _, _ = served
    r = httpx.get(f"{base(oracle)}/?token={oracle.token}", timeout=10)
    assert r.cookies.get(cookie_name(oracle.token)) == oracle.token
    assert cookie_name(oracle.token) != cookie_name(oracle.token + "x") and oracle.token not in cookie_name(oracle.token)
    # another run's cookie (same machine, same cookie jar) does not stand in for this one's
    other = httpx.get(f"{base(oracle)}/", cookies={cookie_name("another run"): "another run"}, timeout=10)
    assert other.status_code == 403


def test_teachers_sharing_one_browser_keep_their_own_tabs_and_no_other_origin_answers_as_them(team):
    """A team on a shared machine: alice's and bob's sign-ins are both in one browser's cookie jar. Each reloaded
    tab is still its own teacher's (the page's token is the named teacher's), the bare page asks whose it is, and
    a page of another origin, holding both cookies, can answer as neither."""
    import re

    oracle, asker, journal = team
    tokens = {n: oracle.urls[n].split("token=")[1] for n in ("alice", "bob")}
    browser = httpx.Client(base_url=base(oracle), timeout=10)  # one cookie jar for every tab
    for name, tok in tokens.items():
        r = browser.get(f"/?token={tok}")
        assert r.status_code == 303 and r.headers["location"] == f"/?teacher={name}" and tok not in r.headers["location"]
    assert len(browser.cookies) == 2
    for name, tok in tokens.items():  # a reload of each teacher's tab
        page = browser.get(f"/?teacher={name}")
        assert page.status_code == 200, page.text
        assert re.search(r'name="exil-token" content="([^"]*)"', page.text).group(1) == tok
        assert f"· {name}" in page.text and f"· {'bob' if name == 'alice' else 'alice'}" not in page.text
    bare = browser.get("/")
    assert bare.status_code == 409 and "teacher=alice" in bare.text and "teacher=bob" in bare.text
    assert browser.get("/?teacher=carol").status_code == 403  # carol never signed in here
    job = ask_in_background(asker, 0, labels(1))
    qid = httpx.post(base(oracle) + "/api/next", json={}, timeout=10,
                     headers={"X-Exil-Token": tokens["alice"], "X-Exil-Tab": "t"}).json()["question"]["id"]
    for content_type in ("text/plain", "application/json"):
        for path, body in (("/api/answer", {"id": qid, "answer": 1}), ("/api/review", {"action": "hold"})):
            r = browser.post(path, content=json.dumps(body), headers={"Content-Type": content_type,
                                                                      "Origin": "http://127.0.0.1:9"})
            assert r.status_code == 403, (path, content_type, r.text)
    assert journal.opinions(0) == [] and journal.answers() == [] and "answers" not in job


def test_bodies_and_parameters_an_endpoint_does_not_take_are_4xx_with_the_reason(served):
    oracle, asker, _ = served
    ask_in_background(asker, 0, labels(1))
    c = client(oracle)
    deep = "[" * 50_000 + "]" * 50_000
    r = c.post("/api/answer", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 413) and ("nested" in r.json()["error"] or "larger" in r.json()["error"])
    medium = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)  # under the size limit, over the depth limit
    r = c.post("/api/answer", content=f'{{"id": "x", "answer": {medium}}}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
    for body in ("[]", "1", '"id"', "null"):
        r = c.post("/api/preview", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "{id, data}" in r.json()["error"], body
    r = c.post("/api/answer", content="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    for query in ("wait=abc", "since=abc", "wait=nan", "wait=-1", "wait=inf"):
        r = c.get(f"/api/state?{query}")
        assert r.status_code == 400 and "seconds" in r.json()["error"], query


def test_open_long_polls_hold_no_thread(served):
    """60 pages waiting for news (more than the server's 40 worker threads) and a plain request still answered
    while every one of them is waiting; one change then wakes them all."""
    oracle, _, _ = served
    version = client(oracle).get("/api/state").json()["version"]
    done: list[int] = []

    def poll():
        with client(oracle, "p") as c:
            done.append(c.get(f"/api/state?since={version}&wait=60", timeout=90).json()["version"])

    polls = [threading.Thread(target=poll, daemon=True) for _ in range(60)]
    for t in polls:
        t.start()
    deadline = time.monotonic() + 20
    while oracle.session.waiting < 60 and time.monotonic() < deadline:  # every poll waiting on the server
        time.sleep(0.05)
    time.sleep(0.5)
    # a plain request is answered while all 60 wait (a thread per poll would leave it queued behind them for
    # their 60 s: past this 10 s client timeout)
    assert client(oracle).get("/api/state", timeout=10).status_code == 200 and not done
    oracle.session.set_status({"stage": "fit", "round": 0})  # news: every page learns it
    for t in polls:
        t.join(30)
    assert len(done) == 60 and all(v > version for v in done)
