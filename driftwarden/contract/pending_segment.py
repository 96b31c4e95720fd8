"""The stored form of one batch's waiting predictions: a *segment* (``Keys.pending_segment``), one string per
batch instead of one hash field per prediction.

A batch's transaction writes its waiting predictions as one value, so Redis does one allocation per batch, not
two per prediction (a 1,000-field ``HSET`` into a model's 1M-field hash cost ~2.6 us per prediction on the Arrow
path, most of the worker's time). A label reads only its row, by offset (``GETRANGE``), never the whole segment.

Layout, little-endian::

    u32 n            rows
    u32 keep         rows 0..keep-1 hold their features (a model's samples_max slots, see stream.joins)
    u32 offsets[n+1] byte offset of each row in the value; offsets[n] is its length
    u64 digests[n]   8-byte event-id digest of each row (stream.joins.digest), in row order
    rows             each a PendingPrediction (msgpack array of 4 items, or 5 with the features)

The digests let a worker rebuild its in-memory id index from Redis alone (takeover, restart).
"""

from __future__ import annotations

import numpy as np

HEADER = 8  # n, keep


def encode_segment(digests: bytes, rows: list[bytes], keep: int) -> bytes:
    """One segment from the rows' 8-byte digests (joined, in row order) and their packed rows."""
    n = len(rows)
    if len(digests) != 8 * n:
        raise ValueError(f"{len(digests)} digest bytes for {n} rows")
    start = HEADER + 4 * (n + 1) + 8 * n
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    np.cumsum(np.fromiter(map(len, rows), np.int64, n), out=offsets[1:])
    offsets += start
    if offsets[-1] >= 2**32:
        raise ValueError("a segment of 4 GiB or more")
    return b"".join([np.array([n, keep], "<u4").tobytes(), offsets.astype("<u4").tobytes(), digests, *rows])


def segment_size(blob: bytes) -> tuple[int, int]:
    """(rows, rows holding features) of a segment."""
    n, keep = np.frombuffer(blob, "<u4", 2)
    return int(n), int(keep)


def segment_digests(blob: bytes) -> bytes:
    """The rows' 8-byte digests, joined, in row order."""
    n, _keep = segment_size(blob)
    start = HEADER + 4 * (n + 1)
    return blob[start:start + 8 * n]


def segment_rows(blob: bytes) -> list[bytes]:
    """Every row's packed ``PendingPrediction``, in row order."""
    n, _keep = segment_size(blob)
    offsets = np.frombuffer(blob, "<u4", n + 1, HEADER).tolist()
    return [blob[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]


# Reads rows of segments by offset: KEYS are segment keys, ARGV pairs of (1-based key index, 0-based row).
# A missing segment gives false (nil), as HMGET of a missing field did; rows asked are below the segment's n.
READ_ROWS = """
local out = {}
for i = 1, #ARGV, 2 do
  local key, row = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1])
  local o = redis.call('GETRANGE', key, 8 + 4 * row, 15 + 4 * row)
  if #o == 8 then
    local a, b = struct.unpack('<I4I4', o)
    out[#out + 1] = redis.call('GETRANGE', key, a, b - 1)
  else
    out[#out + 1] = false
  end
end
return out
"""
