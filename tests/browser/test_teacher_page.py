"""A person answers every question kind on the teacher page of a real ``exil`` run, in headless Chromium: what
their keys, clicks, brush strokes and typing leave in the journal; refusals shown; a reload, a second tab,
a killed and resumed loop with the page still open, and a request without the token. Every view is
screenshotted into the test's folder (or $EXIL_SCREENSHOTS)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from exil.common.oracle.relevance import decode_mask
from tests.browser.conftest import Labeller, open_page, wait_question
from tests.text_fixtures import rotten_tomatoes, tiny_backbone_overrides, tokenizer_folder
from tests.unit.test_data import write_idx_folder

TINY = ["loop.threads=1", "trainer.max_epochs=1", "logger=csv"]


def mask_of(encoded: dict) -> np.ndarray:
    return decode_mask(encoded).numpy()


def test_labels_by_keyboard_through_a_reload_and_two_tabs(browser, exil_run, shots):
    run = exil_run(["oracle=web", "oracle.review_seconds=1", "loop.rounds=1", "loop.query_size=3",
                    "loop.initial_per_class=1", *TINY])
    page = open_page(browser, run)
    answer = Labeller()
    answered = answer.answered

    wait_question(page, "label")
    page.screenshot(path=str(shots / "label.png"))
    for key in (3, 1):
        answer(page, key)
    assert len(run.answers("label")) == 2

    page.reload()  # a reload mid-round loses nothing and does not show an answered question
    answer(page, 4)

    second = page.context.new_page()  # a second tab (same person, same cookie)
    second.goto(run.url.split("?")[0])
    a, b = wait_question(page, "label"), wait_question(second, "label")
    assert a != b  # two tabs never hold the same question
    second.keyboard.press("5")
    second.wait_for_function("id => document.querySelector('#question').dataset.id !== id", arg=b)
    answered[b] = 5
    page.wait_for_function("() => document.body.textContent.includes('open in other tabs')")  # second holds one
    second.close()  # ... and gives it back as it closes, not two minutes later
    page.wait_for_function("() => !document.body.textContent.includes('open in other tabs')", timeout=10_000)
    page.bring_to_front()  # the person goes back to the first tab
    answer(page, 6)

    given = {k: a for _, k, a in run.answers("label")}
    assert len(given) == 5 and sorted(given.values()) == sorted(answered.values())
    assert not page.errors


def test_a_killed_loop_resumes_with_the_page_still_open(browser, exil_run, shots):
    run = exil_run(["oracle=web", "oracle.review_seconds=1", "loop.rounds=1", "loop.query_size=3",
                    "loop.initial_per_class=1", *TINY])
    page = open_page(browser, run)
    answer = Labeller()
    answered = answer.answered

    for key in (3, 1, 4, 5, 6):
        answer(page, key)
    run.kill()  # the loop dies with the page open
    page.wait_for_selector("#connection", state="visible", timeout=15_000)
    page.screenshot(path=str(shots / "connection_lost.png"))
    given = {k: a for _, k, a in run.answers("label")}
    assert len(given) == 5 and sorted(given.values()) == sorted(answered.values())

    run.start(resume=True)  # same address and token: the open page carries on
    # the answers given before the kill are listed again, and can still be revised (issue 22 §2)
    page.wait_for_function("document.querySelectorAll('#answered li button.revise').length >= 5", timeout=60_000)
    listed = page.eval_on_selector_all("#answered li[data-id]", "els => els.map(e => e.dataset.id)")
    assert set(answered) <= set(listed)
    answer.last = None  # the question shown before the kill may be shown again: it was not answered
    bars = 0  # round 0's questions show the model's top classes (the initial set's have none to show)
    while run.proc.poll() is None:  # short waits: once the last question is answered the run ends by itself
        bars = max(bars, page.locator("#question .predictions .pred").count())
        try:
            answer(page, 7, timeout=3_000)
        except PlaywrightTimeout:  # the run trains between questions, or has just ended
            continue
    run.wait()
    assert bars >= 2
    rows = run.answers("label")
    assert len(rows) == 10 + 3 and len({(r, k) for r, k, _ in rows}) == 13  # each asked once, none lost
    assert {k: a for _, k, a in rows if k in given} == given
    assert not page.errors


@pytest.mark.slow  # CI: tests/unit/test_web_oracle.py sends every request without the token to a served run
def test_a_request_without_the_token_is_refused(browser, exil_run):
    run = exil_run(["oracle=web", "loop.rounds=0", "loop.initial_per_class=1", *TINY])
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(run.url.split("?")[0])
    assert response.status == 403 and "token" in page.inner_text("body")
    assert httpx.get(run.url.split("?")[0] + "api/state").status_code == 403
    assert httpx.get(run.url).status_code in (200, 303)


def test_caipi_corrections_by_clicking_segments(browser, exil_run, shots):
    run = exil_run(["dataset=decoy_digits", "method=caipi", "oracle=web_explanations", "oracle.default.review_seconds=1",
                    "method.hooks.segment_cell=2", "method.hooks.lime.num_samples=100", "loop.query_size=8",
                    "loop.initial_per_class=3", "loop.rounds=1", "loop.threads=1", "trainer.max_epochs=15",
                    "logger=csv"])
    page = open_page(browser, run)
    qid = wait_question(page, "correct_explanation")
    page.screenshot(path=str(shots / "correct_explanation.png"))
    buttons = page.locator("#question button.component")
    marked = [int(buttons.nth(i).get_attribute("data-component")) for i in (0, 2)]
    buttons.nth(0).click()
    buttons.nth(2).click()
    page.locator("#question button.submit").click()
    last = qid
    while run.proc.poll() is None:  # the other corrections: right for the right reasons
        try:
            last = wait_question(page, "correct_explanation", other_than=last, timeout=3_000)
        except PlaywrightTimeout:
            continue
        page.locator("#question button.right-reasons").click()
    run.wait()
    rows = run.answers("correct_explanation")
    assert rows[0][2] == marked and all(a == [] for _, _, a in rows[1:])
    cx = run.journal("SELECT COUNT(*) FROM extras WHERE kind = 'counterexample'")[0][0]
    assert cx == 2 * 3  # two wrongly relevant segments, three counterexamples each
    assert not page.errors


def test_relevance_masks_by_brush_and_by_cells(browser, exil_run, shots):
    run = exil_run(["dataset=decoy_digits", "method=rrr", "oracle=web_explanations", "oracle.default.review_seconds=1",
                    "loop.initial_per_class=null", "loop.initial_size=2", "loop.rounds=1", "loop.query_size=1", *TINY])
    page = open_page(browser, run)
    qid = wait_question(page, "relevance")
    canvas = page.locator("#question canvas.paint")
    box = canvas.bounding_box()
    page.locator('#question button[data-tool="relevant"]').click()
    page.mouse.move(box["x"] + 0.05 * box["width"], box["y"] + 0.1 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.45 * box["width"], box["y"] + 0.1 * box["height"], steps=8)
    page.mouse.up()
    page.locator('#question button[data-tool="irrelevant"]').click()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.9 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.95 * box["width"], box["y"] + 0.9 * box["height"], steps=8)
    page.mouse.up()
    page.wait_for_timeout(400)  # the draft is kept a moment after the last stroke
    page.reload()  # the painting survives a reload (issue 22: drafts were lost): the masks asserted below
    assert wait_question(page, "relevance") == qid
    page.screenshot(path=str(shots / "relevance.png"))
    page.locator("#question button.submit").click()
    other = wait_question(page, "relevance", other_than=qid)
    page.locator("#question button.cells").click()
    box = page.locator("#question canvas.paint").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator("#question button.submit").click()
    # round 0's question shows where the trained model looks (the initial set's model was not trained yet)
    third = wait_question(page, "relevance", other_than=other)
    assert page.locator("#question .model-saliency img").count() == 1
    page.screenshot(path=str(shots / "relevance_saliency.png"))
    page.locator("#question button.cells").click()
    box = page.locator("#question canvas.paint").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator("#question button.submit").click()
    run.wait()
    (r0, k0, first), (r1, k1, second), (r2, k2, _) = run.answers("relevance")
    assert r2 == 0 and k2 == third.split(":")[-1]
    assert k0 == qid.split(":")[-1] and k1 == other.split(":")[-1]
    rel, irr = mask_of(first["relevant"]), mask_of(first["irrelevant"])
    h, w = rel.shape
    assert rel[: h // 4, : w // 2].any() and not rel[h // 2:, :].any()  # the stroke along the top
    assert irr[3 * h // 4:, w // 2:].any() and not irr[: h // 2, :].any()  # the red stroke along the bottom
    cell = mask_of(second["relevant"])
    assert cell[h // 2, w // 2] and 0 < cell.sum() < h * w  # one cell at the centre
    assert not page.errors


def test_exbl_exemplars_picked_in_the_gallery_and_a_refusal_shown(browser, exil_run, shots):
    run = exil_run(["experiment=exbl_decoy_fashion_mnist", "dataset=decoy_digits", "dataset.pool_size=300",
                    "oracle=web_explanations", "oracle.default.review_seconds=1",
                    "loop.rounds=1", "trainer.max_epochs=2", "loop.threads=1", "logger=csv"])
    page = open_page(browser, run)
    wait_question(page, "choose_exemplars")
    cards = page.locator("#question .candidate")
    # every labelled image is a candidate for the method; a person is shown 12 of them, and told so (issue 22)
    assert cards.count() == 12 and "12 of the " in page.text_content("#question .exemplars-view")
    good, bad = int(cards.nth(0).get_attribute("data-item")), int(cards.nth(3).get_attribute("data-item"))
    cards.nth(0).locator("button.good").click()
    assert page.locator("#question button.submit").is_disabled()  # no bad one yet: cannot be sent
    assert run.answers("choose_exemplars") == []
    page.keyboard.press("4")  # by keyboard: point at the fourth card, mark it bad
    page.keyboard.press("b")
    page.screenshot(path=str(shots / "choose_exemplars.png"))
    page.locator("#question button.submit").click()
    run.wait()
    assert [a for _, _, a in run.answers("choose_exemplars")] == [{"good": good, "bad": bad}]
    assert not page.errors


def test_alice_contrast_with_live_parsing(browser, exil_run, shots, tmp_path):
    write_idx_folder(tmp_path / "fm", n_train=60, n_test=30)
    run = exil_run(["experiment=alice_fashion_mnist", f"dataset.root={tmp_path / 'fm'}", "dataset.images_per_class=4",
                    "dataset.image_size=32", "dataset.test_size=null", "backbone=small_cnn", "strategy.dims=4",
                    "loop.rounds=1", "trainer.max_epochs=1", "loop.threads=1", "method.hooks.saliency=0",
                    "oracle=web_explanations", "oracle.default.review_seconds=1", "logger=csv"])
    page = open_page(browser, run)
    wait_question(page, "contrast_classes")
    box = page.locator("#question textarea.sentence")
    box.type("it is just different")
    page.wait_for_selector("#question .parse-warning", state="visible")
    box.fill("")
    box.type("the first has a collar and long sleeves while the second has none")
    page.wait_for_function("() => document.querySelectorAll('#question .part').length >= 2")
    parts = sorted(page.locator("#question .part").all_inner_texts())
    page.screenshot(path=str(shots / "contrast_classes.png"))
    page.locator("#question button.submit").click()
    run.wait()
    ((_, key, sentence),) = run.answers("contrast_classes")
    assert sentence == "the first has a collar and long sleeves while the second has none"
    assert {"collar", "sleeve"} <= {p.strip().lower() for p in parts}
    assert not page.errors


@pytest.mark.slow  # CI: XAL's view, its refusal and its draft in the one-teacher test below
def test_xal_explanations_typed_and_empty_ones_refused(browser, exil_run, shots, tmp_path):
    data = tmp_path / "data"
    rotten_tomatoes(data, n=60)
    tok = tokenizer_folder(tmp_path)
    run = exil_run(["experiment=xal_rotten_tomatoes", f"paths.data_dir={data}", f"dataset.tokenizer=file:{tok}",
                    *tiny_backbone_overrides("bert2bert"), "loop.rounds=0", "loop.initial_size=2",
                    "dataset.max_length=16", "dataset.min_epoch_size=8", "dataset.test_items=10",
                    "method.hooks.max_explanation_length=10", "oracle=web_explanations",
                    "oracle.default.review_seconds=1", *TINY])
    page = open_page(browser, run)
    qid = wait_question(page, "explain_label")
    boxes = page.locator("#question textarea.explanation")
    assert boxes.count() == 2
    boxes.nth(0).fill("because of the positive words")
    page.locator("#question button.submit").click()  # the other class's explanation is empty: not sent
    page.wait_for_timeout(500)
    assert run.answers("explain_label") == [] and page.get_attribute("#question", "data-id") == qid
    boxes.nth(1).fill("someone might miss that the words are positive")
    page.reload()  # typed text survives a reload (issue 22: drafts were lost)
    assert wait_question(page, "explain_label") == qid
    assert page.locator("#question textarea.explanation").nth(1).input_value() == \
        "someone might miss that the words are positive"
    page.screenshot(path=str(shots / "explain_label_refused.png"))
    page.locator("#question button.submit").click()
    wait_question(page, "explain_label", other_than=qid)
    for n in range(2):
        page.locator("#question textarea.explanation").nth(n).fill(f"reason {n}")
    page.locator("#question button.submit").click()
    run.wait()
    (_, _, first), (_, _, second) = run.answers("explain_label")
    gold = first["label"]
    assert first["explanations"][gold] == "because of the positive words"
    assert first["explanations"][1 - gold] == "someone might miss that the words are positive"
    assert sorted(second["explanations"]) == ["reason 0", "reason 1"]
    assert not page.errors


def test_xal_one_teacher_labels_and_explains_each_text_once(browser, exil_run, shots, tmp_path):
    """Issue 22: with one teacher for labels and explanations, XAL asks each text once — the class chosen by key
    or click in the same view as the explanations — and the journal's labels are the chosen ones."""
    data = tmp_path / "data"
    rotten_tomatoes(data, n=60)
    tok = tokenizer_folder(tmp_path)
    run = exil_run(["experiment=xal_rotten_tomatoes", f"paths.data_dir={data}", f"dataset.tokenizer=file:{tok}",
                    *tiny_backbone_overrides("bert2bert"), "loop.rounds=0", "loop.initial_size=2",
                    "dataset.max_length=16", "dataset.min_epoch_size=8", "dataset.test_items=10",
                    "method.hooks.max_explanation_length=10", "oracle=web", "oracle.review_seconds=1", *TINY])
    page = open_page(browser, run)
    qid = wait_question(page, "explain_label")
    assert page.locator("#question textarea.explanation").count() == 0  # nothing to explain before a class
    page.keyboard.press("1")  # the class by its key: the gold field comes first and takes the focus
    boxes = page.locator("#question textarea.explanation")
    assert boxes.count() == 2 and boxes.nth(0).get_attribute("data-class") == "1"
    assert page.evaluate("document.activeElement.dataset.class") == "1" and boxes.nth(0).input_value() == ""
    boxes.nth(0).type("the words are warm")
    page.locator("#question button.submit").click()  # the other class's explanation is empty: not sent
    page.wait_for_selector("#question textarea.invalid")
    assert run.answers("explain_label") == [] and page.get_attribute("#question", "data-id") == qid
    boxes.nth(1).fill("one could miss the warmth")
    page.reload()  # the class and the typed text survive a reload (a draft), and the class's box has the focus
    assert wait_question(page, "explain_label") == qid
    boxes = page.locator("#question textarea.explanation")
    assert boxes.nth(0).get_attribute("data-class") == "1" and boxes.nth(1).input_value() == "one could miss the warmth"
    assert page.evaluate("document.activeElement.dataset.class") == "1"
    page.screenshot(path=str(shots / "explain_label.png"))
    page.locator("#question button.submit").click()
    wait_question(page, "explain_label", other_than=qid)
    page.locator("#question .classes button[data-class='1']").click()
    for n in range(2):
        page.locator("#question textarea.explanation").nth(n).fill(f"reason {n}")
    assert not page.locator("#question p.hint[role=status]").is_visible()
    page.locator("#question .classes button[data-class='0']").click()  # changed mind after typing: said
    assert "each explanation stays with its class" in page.locator("#question p.hint[role=status]").inner_text()
    page.screenshot(path=str(shots / "explain_label_switched.png"))
    page.locator("#question button.submit").click()
    run.wait()
    assert run.answers("label") == []  # never asked apart
    (_, k1, first), (_, k2, second) = run.answers("explain_label")
    assert (first["label"], second["label"]) == (1, 0)
    assert first["explanations"] == ["one could miss the warmth", "the words are warm"]
    assert second["explanations"] == ["reason 1", "reason 0"]  # each stayed with its class
    assert sorted(run.journal("SELECT item, label FROM labelled")) == sorted([(int(k1), 1), (int(k2), 0)])
    assert not page.errors


