"""Caffe ``Datum`` records, encoded with the protobuf wire format directly.

From BVLC Caffe's ``src/caffe/proto/caffe.proto`` (proto2)::

    message Datum {
      optional int32 channels = 1;  optional int32 height = 2;
      optional int32 width = 3;     optional bytes data = 4;
      optional int32 label = 5;     repeated float float_data = 6;
      optional bool encoded = 7 [default = false];
    }

Non-uint8 data go into ``float_data``; proto2 repeated scalars are unpacked:
one tag byte (field 6, wire type 5 = 32-bit) per little-endian float32.
Writing the bytes here keeps datagen free of a Caffe dependency; tests check
that Caffe's own ``caffe_pb2.Datum`` parses them.
"""
from __future__ import annotations

import numpy as np

_TAG_FLOAT_DATA = 0x35  # (6 << 3) | 5
_FLOAT_RECORD = np.dtype([("tag", "u1"), ("value", "<f4")])


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("negative varint")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_datum(array: np.ndarray) -> bytes:
    """Serialize a C x H x W float array as a Caffe Datum with ``float_data``."""
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"Datum needs a CxHxW array, got shape {a.shape}")
    c, h, w = a.shape
    head = b"\x08" + _varint(c) + b"\x10" + _varint(h) + b"\x18" + _varint(w)
    rec = np.empty(a.size, dtype=_FLOAT_RECORD)
    rec["tag"] = _TAG_FLOAT_DATA
    rec["value"] = a.ravel()
    return head + rec.tobytes()


def decode_datum(buf: bytes) -> np.ndarray:
    """Parse a Datum (as written by :func:`encode_datum` or Caffe) -> float32 CxHxW.

    Supports fields 1-3 and 5-7, ``float_data`` packed or unpacked.  For
    tests and inspection; Caffe itself is the reference reader.
    """
    dims = {1: 0, 2: 0, 3: 0}
    floats: list[np.ndarray] = []
    i = 0
    n = len(buf)

    def varint(j):
        shift = value = 0
        while True:
            b = buf[j]
            value |= (b & 0x7F) << shift
            j += 1
            if not b & 0x80:
                return value, j
            shift += 7

    while i < n:
        key, i = varint(i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(i)
            if field in dims:
                dims[field] = value
        elif wire == 5:
            if field == 6:  # run of unpacked floats: (tag, float32) records
                p = i - 1  # the one-byte tag just read
                rec = np.frombuffer(buf, dtype=_FLOAT_RECORD, count=(n - p) // 5, offset=p)
                bad = np.nonzero(rec["tag"] != _TAG_FLOAT_DATA)[0]
                k = int(bad[0]) if bad.size else rec.size
                floats.append(rec["value"][:k].astype(np.float32))
                i = p + 5 * k
            else:
                i += 4
        elif wire == 2:
            length, i = varint(i)
            if field == 6:
                floats.append(np.frombuffer(buf, dtype="<f4", count=length // 4, offset=i).astype(np.float32))
            elif field == 4 and length:
                raise ValueError("uint8 Datum.data is not supported by decode_datum")
            i += length
        elif wire == 1:
            i += 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
    data = np.concatenate(floats) if floats else np.zeros(0, np.float32)
    return data.reshape(dims[1], dims[2], dims[3])
