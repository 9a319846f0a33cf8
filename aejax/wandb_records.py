"""Read an offline W&B run file (`run-*.wandb`) back without a server.

The file is a LevelDB-style log (https://github.com/google/leveldb/blob/main/doc/log_format.md):
a 7-byte header (":W&B", magic 0xBEE1, version), then 32 KiB blocks of records, each with a
7-byte header (CRC-32, length, type FULL/FIRST/MIDDLE/LAST). Each assembled record is a
`wandb.proto.wandb_internal_pb2.Record`, wandb's own protobuf message.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path):
    """Yield every `Record` protobuf in the file, in order; raises on a bad checksum."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:HEADER])
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B run file")
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # a block trailer: skip to the next block
            pos += left_in_block
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        payload = data[pos + HEADER:pos + HEADER + length]
        if kind == 0 and length == 0:
            break  # zero padding at the end of a file still being written
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != checksum:
            raise ValueError(f"{path}: bad checksum at byte {pos}")
        pos += HEADER + length
        if kind == FULL:
            pending = payload
        elif kind == FIRST:
            pending = payload
            continue
        elif kind == MIDDLE:
            pending += payload
            continue
        else:
            pending += payload
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        pending = b""
        yield record


def history_rows(path: str | Path) -> list[dict]:
    """The run's logged history: one dict per `run.log` call, values decoded from JSON."""
    rows = []
    for record in read_records(path):
        if record.WhichOneof("record_type") == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            rows.append(row)
    return rows


def run_config(path: str | Path) -> dict:
    """The run's config as logged (the last value of each key wins)."""
    config = {}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        updates = record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
        for item in updates:
            key = item.key or "/".join(item.nested_key)
            config[key] = json.loads(item.value_json)
    return config