EVIL = """<!doctype html><title>another site</title>
<iframe id="framed" src="{target}"></iframe>
<form id="f" method="POST" action="{target}api/review" enctype="text/plain" target="sink">
  <input name='{{"action": "hold", "x": "' value='"}}'></form>
<iframe name="sink"></iframe>
<script>
(async () => {{
  const tries = [["/api/answer", JSON.stringify({{id: "{qid}", answer: 3}}), "text/plain"],
                 ["/api/review", JSON.stringify({{action: "hold"}}), "text/plain"],
                 ["/api/answer", JSON.stringify({{id: "{qid}", answer: 3}}), "application/x-www-form-urlencoded"]];
  for (const [path, body, type] of tries) {{
    try {{ await fetch("{target}" + path.slice(1), {{method: "POST", mode: "no-cors", credentials: "include",
                                                   headers: {{"Content-Type": type}}, body}}); }} catch (e) {{}}
  }}
  // a JSON request with the page's header needs a preflight this server never grants
  try {{ await fetch("{target}api/answer", {{method: "POST", credentials: "include",
      headers: {{"Content-Type": "application/json", "X-Exil-Tab": "evil"}},
      body: JSON.stringify({{id: "{qid}", answer: 3}})}}); }} catch (e) {{ window.blocked = String(e); }}
  document.getElementById("f").submit();
  setTimeout(() => {{ window.done = true; }}, 1500);
}})();
</script>"""


