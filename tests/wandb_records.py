"""Reads an offline W&B run file (``run-*.wandb``) without the network.

The file is a LevelDB-style log (32 KiB blocks of checksummed chunks) of protobuf
``Record`` messages; wandb no longer ships a Python reader for it.
"""

from __future__ import annotations

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

_BLOCK, _HEADER, _CHUNK_HEADER = 32768, 7, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    records, pending, pos = [], b"", _HEADER
    while pos + _CHUNK_HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        if kind == 0 and length == 0:  # block padding
            pos += left
            continue
        chunk = data[pos + _CHUNK_HEADER : pos + _CHUNK_HEADER + length]
        pos += _CHUNK_HEADER + length
        if kind in (_FIRST, _MIDDLE):
            pending = (pending if kind == _MIDDLE else b"") + chunk
            continue
        payload = pending + chunk if kind == _LAST else chunk
        pending = b""
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def history_keys(records) -> set[str]:
    return {
        item.key or "/".join(item.nested_key)
        for record in records
        if record.HasField("history")
        for item in record.history.item
    }


def config_keys(records) -> set[str]:
    return {
        item.key or "/".join(item.nested_key)
        for record in records
        if record.HasField("config")
        for item in record.config.update
    }
