"""Read an offline W&B run back (``<run>/wandb/offline-run-*/run-*.wandb``), independently of the wandb SDK's
writer: the file is a 7-byte header (``:W&B``, magic, version) then LevelDB-style log records in 32 KiB blocks
(each chunk: CRC32 4 bytes, length 2, type 1 — full / first / middle / last), each record a protobuf
``wandb.proto.wandb_internal_pb2.Record``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def records(path: str | Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    out, pos, parts = [], HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of a block too small for a chunk header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(parts)
            out.append(rec)
    return out


def summary(path: str | Path) -> dict:
    """What the run holds: its run record (name, group, job type, tags), config, metric definitions and history
    rows (each a dict of key → decoded value)."""
    run, config, metrics, history = None, {}, [], []
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run = rec.run
            config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "metric":
            metrics.append((rec.metric.name or rec.metric.glob_name, rec.metric.step_metric))
        elif kind == "history":
            history.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    return {"run": run, "config": config, "metrics": metrics, "history": history}
