"""Named moments at which a test may kill the process: the chaos tests aim their SIGKILLs here.

``EXIL_KILL_AT=<point>:<n>`` makes the process SIGKILL itself the ``n``-th time it reaches ``<point>`` (several,
comma-separated, each counted on its own). The points are the moments a kill is most likely to lose or repeat
something:

* ``checkpoint`` — a checkpoint's bytes are in its ``.tmp`` file, which is not yet renamed into place;
* ``commit`` — a transaction's rows are written and its ``COMMIT`` has not run (a stage's rows, an answer);
* ``answer`` — the teacher has answered and the answer is not yet in the journal.

Without the variable, :func:`reached` is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def _parse(spec: str) -> dict[str, int]:
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        point, _, n = part.partition(":")
        out[point] = int(n or 1)
    return out


_AT = _parse(os.environ.get("EXIL_KILL_AT", ""))
_SEEN: dict[str, int] = {}


def reached(point: str) -> None:
    """Count a visit to ``point``; the visit ``EXIL_KILL_AT`` names ends the process as a SIGKILL would."""
    if point not in _AT:
        return
    _SEEN[point] = _SEEN.get(point, 0) + 1
    if _SEEN[point] == _AT[point]:
        os.kill(os.getpid(), signal.SIGKILL)
