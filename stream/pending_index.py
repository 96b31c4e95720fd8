"""Where each waiting prediction is: an in-memory index from event-id digest to (segment, row), per model.

Redis holds a batch's waiting predictions as one segment (``driftwarden.contract.pending_segment``), so it has no
per-id index; the worker that owns a model keeps one here. It is a cache of Redis, not a source of truth: it
is built from the segments and the joined set (``stream.joins.load_index``) whenever this process does not hold
the one that matches the model's state version (start, takeover, a failed transaction), and after a batch's
transaction succeeds it is advanced by the very changes the transaction made (``JoinPlan.advance``).

The id table is open addressing over two numpy arrays (16 bytes a slot, at most half full: ~32 bytes per
waiting prediction, against ~100 for a Python dict), probed in compiled loops, a batch of ids per call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from numba import njit

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

_EMPTY, _GONE = 0, 1  # slot markers; a digest below 2 is stored as digest + 2 (``as_keys``)
_ROW_BITS = 32


def as_keys(digests: bytes) -> U64:
    """Joined 8-byte digests as table keys."""
    keys = np.frombuffer(digests, "<u8").astype(np.uint64)
    low = keys < 2
    if low.any():
        keys[low] += np.uint64(2)
    return keys


@njit(cache=True, nogil=True)
def _insert(table: U64, values: I64, keys: U64, new: I64, replaced: I64) -> tuple[int, int]:  # pragma: no cover
    """Puts ``new[i]`` under ``keys[i]``; ``replaced[i]`` the value it overwrote (-1: none). Returns (keys
    added, tombstones reused)."""
    mask = np.uint64(table.size - 1)
    added = 0
    reused = 0
    for i in range(keys.size):
        k = keys[i]
        j = np.int64(k & mask)
        gone = np.int64(-1)
        replaced[i] = -1
        while True:
            t = table[j]
            if t == k:
                replaced[i] = values[j]
                values[j] = new[i]
                break
            if t == _EMPTY:
                if gone >= 0:
                    j = gone
                    reused += 1
                table[j] = k
                values[j] = new[i]
                added += 1
                break
            if t == _GONE and gone < 0:
                gone = np.int64(j)
            j = (j + 1) & (table.size - 1)
    return added, reused


@njit(cache=True, nogil=True)
def _slot(table: U64, k: np.uint64) -> int:  # pragma: no cover
    """The slot holding key ``k``, or -1 (probing stops at the first empty slot, past tombstones)."""
    j = np.int64(k & np.uint64(table.size - 1))
    while True:
        t = table[j]
        if t == k:
            return int(j)
        if t == _EMPTY:
            return -1
        j = (j + 1) & (table.size - 1)


@njit(cache=True, nogil=True)
def _find(table: U64, values: I64, keys: U64) -> I64:  # pragma: no cover
    out = np.full(keys.size, -1, np.int64)
    for i in range(keys.size):
        j = _slot(table, keys[i])
        if j >= 0:
            out[i] = values[j]
    return out


@njit(cache=True, nogil=True)
def _remove(table: U64, values: I64, keys: U64, expected: I64) -> int:  # pragma: no cover
    """Removes each key still holding its expected value (a newer row with the same id stays)."""
    removed = 0
    for i in range(keys.size):
        j = _slot(table, keys[i])
        if j >= 0 and values[j] == expected[i]:
            table[j] = _GONE
            removed += 1
    return removed


@dataclass
class Segment:
    """One stored batch of waiting predictions, as the index knows it."""

    name: bytes  # its member in the expiry index; its key is ``Keys.pending_segment(model, name)``
    keys: U64  # table keys of its rows, in row order
    keep: int  # rows 0..keep-1 hold their features
    gone: set[int] = field(default_factory=set)  # rows joined, or replaced by a newer prediction with the same id
    replaced: set[int] = field(default_factory=set)  # of them, the replaced ones (not in the joined set)

    def joined_rows(self) -> list[int]:
        return [r for r in self.gone if r not in self.replaced]

    @property
    def waiting(self) -> int:
        return len(self.keys) - len(self.gone)

    @property
    def holders(self) -> int:
        """Its waiting rows that hold features."""
        return self.keep - sum(1 for r in self.gone if r < self.keep)


class PendingIndex:
    """One model's waiting predictions: digest -> (segment, row), and each segment's rows still waiting."""

    def __init__(self) -> None:
        self._table = np.zeros(1024, np.uint64)
        self._values = np.zeros(1024, np.int64)
        self._live = 0
        self._gone = 0  # tombstones
        self._slots: list[Segment | None] = []  # a segment's slot number is the high half of a value
        self._free: list[int] = []
        self._slot_of: dict[bytes, int] = {}
        self.waiting = 0  # predictions waiting, in all
        self.holders = 0  # of them, those holding features

    def __len__(self) -> int:
        return len(self._slot_of)

    def segment(self, name: bytes) -> Segment | None:
        slot = self._slot_of.get(name)
        return None if slot is None else self._slots[slot]

    def segments(self) -> list[Segment]:
        return [s for s in self._slots if s is not None]

    def find(self, keys: U64) -> I64:
        """Each key's location (``slot << 32 | row``), or -1 for an id not waiting."""
        return _find(self._table, self._values, keys) if keys.size else np.empty(0, np.int64)

    def locate(self, location: int) -> tuple[Segment, int]:
        segment = self._slots[location >> _ROW_BITS]
        assert segment is not None, "a location of a dropped segment"
        return segment, location & ((1 << _ROW_BITS) - 1)

    # -- changes (only ever the ones a successful transaction made)

    def add(self, name: bytes, keys: U64, keep: int) -> None:
        if name in self._slot_of:
            raise ValueError(f"segment {name!r} is indexed already")
        slot = self._free.pop() if self._free else len(self._slots)
        segment = Segment(name, keys, keep)
        if slot == len(self._slots):
            self._slots.append(segment)
        else:
            self._slots[slot] = segment
        self._slot_of[name] = slot
        self._reserve(keys.size)
        replaced = np.empty(keys.size, np.int64)
        new = (np.int64(slot) << _ROW_BITS) | np.arange(keys.size, dtype=np.int64)
        added, reused = _insert(self._table, self._values, keys, new, replaced)
        self._live += added
        self._gone -= reused
        self.waiting += keys.size
        self.holders += keep
        # An id sent again (here or in an earlier batch): its older row no longer waits, the newer one does.
        for location in replaced[replaced >= 0].tolist():
            older, row = self.locate(location)
            if row not in older.gone:
                older.replaced.add(row)
            self._leave(older, row)

    def join(self, locations: list[int]) -> None:
        """The predictions at ``locations`` got their label."""
        if not locations:
            return
        for location in locations:
            self._leave(*self.locate(location))
        where = np.array(locations, np.int64)
        slots = where >> _ROW_BITS
        rows = where & ((1 << _ROW_BITS) - 1)
        keys = np.empty(where.size, np.uint64)
        for slot in np.unique(slots).tolist():
            segment = self._slots[slot]
            assert segment is not None
            mine = slots == slot
            keys[mine] = segment.keys[rows[mine]]
        self._remove(keys, where)

    def drop(self, name: bytes) -> Segment:
        """A segment expired or evicted: its rows leave the index (the caller counts the waiting ones)."""
        slot = self._slot_of.pop(name)
        segment = self._slots[slot]
        assert segment is not None
        self._slots[slot] = None
        self._free.append(slot)
        self.waiting -= segment.waiting
        self.holders -= segment.holders
        waiting = np.ones(len(segment.keys), np.bool_)
        waiting[list(segment.gone)] = False
        rows = np.flatnonzero(waiting).astype(np.int64)
        if rows.size:
            self._remove(segment.keys[rows], (np.int64(slot) << _ROW_BITS) | rows)
        return segment

    def _leave(self, segment: Segment, row: int) -> None:
        if row in segment.gone:
            return
        segment.gone.add(row)
        self.waiting -= 1
        self.holders -= row < segment.keep

    def _remove(self, keys: U64, expected: I64) -> None:
        removed = _remove(self._table, self._values, keys, expected)
        self._live -= removed
        self._gone += removed

    def _reserve(self, more: int) -> None:
        """Keeps the table at most half full (counting tombstones), and shrinks it when it is mostly empty."""
        need = self._live + more
        size = self._table.size
        if self._live + self._gone + more <= size // 2 and (size == 1024 or need * 8 > size):
            return
        new_size = 1024
        while new_size < 2 * need:
            new_size *= 2
        used = self._table >= 2
        keys, values = self._table[used], self._values[used]
        self._table = np.zeros(new_size, np.uint64)
        self._values = np.zeros(new_size, np.int64)
        self._gone = 0
        self._live, _reused = _insert(self._table, self._values, keys, values, np.empty(keys.size, np.int64))

    def nbytes(self) -> int:
        return int(self._table.nbytes + self._values.nbytes) + sum(s.keys.nbytes for s in self.segments())
