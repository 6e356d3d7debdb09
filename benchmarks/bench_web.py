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

3. **a team**: 50 named teachers answering at once (each with their own token), every one of their pages holding
   a long poll open the whole time — the answer → next latency of each, and a plain ``GET /api/state`` meanwhile:
   no request may wait on another teacher's long poll (they wait on the event loop, not in threads). At a
   person's pace (``--think`` seconds per question, 2 by default: Bearman et al. 2016 time a class decision at
   1 s), and back to back (``think`` 0), which measures how many answers a second the server commits (each one
   fsync'ed to the journal before "saved").

Run: ``.venv/bin/python benchmarks/bench_web.py [--answers 60] [--rounds 15] [--teachers 50] [--each 10]``
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


def _team_clients(url: str, tokens: dict[str, str], each: int, think: float, out) -> None:
    """The teachers' side of :func:`measure_team`, in a process of its own (as browsers are): each teacher a
    thread answering ``each`` questions, each with a page holding a long poll; one more client timing plain
    ``GET /api/state`` meanwhile. Each teacher looks at a question for a random 0.5–1.5 × ``think`` seconds before
    answering (0: answers back to back, a stress test of throughput). Sends (answer latencies, plain latencies,
    wall seconds) to ``out``."""
    import random

    done = threading.Event()
    latencies: list[float] = []
    lock = threading.Lock()

    def client(name: str) -> httpx.Client:
        return httpx.Client(base_url=url, timeout=60, headers={"X-Exil-Token": tokens[name], "X-Exil-Tab": name})

    def poll(name: str) -> None:  # an open page: always a long poll waiting (as app.js's pollLoop)
        v = -1
        with client(name) as c:
            while not done.is_set():
                v = c.get(f"/api/state?since={v}&wait=20").json()["version"]

    def teach(name: str) -> None:
        rng = random.Random(name)
        with client(name) as c:
            q = c.post("/api/next", json={}).json()["question"]
            for _ in range(each):
                if q is None:
                    break
                time.sleep(think * rng.uniform(0.5, 1.5))
                t0 = time.perf_counter()
                r = c.post("/api/answer", json={"id": q["id"], "answer": 1, "seconds": 1.0})
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                q = r.json().get("next") if r.status_code == 200 else c.post("/api/next", json={}).json()["question"]

    for name in tokens:
        threading.Thread(target=poll, args=(name,), daemon=True).start()
    time.sleep(0.5)  # every page is waiting
    teachers = [threading.Thread(target=teach, args=(name,)) for name in tokens]
    start = time.perf_counter()
    for t in teachers:
        t.start()
    plain: list[float] = []
    with client(next(iter(tokens))) as c:
        while any(t.is_alive() for t in teachers):
            t0 = time.perf_counter()
            c.get("/api/state")
            plain.append(time.perf_counter() - t0)
            time.sleep(0.02)
    wall = time.perf_counter() - start
    done.set()
    out.put((latencies, plain, wall))


def measure_team(teachers: int, each: int, overlap: int, think: float) -> dict:
    """``teachers`` named teachers answering at once, each with their own token, and each keeping a long poll
    open the whole time (as every open page does): the answer → next question latency of each, and a plain
    ``GET /api/state`` from one more client meanwhile (does any request wait on the others' long polls?). The
    clients run in another process (browsers do), so they do not share the server's interpreter lock."""
    import multiprocessing as mp

    names = [f"t{i:02d}" for i in range(teachers)]
    n = teachers * each // overlap + teachers
    dm = Pool("28x28", n)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = OracleContext(dm, [f"class {c}" for c in range(10)], Path(tmp) / "oracle", strategy="entropy")
        oracle = WebOracle(review_seconds=0, print_fn=lambda s: None, teachers=names, overlap=overlap)
        journal = Journal(Path(tmp) / "journal.sqlite")
        asker = Asker(oracle, journal, ctx)
        oracle.start(ctx)
        qs = [Question("label", str(i), item=i, payload={"probs": [0.1] * 10}) for i in range(n)]
        threading.Thread(target=lambda: asker.many(0, qs), daemon=True).start()
        while not oracle.session.entries:
            time.sleep(0.001)
        tokens = {nm: oracle.urls[nm].split("token=")[1] for nm in names}
        spawn = mp.get_context("spawn")
        out = spawn.Queue()
        clients = spawn.Process(target=_team_clients,
                                args=(f"http://127.0.0.1:{oracle.port}", tokens, each, think, out))
        clients.start()
        latencies, plain, wall = out.get(timeout=600)
        clients.join(30)
        waiting = oracle.session.waiting
        oracle.close()
        journal.close()
    med = statistics.median
    return {"teachers": teachers, "overlap": overlap, "think": think, "rate": len(latencies) / wall,
            "answers": len(latencies), "answer": med(latencies) * 1e3,
            "p95": sorted(latencies)[int(0.95 * len(latencies))] * 1e3, "plain": med(plain) * 1e3,
            "plain_max": max(plain) * 1e3, "polls": waiting}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=60)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--teachers", type=int, default=50)
    p.add_argument("--each", type=int, default=10, help="answers per teacher in the team measurement")
    p.add_argument("--think", type=float, default=2.0, help="a teacher's mean seconds per question (0.5–1.5×)")
    a = p.parse_args()
    rows = [measure(kind, a.answers, a.rounds) for kind in ("28x28", "224x224", "text")]
    print_table(rows, "web teacher: server latency (medians, ms)", [
        ("items", "kind", None), ("bare round trip", "bare", ".1f"), ("answer → next question", "answer", ".1f"),
        ("× bare", "answer_ratio", ".1f"), ("offer → first shown", "first", ".1f")])
    team = [measure_team(a.teachers, a.each, k, think) for think in (a.think, 0.0) for k in (1, 2)]
    print_table(team, f"{a.teachers} teachers at once, each page long-polling (28×28 images; ms)", [
        ("teachers", "teachers", None), ("overlap", "overlap", None), ("think s", "think", ".1f"),
        ("answers/s", "rate", ".0f"), ("answers", "answers", None),
        ("answer → next, median", "answer", ".1f"), ("p95", "p95", ".1f"),
        ("plain GET /api/state meanwhile, median", "plain", ".1f"), ("max", "plain_max", ".1f"),
        ("long polls open at the end", "polls", None)])
    print("goal: answer → next question ≤ 50 ms (median), also with 50 teachers at a person's pace whose pages all "
          "hold a long poll (think 0: back to back, the server's throughput)")


if __name__ == "__main__":
    main()
