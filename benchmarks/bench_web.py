"""Benchmark: does a person ever wait on the web teacher's server?

Two latencies of a real server (uvicorn + Starlette in this process, as in ``oracle=web``), a real journal and
the real asker, over real HTTP from a client thread, for 28×28 grey images, 224×224 colour images and text:

1. **answer → next question**: from POSTing a valid label to receiving the response, which carries the next
   question's payload (its image encoded) — validation, the journal commit (``synchronous=FULL``: the answer
   is on disk when "saved" comes back) and the next payload included;
2. **offer → first shown**: from the loop offering a round's questions (``Asker.many``) to a page that was
   long-polling holding the first question's payload.

The reference in the same process is a bare round trip (``GET /api/state`` answered at once), so the ratio
says what exil adds on top of HTTP itself. The goal: ≤ 50 ms per answer on this machine (medians).

Run: ``.venv/bin/python benchmarks/bench_web.py [--answers 60] [--rounds 15]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.shared import print_table  # noqa: E402
from exil.common.journal import Journal  # noqa: E402
from exil.common.oracle.asker import Asker  # noqa: E402
from exil.common.oracle.base import OracleContext, Question  # noqa: E402
from exil.common.oracle.web import WebOracle  # noqa: E402


class Pool:
    """A pool of n items of one kind: images (C, H, W) in [0, 1], or texts."""

    def __init__(self, kind: str, n: int):
        g = torch.Generator().manual_seed(0)
        self.kind, self.labels = kind, {}
        shape = {"28x28": (1, 28, 28), "224x224": (3, 224, 224)}.get(kind)
        self.x = torch.rand(n, *shape, generator=g) if shape else None
        self.texts = [f"review {i}: a charming, funny and well acted film about nothing much " * 3 for i in range(n)]
        if shape is None:
            self.text_of = lambda i: (self.texts[int(i)],)

    def pool_item(self, i: int) -> dict:
        return {"x": self.x[int(i)]}


def measure(kind: str, answers: int, rounds: int) -> dict:
    names = [f"class {c}" for c in range(10)]
    dm = Pool(kind, answers + rounds * 2 + 10)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = OracleContext(dm, names, Path(tmp) / "oracle", strategy="entropy")
        oracle = WebOracle(review_seconds=0, print_fn=lambda s: None)
        journal = Journal(Path(tmp) / "journal.sqlite")
        asker = Asker(oracle, journal, ctx)
        oracle.start(ctx)
        c = httpx.Client(base_url=f"http://127.0.0.1:{oracle.port}", timeout=30,
                         headers={"X-Exil-Token": oracle.token, "X-Exil-Tab": "bench"})
        probs = [0.1] * 10

        def ask(r: int, items: range) -> threading.Thread:
            qs = [Question("label", str(i), item=i, payload={"probs": probs, "strategy": "entropy", "score": 1.0})
                  for i in items]
            t = threading.Thread(target=lambda: (asker.many(r, qs), asker.settle(r)), daemon=True)
            t.start()
            return t

        bare = []
        for _ in range(30):
            t0 = time.perf_counter()
            c.get("/api/state")
            bare.append(time.perf_counter() - t0)

        # 1. answer -> next question, through one round of `answers` questions
        t = ask(0, range(answers + 1))
        while not oracle.session.entries:
            time.sleep(0.001)
        q = c.post("/api/next", json={}).json()["question"]
        per_answer = []
        for _ in range(answers):
            t0 = time.perf_counter()
            r = c.post("/api/answer", json={"id": q["id"], "answer": 1}).json()
            per_answer.append(time.perf_counter() - t0)
            q = r["next"]
        c.post("/api/answer", json={"id": q["id"], "answer": 1})
        t.join()

        # 2. offer -> first question shown to a long-polling page
        first = []
        start = answers + 1
        for r in range(1, rounds + 1):
            v = c.get("/api/state").json()["version"]
            shown = {}

            def page(v=v, shown=shown):
                c2 = httpx.Client(base_url=f"http://127.0.0.1:{oracle.port}", timeout=30,
                                  headers={"X-Exil-Token": oracle.token, "X-Exil-Tab": "bench"})
                c2.get(f"/api/state?since={v}&wait=10")
                shown["q"] = c2.post("/api/next", json={}).json()["question"]
                shown["t"] = time.perf_counter()

            p = threading.Thread(target=page)
            p.start()
            time.sleep(0.05)  # the page is waiting
            t0 = time.perf_counter()
            t = ask(r, range(start, start + 2))
            p.join()
            first.append(shown["t"] - t0)
            for _ in range(2):
                q = c.post("/api/next", json={}).json()["question"]
                c.post("/api/answer", json={"id": q["id"], "answer": 2})
            t.join()
            start += 2
        oracle.close()
        journal.close()
    med = statistics.median
    return {"kind": kind, "bare": med(bare) * 1e3, "answer": med(per_answer) * 1e3,
            "answer_ratio": med(per_answer) / med(bare), "first": med(first) * 1e3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=60)
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args()
    rows = [measure(kind, a.answers, a.rounds) for kind in ("28x28", "224x224", "text")]
    print_table(rows, "web teacher: server latency (medians, ms)", [
        ("items", "kind", None), ("bare round trip", "bare", ".1f"), ("answer → next question", "answer", ".1f"),
        ("× bare", "answer_ratio", ".1f"), ("offer → first shown", "first", ".1f")])
    print("goal: answer → next question ≤ 50 ms")


if __name__ == "__main__":
    main()
