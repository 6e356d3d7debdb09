"""A reader for Weka's ARFF files with string attributes (which ``scipy.io.arff`` cannot read).

The header declares ``@attribute NAME TYPE`` lines; after ``@data`` every line is one instance, its values
separated by commas, each bare or quoted with ``'`` or ``"``. Inside quotes Weka escapes ``\\n``, ``\\r``,
``\\t``, ``\\\\`` and the quote characters with a backslash. ``%`` starts a comment line. Sparse
instances (``{i v, ...}``) are not supported and give an error.
"""

from __future__ import annotations

import re
from pathlib import Path

from exil.common.errors import ExilError

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"', "%": "%"}
_VALUE = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([^,]*?))\s*(?:,|$)""")


def unescape(text: str) -> str:
    """Weka's backslash escapes resolved (an unknown one keeps its character)."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def parse_instance(line: str) -> list[str]:
    """The values of one ``@data`` line, unquoted and unescaped."""
    out, pos = [], 0
    while pos < len(line):
        m = _VALUE.match(line, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read the value at column {pos}")
        single, double, bare = m.groups()
        out.append(unescape(single) if single is not None else unescape(double) if double is not None else bare)
        pos = m.end()
    if line.rstrip().endswith(","):
        out.append("")
    return out


def read_arff(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """(attribute names, instances as {name: value}) of a dense ARFF file."""
    path = Path(path)
    names: list[str] = []
    rows: list[dict[str, str]] = []
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("%"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@attribute"):
                    m = re.match(r"@attribute\s+('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)", line, re.IGNORECASE)
                    names.append(unescape(m.group(1).strip("'\"")))
                elif low.startswith("@data"):
                    in_data = True
                continue
            if line.startswith("{"):
                raise ExilError(f"{path}:{n}: sparse ARFF instances are not supported")
            try:
                values = parse_instance(line)
            except ValueError as e:
                raise ExilError(f"{path}:{n}: {e}") from None
            if len(values) != len(names):
                raise ExilError(f"{path}:{n}: {len(values)} values for {len(names)} attributes")
            rows.append(dict(zip(names, values)))
    if not in_data:
        raise ExilError(f"{path} has no @data section: not an ARFF file")
    return names, rows
