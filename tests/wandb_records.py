"""Reads an offline W&B run file (``run-*.wandb``) without the network.

The file is a LevelDB-style log (32 KiB blocks of checksummed chunks) of protobuf
``Record`` messages; wandb no longer ships a Python reader for it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import wandb
from wandb.proto import wandb_internal_pb2

_BLOCK, _HEADER, _CHUNK_HEADER = 32768, 7, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def finish_and_flush(run) -> None:
    """Finish an in-process run and wait until its run file is complete on disk.

    ``run.finish()`` only tells the wandb-core service process that the run is over; the
    service closes the run file, writing its last partial 32 KiB block, asynchronously.
    Reading right after ``finish()`` therefore sometimes saw only the first block (the
    validation metrics and everything after them missing). ``wandb.teardown()`` waits for
    the service process to exit, so every record it accepted is written.
    """
    run.finish()
    wandb.teardown()


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    """All records of a finished run file; fails on a file cut short (no ``exit`` record)."""
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
    if not any(record.HasField("exit") for record in records):
        raise ValueError(
            f"{path} is incomplete (no exit record): finish the run and wait for wandb-core "
            "to close the file (finish_and_flush) before reading it"
        )
    return records


def write_records(path: Path, records) -> Path:
    """Write records as one block of FULL chunks (enough for small hand-made test files)."""
    chunks = []
    for record in records:
        payload = record.SerializeToString()
        chunks.append(struct.pack("<IHB", 0, len(payload), _FULL) + payload)
    body = b"".join(chunks)
    assert _HEADER + len(body) <= _BLOCK, "write_records writes a single block only"
    path.write_bytes(b":W&B" + struct.pack("<HB", 0xBEE1, 0) + body)
    return path


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
