"""`make bench`: run every benchmarks/bench_*.py in its own process and print their tables.

Each benchmark reports speed and memory as ratios against a reference run in the same
process (bare forward passes, a straightforward loop, another library), never as
absolute goals. Pass file stems to run only some: `python benchmarks/run.py bench_strategies`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    benches = sorted(HERE.glob("bench_*.py"))
    if argv:
        benches = [b for b in benches if b.stem in argv]
    failed = []
    for b in benches:
        print(f"\n=== {b.stem} ===", flush=True)
        if subprocess.run([sys.executable, str(b)], cwd=HERE.parent).returncode != 0:
            failed.append(b.stem)
    if failed:
        print(f"\nbenchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
