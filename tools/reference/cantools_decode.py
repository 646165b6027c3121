#!/usr/bin/env python3
"""Decode a candump -L log against the CAN contract with Python cantools.

An independent peer for maslow's generated Rust codecs (dbc-codegen): the
Rust test rigs/tests/dbc_cantools.rs writes a log of frames, runs this
script, and compares every value printed here with its own decoder's.

Usage:
    cantools_decode.py --dbc firmware/can/maslow.dbc --log run.log

Prints one JSON object per log line, in log order:

    {"line": 1, "timestamp": 1782000000.1, "id": 256, "name": "PackStatus",
     "signals": {"PackVoltage": 52.37, ...},      # scaled (physical) values
     "raw": {"PackVoltage": 5237, ...},           # raw integers
     "scale": {"PackVoltage": 0.01, ...},
     "e2e_data_id": 4352, "crc_in_frame": 17, "crc_computed": 17}

cantools knows nothing of the E2E scheme, so the CRC is recomputed here
with crccheck's CRC-8/GSM-A (poly 0x1D, init 0, no final XOR) over the data
id's low byte, its high byte and payload bytes 1..7, taking the data id
from the DBC attribute MaslowE2eDataId; messages without that attribute
print null for the three E2E fields. Frames whose id is not in the DBC
print {"line": n, "id": id, "name": null}.

Exit status: 0 on success, 2 on a line that cannot be parsed or decoded.
"""

import argparse
import json
import sys

import cantools
from cantools.logreader import Parser
from crccheck.crc import Crc8GsmA


def e2e_data_id(message):
    attrs = message.dbc.attributes if message.dbc is not None else {}
    attr = attrs.get("MaslowE2eDataId")
    return None if attr is None else int(attr.value)


def plain(value):
    """JSON-friendly signal value (cantools may return named choices)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    return float(value)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dbc", required=True)
    ap.add_argument("--log", required=True, help="candump -L log file")
    args = ap.parse_args()

    db = cantools.database.load_file(args.dbc)
    out = sys.stdout
    with open(args.log, encoding="ascii") as log:
        for n, (line, frame) in enumerate(Parser(log).iterlines(keep_unknowns=True), 1):
            if frame is None:
                print(f"line {n}: not a candump -L frame: {line!r}", file=sys.stderr)
                return 2
            try:
                msg = db.get_message_by_frame_id(frame.frame_id)
            except KeyError:
                out.write(json.dumps({"line": n, "id": frame.frame_id, "name": None}) + "\n")
                continue
            data = bytes(frame.data)
            try:
                phys = msg.decode(data, decode_choices=False, scaling=True)
                raw = msg.decode(data, decode_choices=False, scaling=False)
            except Exception as e:  # noqa: BLE001 - report and fail
                print(f"line {n}: cannot decode {msg.name}: {e}", file=sys.stderr)
                return 2
            data_id = e2e_data_id(msg)
            crc_computed = None
            crc_in_frame = None
            if data_id is not None and len(data) >= 2:
                crc_computed = Crc8GsmA.calc(bytes([data_id & 0xFF, data_id >> 8]) + data[1:])
                crc_in_frame = data[0]
            ts = frame.timestamp.timestamp() if hasattr(frame.timestamp, "timestamp") else frame.timestamp
            record = {
                "line": n,
                "timestamp": ts,
                "id": frame.frame_id,
                "name": msg.name,
                "signals": {k: plain(v) for k, v in phys.items()},
                "raw": {k: int(v) for k, v in raw.items()},
                "scale": {s.name: s.scale for s in msg.signals},
                "e2e_data_id": data_id,
                "crc_in_frame": crc_in_frame,
                "crc_computed": crc_computed,
            }
            out.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