def serve_once(html: str):
    """A page served from another loopback port (another origin, the same site): an attacker's tab."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html.encode())

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_page_from_another_origin_can_neither_answer_nor_frame_the_teacher_page(browser, exil_run):
    run = exil_run(["oracle=web", "oracle.review_seconds=1", "loop.rounds=0", "loop.initial_per_class=1", *TINY])
    page = open_page(browser, run)  # the person's tab: its cookie is in this browser
    qid = wait_question(page, "label")
    target = f"http://127.0.0.1:{run.port}/"
    server = serve_once(EVIL.format(target=target, qid=qid))
    try:
        evil = page.context.new_page()  # the same browser, the same cookies, another origin
        evil.goto(f"http://127.0.0.1:{server.server_port}/")
        evil.wait_for_function("window.done === true", timeout=20_000)
        assert run.answers("label") == []  # nothing the other origin sent was taken as the person's answer
        assert "Failed to fetch" in evil.evaluate("window.blocked")  # the preflight was refused
        framed = next(f for f in evil.frames if f.name != "sink" and f != evil.main_frame)
        assert framed.evaluate("document.querySelector('#question') === null")  # framing refused (CSP)
        evil.close()
    finally:
        server.shutdown()
    answer = Labeller()
    answer.last = None
    page.bring_to_front()
    answer(page, 2)  # the person's own tab still answers
    assert [a for _, _, a in run.answers("label")] == [2]
    run.stop()


@pytest.mark.slow  # CI: tests/unit/test_web_security.py::test_each_run_has_its_own_cookie, over real HTTP
def test_opening_another_run_does_not_lock_this_run_s_tab_out(browser, exil_run):
    a = exil_run(["oracle=web", "loop.rounds=0", "loop.initial_per_class=1", *TINY], name="a")
    b = exil_run(["oracle=web", "loop.rounds=0", "loop.initial_per_class=1", *TINY], name="b")
    page_a = open_page(browser, a)
    wait_question(page_a, "label")
    page_b = page_a.context.new_page()  # the same browser: one cookie jar for 127.0.0.1, whatever the port
    page_b.goto(b.url)
    wait_question(page_b, "label")
    page_a.reload()
    Labeller()(page_a, 1)
    assert [x for _, _, x in a.answers("label")] == [1] and b.answers("label") == []
    a.stop()
    b.stop()


def test_the_page_s_token_reaches_no_log_and_no_file_but_its_own(exil_run):
    """With W&B (offline) logging the console, the token is in no file of the run folder but ``oracle/web.json``
    (readable by its owner only), and not in what the process printed."""
    import os
    import stat

    run = exil_run(["oracle=web", "oracle.review_seconds=0", "loop.rounds=0", "loop.initial_per_class=1",
                    "loop.threads=1", "trainer.max_epochs=1", "logger=many"])
    c = httpx.Client(base_url=f"http://127.0.0.1:{run.port}", timeout=30,
                     headers={"X-Exil-Token": run.token, "X-Exil-Tab": "t"})
    q = c.post("/api/next", json={}).json()["question"]
    while q is not None:
        q = c.post("/api/answer", json={"id": q["id"], "answer": 0}).json()["next"]
    run.wait()
    web_json = run.dir / "oracle" / "web.json"
    assert stat.S_IMODE(os.stat(web_json).st_mode) == 0o600
    holders = [str(p.relative_to(run.dir)) for p in run.dir.rglob("*") if p.is_file()
               and run.token.encode() in p.read_bytes()]
    assert holders == ["oracle/web.json"], holders
    assert list(run.dir.rglob("*.wandb")) and run.token not in run.log.read_text()
    assert f"http://127.0.0.1:{run.port}/" in run.log.read_text() and "web.json" in run.log.read_text()


def test_a_double_click_answers_one_question_not_the_next_one_too(browser, exil_run):
    """Two clicks 150 ms apart on a class: the first answers the shown question; the second lands on the next
    question, which the person has not seen, and is dropped (app.js's input guard). The same for a doubled key."""
    run = exil_run(["oracle=web", "oracle.review_seconds=1", "loop.rounds=0", "loop.initial_per_class=1", *TINY])
    page = open_page(browser, run)
    first = wait_question(page, "label")
    # the second click of a double-click lands on the next question just after it appears (clicked from inside
    # the page the moment it is drawn: Playwright's own 150 ms delay stretches past the guard on a loaded machine)
    page.evaluate("""async () => {
        const q = document.querySelector('#question'), first = q.dataset.id;
        q.querySelectorAll('button.class')[3].click();
        while (q.dataset.id === first || !q.querySelector('button.class')) await new Promise((r) => setTimeout(r, 5));
        q.querySelectorAll('button.class')[3].click();
    }""")
    page.wait_for_function("id => document.querySelector('#question').dataset.id !== id", arg=first)
    page.wait_for_timeout(1000)
    assert [a for _, _, a in run.answers("label")] == [3]  # one answer: the next question is still open
    second = wait_question(page, "label")
    page.keyboard.press("5")
    page.keyboard.press("5", delay=0)  # the same key twice in quick succession
    page.wait_for_function("id => document.querySelector('#question').dataset.id !== id", arg=second)
    page.wait_for_timeout(1000)
    assert [a for _, _, a in run.answers("label")] == [3, 5]
    run.stop()


def _press(page, key: int, last: str | None, think_ms: int = 0) -> tuple[str, bool, float]:
    """Wait for a label question other than ``last``, look at it ``think_ms``, press ``key``; return its id,
    whether it came as a disagreement to settle, and the browser's own clock when the page moved on (seconds
    since the page loaded: an upper bound of any question's time on screen)."""
    qid = wait_question(page, "label", other_than=last)
    disputed = page.locator("#question .q-dispute").count() > 0
    page.wait_for_timeout(think_ms)
    page.keyboard.press(str(key))
    page.wait_for_function("id => document.querySelector('#question').dataset.id !== id", arg=qid, timeout=60_000)
    return qid, disputed, page.evaluate("performance.now()") / 1000


def test_two_named_teachers_overlap_disagree_and_the_reviewer_settles(browser, exil_run, shots):
    """Issue 22 §3–§5: alice and bob each answer every question (overlap 2) with their own links; the journal
    keeps both opinions with who gave them and their seconds on screen; equal labels settle a question, the
    different ones go to alice (the reviewer), whose label is what the model trains on; the round's agreement in
    results.csv equals Cohen's κ computed by hand from the journal."""
    import csv
    import json

    run = exil_run(["oracle=web", "oracle.teachers=[alice,bob]", "oracle.overlap=2", "oracle.review_seconds=1",
                    "loop.rounds=0", "loop.initial_per_class=null", "loop.initial_size=6", *TINY])
    info = json.loads((run.dir / "oracle" / "web.json").read_text())
    assert set(info["teachers"]) == {"alice", "bob"} and info["teachers"]["alice"] != info["teachers"]["bob"]
    alice = open_page(browser, run)  # run.url is the first teacher's link
    # another person, another browser — a small one (a laptop's split screen, a tablet): the page must fit it
    bob_ctx = browser.new_context(viewport={"width": 420, "height": 760})
    bob = bob_ctx.new_page()
    bob.goto(info["urls"]["bob"])
    wait_question(bob, "label")
    assert bob.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    assert bob.locator("#question button.class").first.is_visible()
    bob.screenshot(path=str(shots / "team_small_window.png"), full_page=True)

    alice_keys = [3, 3, 1, 2, 4, 5]
    bob_keys = [3, 3, 1, 2, 6, 7]  # the last two differ
    last, timed = None, None
    for i, key in enumerate(alice_keys):
        last, disputed, wall = _press(alice, key, last, think_ms=1200 if i == 0 else 0)
        timed = timed or (last, wall)
        assert not disputed
    # a key meant for alice's next item, pressed the moment the first disagreement appears (from inside the page:
    # the test's own round trips can outlast the guard on a loaded machine), must not settle it
    alice.evaluate("""() => { window.keyAtDispute = new Promise((resolve) => {
        const t = setInterval(() => {
            const q = document.querySelector('#question');
            if (!q.querySelector('.q-dispute')) return;
            clearInterval(t);
            document.dispatchEvent(new KeyboardEvent('keydown', { key: '8', bubbles: true }));
            resolve(q.dataset.id);
        }, 5); }); }""")
    bob_ids, last = [], None
    for key in bob_keys:
        last, disputed, _ = _press(bob, key, last)
        bob_ids.append(last)
    alice.screenshot(path=str(shots / "team_review.png"))
    settled = {}
    for n in range(2):  # alice's page now brings the two disagreements, marked as such
        if n == 0:  # the key pressed at once (meant for a next item) did not settle the disagreement
            shown = alice.evaluate("window.keyAtDispute")
            alice.wait_for_timeout(400)
            assert alice.get_attribute("#question", "data-id") == shown and "settle" in alice.text_content(".q-where")
            alice.screenshot(path=str(shots / "team_dispute.png"))
        qid, disputed, _ = _press(alice, 9, last, think_ms=1600)  # the reviewer reads the disagreement
        assert disputed and qid in bob_ids[-2:]
        settled[qid], last = 9, qid
    run.wait()

    opinions = run.journal("SELECT key, teacher, answer, seconds FROM opinions ORDER BY t")
    assert len(opinions) == 12 and {t for _, t, _, _ in opinions} == {"alice", "bob"}
    first_key, wall = timed[0].split(":")[-1], timed[1]
    s = next(sec for k, t, _, sec in opinions if k == first_key and t == "alice")
    assert 1.2 <= s <= wall, (s, wall)  # the page's own clock: at least the look, at most since the page loaded
    answers = {k: (json.loads(a), t) for k, a, t in run.journal("SELECT key, answer, teacher FROM answers")}
    assert sorted(t for _, t in answers.values()) == ["alice", "alice", "alice+bob", "alice+bob", "alice+bob",
                                                      "alice+bob"]
    labelled = dict(run.journal("SELECT item, label FROM labelled"))
    for qid in settled:  # the model trains on the reviewer's label, not on either teacher's first answer
        assert labelled[int(qid.split(":")[-1])] == 9
    # Cohen's κ by hand: p_o observed agreement, p_e from each teacher's own label frequencies
    a = {k: int(json.loads(v)) for k, t, v, _ in opinions if t == "alice"}
    b = {k: int(json.loads(v)) for k, t, v, _ in opinions if t == "bob"}
    keys = sorted(a)
    po = sum(a[k] == b[k] for k in keys) / len(keys)
    pe = sum((list(a.values()).count(c) / len(keys)) * (list(b.values()).count(c) / len(keys))
             for c in set(a.values()) | set(b.values()))
    with open(run.dir / "results.csv") as f:
        row = next(csv.DictReader(f))
    assert abs(float(row["team/label_kappa"]) - (po - pe) / (1 - pe)) < 1e-9
    assert float(row["team/label_agreement"]) == po and float(row["team/disagreements"]) == 2
    assert float(row["teacher/seconds"]) > 0
    assert not alice.errors
    # the run has finished: its tabs say so and stop asking (they retried every second forever, issue 22 §2)
    alice.wait_for_selector("#connection", state="visible", timeout=15_000)
    assert "the run has finished" in alice.text_content("#connection")
    tries: list[str] = []
    alice.on("request", lambda r: tries.append(r.url))
    alice.wait_for_timeout(3000)
    assert tries == []
    bob_ctx.close()


def test_sigterm_says_the_run_stopped(browser, exil_run):
    """Issue 22 §2: SIGTERM (what SLURM sends) showed "connection lost"."""
    import signal

    run = exil_run(["oracle=web", "oracle.review_seconds=1", "loop.rounds=0", "loop.initial_per_class=1", *TINY])
    page = open_page(browser, run)
    wait_question(page, "label")
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(30) == 143
    page.wait_for_selector("#connection", state="visible", timeout=15_000)
    assert "the run stopped" in page.text_content("#connection")


@pytest.mark.slow  # CI: the simulated cost model's budget (tests/compose) and the page's seconds (the team test)
def test_a_budget_of_teacher_time_stops_the_run_when_a_person_has_spent_it(browser, exil_run):
    """loop.budget_seconds with a person (issue 22 §4): the page's own seconds per answer are what is spent; two
    initial labels looked at 2.5 s each use up a 4 s budget, so the run stops after round 0 and says why."""
    import csv

    run = exil_run(["oracle=web", "oracle.review_seconds=0", "loop.rounds=3", "loop.query_size=2",
                    "loop.initial_per_class=null", "loop.initial_size=2", "loop.budget_seconds=4", *TINY])
    page = open_page(browser, run)
    last = None
    for key in (1, 2):
        last, _, _ = _press(page, key, last, think_ms=2500)
    run.wait()
    spent = run.journal("SELECT SUM(seconds), COUNT(*) FROM answers")[0]
    assert spent[1] == 2 and 5.0 <= spent[0] < 20, spent
    with open(run.dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["round"]) for r in rows] == [0] and float(rows[0]["teacher/seconds"]) == spent[0]
    assert "the teachers' time budget is spent" in run.log.read_text()
