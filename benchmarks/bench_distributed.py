"""Benchmark of pool scoring sharded across processes: throughput with 1, 2 and 4 processes as a ratio to one.

Each world size is a real ``torchrun --nproc-per-node=W`` launch of this file's worker: the processes join
through :func:`exil.common.distributed.join` (gloo on the CPU, NCCL with ``--device cuda``), and rank 0 times
``Team.score`` — every rank scoring its shard, gathered and checked on rank 0, exactly the path of a launched
run — over the whole pool: the logits of the 60,000 Fashion-MNIST training images (random tensors of that
shape if the data is absent) through the small CNN of ``bench_strategies``, batch 512, median of
``--repeats`` after a warm-up. Every process runs with one thread (torchrun's default), so W processes use W
cores; the reference rows are one process scoring without the team, with one thread and with all threads.

Run: ``.venv/bin/python benchmarks/bench_distributed.py [--worlds 1 2 4] [--out table.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from shared import print_table, write  # noqa: E402


def _pool_and_model():
    from bench_strategies import SmallCNN, fashion_mnist_or_random

    from exil.common.modules.classifier import Classifier

    dm, source = fashion_mnist_or_random()
    torch.manual_seed(0)
    return dm, Classifier(SmallCNN(), num_classes=10, dropout=0.5), source


def worker(repeats: int, device: str) -> None:
    """One process of a launch: rank 0 prints one JSON line with the median seconds of a sharded pass."""
    from exil.common import distributed
    from exil.common.strategies.context import PoolOutput, map_pool

    torch.set_num_threads(1)
    accelerator = "gpu" if device == "cuda" else "cpu"
    team = distributed.join({"strategy": "ddp", "accelerator": accelerator}) if distributed.launcher_env() else None
    dm, model, source = _pool_and_model()
    indices = np.arange(len(dm.pool))
    dev = team.device if team is not None else torch.device(device)
    if team is not None and team.rank > 0:
        from types import SimpleNamespace

        team.follow(lambda config, run_dir: SimpleNamespace(module=model, dm=dm, make_trainer=None))
        return
    if team is not None:
        team.send_config({}, ".")
    times = []
    for rep in range(repeats + 1):
        t0 = time.perf_counter()
        if team is not None:
            (logits,) = team.score(model, dm, indices, PoolOutput("logits"), dev)
        else:
            (logits,), _ = map_pool(model, dm, indices, PoolOutput("logits"), dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if rep:
            times.append(time.perf_counter() - t0)
    if team is not None:
        team.done()
    assert logits.shape == (len(indices), 10)
    print(json.dumps({"seconds": statistics.median(times), "items": len(indices), "source": source,
                      "checksum": float(logits.double().sum())}), flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(world: int | None, repeats: int, device: str, threads: int | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if world is None:  # one plain process, no launcher
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        cmd = [sys.executable, __file__, "--worker", "--repeats", str(repeats), "--device", device,
               "--threads", str(threads or torch.get_num_threads())]
    else:
        env["OMP_NUM_THREADS"] = "1"
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={world}", "--master-addr=127.0.0.1",
               f"--master-port={_free_port()}", __file__, "--worker", "--repeats", str(repeats), "--device", device]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        if args.threads and not os.environ.get("WORLD_SIZE"):
            torch.set_num_threads(args.threads)
        worker(args.repeats, args.device)
        return
    one = _launch(None, args.repeats, args.device, threads=1)
    cores = os.cpu_count() or 1
    all_threads = _launch(None, args.repeats, args.device, threads=cores)
    rows = [{"row": "1 process, 1 thread, no team (reference)", "seconds": one["seconds"], "ratio": 1.0,
             "items_per_s": one["items"] / one["seconds"], "note": one["source"]},
            {"row": f"1 process, {cores} threads, no team", "seconds": all_threads["seconds"],
             "ratio": one["seconds"] / all_threads["seconds"], "items_per_s": all_threads["items"] / all_threads["seconds"],
             "note": "torch's intra-op threads"}]
    for w in args.worlds:
        r = _launch(w, args.repeats, args.device)
        assert abs(r["checksum"] - one["checksum"]) <= 1e-6 * abs(one["checksum"]) + 1e-3, "sharded logits differ"
        rows.append({"row": f"torchrun, {w} process{'es' if w > 1 else ''} × 1 thread, Team.score",
                     "seconds": r["seconds"], "ratio": one["seconds"] / r["seconds"],
                     "items_per_s": r["items"] / r["seconds"],
                     "note": f"{cores} cores here" + (": oversubscribed" if w > cores else "")})
    print(f"torch {torch.__version__}, {cores} cores, device {args.device}; ratio = speed-up over the reference "
          f"(higher is faster); the sharded logits' checksum equals the reference's")
    print_table(rows, "pool scoring across processes (60k items, logits)",
                [("row", "row", None), ("seconds", "seconds", ".3f"), ("speed-up", "ratio", ".2f"),
                 ("items/s", "items_per_s", ".0f"), ("note", "note", None)])
    if args.out:
        write(rows, args.out)


if __name__ == "__main__":
    main()
