"""The LLM teacher end to end: a real `exil` run of XAL asks a loopback OpenAI-compatible stand-in for its
explanations, is SIGKILLed while a question's second request is in flight (its first reply paid and cached,
the question not yet journaled), and resumes — no request the stand-in answered is answered twice."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from exil.common.journal import Journal
from tests.smoke.test_resume_after_kill import exil, finish
from tests.text_fixtures import rotten_tomatoes, tiny_backbone_overrides, tokenizer_folder


class StandIn:
    """Answers chat completions with a short explanation naming the prompt's label; holds request number
    ``hold`` (1-based) until released, so a kill can land while it is in flight."""

    def __init__(self, hold: int):
        self.hold, self.lock = hold, threading.Lock()
        self.received, self.answered = 0, Counter()
        self.holding, self.release = threading.Event(), threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with owner.lock:
                    owner.received += 1
                    n = owner.received
                if n == owner.hold:
                    owner.holding.set()
                    owner.release.wait(60)
                    return  # the client is gone (killed): nothing is answered
                label = prompt.rsplit(" is ", 1)[-1].rstrip(".")
                out = json.dumps({"choices": [{"message": {"role": "assistant",
                                                           "content": f"because the review is {label}"}}]}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    with owner.lock:
                        owner.answered[prompt] += 1
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_run_killed_between_a_paid_request_and_its_commit_pays_nothing_twice(tmp_path):
    data = tmp_path / "data"
    rotten_tomatoes(data, n=80)
    tok = tokenizer_folder(tmp_path)
    server = StandIn(hold=7)  # the 4th question's first request (6 replies paid before it: 3 questions × 2)
    run_dir = tmp_path / "run"
    args = ["experiment=xal_rotten_tomatoes", f"paths.data_dir={data}", f"dataset.tokenizer=file:{tok}",
            *tiny_backbone_overrides("bert2bert"), "strategy.max_new_tokens=4", "loop.rounds=1",
            "loop.query_size=4", "loop.initial_size=6", "loop.pool_subsample=20", "dataset.max_length=16",
            "dataset.min_epoch_size=8", "dataset.test_items=10", "method.hooks.max_explanation_length=8",
            "trainer.max_epochs=1", "logger=csv", "loop.threads=1",
            "oracle=llm", f"oracle.client.base_url={server.url}", "oracle.client.model=stand-in",
            "oracle.client.concurrency=1", "oracle.client.backoff=0.01", "oracle.client.timeout=30",
            "oracle.verbalizer={fresh: positive, rotten: negative}", f"hydra.run.dir={run_dir}"]
    try:
        proc = exil(*args)
        t0 = time.monotonic()
        while not server.holding.wait(0.2):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() - t0 < 300, "the held request never came"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cache = run_dir / "oracle" / "llm_requests.jsonl"
        paid_before = sum(server.answered.values())
        assert paid_before == 6 and len(cache.read_text().splitlines()) == 6
        server.release.set()
        # the stand-in's address is not the installed endpoint: a folder cannot choose it, the resume command says it
        refused, _ = exil(f"loop.resume={run_dir}").communicate(timeout=600)
        assert "reaches outside the run folder" in refused, refused[-3000:]
        assert "resume with oracle=llm oracle.client.base_url=<the value>" in " ".join(refused.split())
        finish(exil(f"loop.resume={run_dir}", "oracle=llm", f"oracle.client.base_url={server.url}"))
    finally:
        server.close()
    # every prompt the stand-in answered was answered once, across the kill
    assert server.answered and max(server.answered.values()) == 1, server.answered.most_common(3)
    j = Journal(run_dir / "journal.sqlite")
    explained = [a for a in j.answers() if a["question"] == "explain_label"]
    j.close()
    assert len(explained) == 6 + 4 and sum(server.answered.values()) == 2 * len(explained)
    gold = explained[0]["answer"]
    assert gold["explanations"][gold["label"]] == f"because the review is {['negative', 'positive'][gold['label']]}"
