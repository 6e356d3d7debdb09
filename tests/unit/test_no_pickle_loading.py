"""No code path of the package unpickles arbitrary objects: a run folder, a dataset or a weight file could carry a
payload. Checkpoints and weights load with ``weights_only=True``; arrays without ``allow_pickle``."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNSAFE = re.compile(r"weights_only\s*=\s*False|allow_pickle\s*=\s*True|pickle\.loads?\(|joblib\.load\(|"
                    r"dill\.loads?\(|torch\.load\((?!.*weights_only\s*=\s*True)")


def test_no_unsafe_loading_in_the_package():
    found = []
    for pkg in ("common", "alice", "caipi", "xal", "exbl", "reproduce", "benchmarks"):
        for f in (ROOT / pkg).rglob("*.py"):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                if UNSAFE.search(line) and not line.lstrip().startswith("#"):
                    found.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
