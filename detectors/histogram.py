"""Bounded, mergeable histograms whose bins are fixed by a reference sample.

Numeric: quantile bins of the reference plus an underflow and an overflow bin, so values outside the
reference range are counted, not dropped. Categorical: the reference's top-K categories, an "other"
bucket (reference categories beyond the top K) and an "unseen" bucket (categories the reference never
had). Both count missing values and wrong types per feature and add up exactly under ``merge``.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from detectors.codec import pack_json, unpack_json
from detectors.exceptions import ReferenceMismatchError, SnapshotError
from detectors.fill_kernel import fill_segments

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FORMAT_VERSION: Final = 1
# Bin sums are kept in fixed point, as integers, so that they are exact whatever the batching (a float
# sum depends on the order of additions, and a restored monitor must continue bit for bit): offsets
# from the bin's left edge in 2**-24 of its width, and out-of-range distances from the nearest edge in
# 2**-24 of the reference span, capped at 2**16 spans (a value further out is counted at that distance).
# int64 holds 2**23 such capped values per bin, far beyond a window.
_FRACTION_SCALE: Final = float(2**24)
_TAIL_SCALE: Final = float(2**24)
_TAIL_CAP: Final = float(2**16)
_MAX_BATCH: Final = 2**28
_NUMERIC_MAGIC: Final = b"DWHN"
_CATEGORICAL_MAGIC: Final = b"DWHC"


def discrete_values(values: npt.ArrayLike, n_bins: int) -> FloatArray | None:
    """The distinct finite values when a column is discrete: at most ``n_bins`` of them, each seen twice on average.

    Quantile bins of such a column can only merge values (a 0/1 prediction falls into one bin, so PSI, JS and
    KS are 0 whatever the mix), never split them: a bin per value keeps every change visible with no more bins
    than configured. The "twice on average" keeps a tiny sample of a continuous variable on quantile bins.
    """
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    distinct = np.unique(finite)
    if 2 <= distinct.size <= n_bins and finite.size >= 2 * distinct.size:
        return distinct
    return None


def value_edges(distinct: FloatArray) -> FloatArray:
    """Edges that give each of the sorted ``distinct`` values a bin of its own: the midpoints between them, and the
    extremes themselves (so a value beyond them is out of range)."""
    return np.concatenate([distinct[:1], (distinct[:-1] + distinct[1:]) / 2.0, distinct[-1:]])


def quantile_edges(values: npt.ArrayLike, n_bins: int) -> FloatArray:
    """Edges of up to ``n_bins`` equal-mass bins of the finite ``values`` (ties merge bins).

    A sample with a single distinct value gets the edges ``[v, v]``: one bin holding exactly ``v``.
    With no finite value at all the edges are ``[0, 0]`` and every later value is out of range.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return np.zeros(2)
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size == 1:
        edges = np.repeat(edges, 2)
    return edges


class NumericHistogram:
    """Counts of a numeric feature in fixed bins.

    ``counts[0]`` is the underflow bin (``x < edges[0]``), ``counts[i]`` for ``1 <= i < len(edges)``
    the interior bin ``[edges[i-1], edges[i])`` (the last one closed on the right), ``counts[-1]`` the
    overflow bin (``x > edges[-1]``). The sum of the values in each bin (in fixed point, exact under any
    batching) and the extremes are kept too: with them the area under the CDF over each bin is exact.

    >>> h = NumericHistogram([0.0, 1.0, 2.0])
    >>> h.update([-5.0, 0.5, 1.0, 2.0, 7.0, float("nan")])
    >>> h.counts.tolist(), h.n_missing
    ([1, 1, 2, 1], 1)
    """

    _slot: int  # set only on a histogram of ``empty_like_all``: its place in the shared block

    def __init__(self, edges: Sequence[float] | FloatArray, discrete: bool = False) -> None:
        array = np.asarray(edges, dtype=np.float64)
        if array.ndim != 1 or array.size == 0:
            raise ValueError("edges must be a non-empty 1-D sequence")
        if not np.isfinite(array).all():
            raise ValueError("edges must be finite")
        if array.size == 1:
            array = np.repeat(array, 2)
        degenerate = array.size == 2 and array[0] == array[1]
        if not degenerate and not (np.diff(array) > 0).all():
            raise ValueError("edges must be strictly increasing")
        self.edges: FloatArray = array
        self.discrete = bool(discrete)  # a bin per distinct reference value (``discrete_values``)
        self._counts: IntArray = np.zeros(array.size + 1, dtype=np.int64)
        self.n_missing = 0
        self.n_invalid = 0
        self._fixed: IntArray = np.zeros(array.size + 1, dtype=np.int64)
        span = float(array[-1] - array[0]) or 1.0
        widths = np.diff(array)
        self._anchor: FloatArray = np.concatenate([[array[0]], array[:-1], [array[-1]]])
        self._direction: FloatArray = np.concatenate([[-1.0], np.ones(widths.size), [1.0]])
        self._unit: FloatArray = np.concatenate([[span], np.where(widths > 0, widths, 1.0), [span]])
        self._scale: FloatArray = np.concatenate([[_TAIL_SCALE], np.full(widths.size, _FRACTION_SCALE),
                                                  [_TAIL_SCALE]])
        self.sum_sq = 0.0
        self.min = math.inf
        self.max = -math.inf

    @classmethod
    def from_values(cls, values: npt.ArrayLike, n_bins: int) -> NumericHistogram:
        """A reference histogram: a bin per value of a discrete column, else quantile edges; then ``values``
        counted in them."""
        array = np.asarray(values, dtype=np.float64)
        distinct = discrete_values(array, n_bins)
        if distinct is not None:
            histogram = cls(value_edges(distinct), discrete=True)
        else:
            histogram = cls(quantile_edges(array, n_bins))
        histogram.update(array)
        return histogram

    def like(self) -> NumericHistogram:
        """An empty histogram with the same bins (a fresh current window); skips re-validating edges."""
        return self._empty(np.zeros_like(self._counts), np.zeros_like(self._fixed))

    def _empty(self, counts: IntArray, fixed: IntArray) -> NumericHistogram:
        """``like`` over given zeroed count and sum arrays (``empty_like_all``)."""
        empty = object.__new__(NumericHistogram)
        # edges and bin geometry are never mutated: share them
        empty.__dict__ = {**self.__dict__, "_counts": counts, "_fixed": fixed, "n_missing": 0, "n_invalid": 0,
                          "sum_sq": 0.0, "min": math.inf, "max": -math.inf}
        return empty

    # -- counting --------------------------------------------------------------------------------
    def update(self, values: npt.ArrayLike) -> None:
        """Count a batch: NaN is missing, +-inf invalid, every finite value lands in a bin."""
        array = np.asarray(values, dtype=np.float64).ravel()
        if array.size == 0:
            return
        if array.size > _MAX_BATCH:  # keeps the float bincount of fixed-point offsets exact
            for start in range(0, array.size, _MAX_BATCH):
                self.update(array[start : start + _MAX_BATCH])
            return
        finite = np.isfinite(array)
        if not finite.all():
            nan = np.isnan(array)
            self.n_missing += int(nan.sum())
            self.n_invalid += int((~finite & ~nan).sum())
            array = array[finite]
            if array.size == 0:
                return
        last = self.edges.size - 1
        index = np.searchsorted(self.edges, array, side="right")
        index[array == self.edges[last]] = last  # the last interior bin is closed on the right
        self._counts += np.bincount(index, minlength=self._counts.size)
        offset = np.minimum(self._direction[index] * (array - self._anchor[index]) / self._unit[index], _TAIL_CAP)
        fixed = np.rint(offset * self._scale[index])
        outside = (index == 0) | (index == last + 1)
        if outside.any():  # out-of-range offsets are large: add them as int64, exactly
            np.add.at(self._fixed, index[outside], fixed[outside].astype(np.int64))
            index, fixed = index[~outside], fixed[~outside]
        # interior offsets are integers <= 2**24: their float sums are exact below 2**29 values per batch
        self._fixed += np.bincount(index, weights=fixed, minlength=self._fixed.size).astype(np.int64)
        self.sum_sq += float(np.dot(array, array))
        self.min = min(self.min, float(array.min()))
        self.max = max(self.max, float(array.max()))

    def count_missing(self, n: int) -> None:
        self.n_missing += n

    def count_invalid(self, n: int) -> None:
        self.n_invalid += n

    def merge(self, other: NumericHistogram) -> NumericHistogram:
        """Add ``other``'s counts into this histogram (same bins required); returns ``self``."""
        if not isinstance(other, NumericHistogram) or not np.array_equal(self.edges, other.edges):
            raise ReferenceMismatchError("cannot merge numeric histograms with different edges")
        self._counts += other._counts
        self.n_missing += other.n_missing
        self.n_invalid += other.n_invalid
        self._fixed += other._fixed
        self.sum_sq += other.sum_sq
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    # -- reading ---------------------------------------------------------------------------------
    @property
    def counts(self) -> IntArray:
        return self._counts.copy()

    @property
    def sums(self) -> FloatArray:
        """The sum of the values counted in each bin (to the fixed-point resolution)."""
        offsets = self._fixed.astype(np.float64) / self._scale * self._unit * self._direction
        return self._counts * self._anchor + offsets

    @property
    def sum(self) -> float:
        return float(self.sums.sum())

    @property
    def n(self) -> int:
        """Values counted in bins (finite ones)."""
        return int(self._counts.sum())

    @property
    def total(self) -> int:
        """Every value seen, including missing and invalid ones."""
        return self.n + self.n_missing + self.n_invalid

    @property
    def n_out_of_range(self) -> int:
        return int(self._counts[0] + self._counts[-1])

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation of the finite values (0 for a single repeated value)."""
        if not self.n:
            return math.nan
        mean = self.sum / self.n
        return math.sqrt(max(self.sum_sq / self.n - mean * mean, 0.0))

    # -- bytes -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges.tolist(),
            "discrete": self.discrete,
            "counts": self._counts.tolist(),
            "n_missing": self.n_missing,
            "n_invalid": self.n_invalid,
            "fixed_sums": self._fixed.tolist(),
            "sum_sq": self.sum_sq,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> NumericHistogram:
        try:
            histogram = cls(payload["edges"], bool(payload.get("discrete", False)))
            counts = np.asarray(payload["counts"], dtype=np.int64)
            if counts.shape != histogram._counts.shape or (counts < 0).any():
                raise ValueError("counts do not match the edges")
            fixed = np.asarray(payload["fixed_sums"], dtype=np.int64)
            if fixed.shape != counts.shape:
                raise ValueError("sums do not match the edges")
            histogram._counts, histogram._fixed = counts, fixed
            histogram.n_missing = int(payload["n_missing"])
            histogram.n_invalid = int(payload["n_invalid"])
            for name in ("sum_sq", "min", "max"):
                setattr(histogram, name, float(payload[name]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"corrupt numeric histogram: {exc}") from exc
        return histogram

    def to_bytes(self) -> bytes:
        return pack_json(_NUMERIC_MAGIC, FORMAT_VERSION, self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> NumericHistogram:
        return cls.from_dict(unpack_json(_NUMERIC_MAGIC, FORMAT_VERSION, data, "numeric histogram"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumericHistogram) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"NumericHistogram(bins={self.edges.size - 1}, n={self.n}, missing={self.n_missing})"


class NumericLayout:
    """The bins of several numeric histograms side by side, for ``update_numeric``: each row of edges padded with +inf
    (to a power of two, and past the span of a search from the cell table: ``_cells``), a table from a padded
    position to its global bin, and the bins' geometry concatenated. A reference builds the one of its windows'
    histograms once, when loaded (``Reference.window_layout``), so that a window's batches use it without a look-up."""

    def __init__(self, histograms: Sequence[NumericHistogram]) -> None:
        self.edges = [h.edges for h in histograms]  # held: the cache key is their ids
        most = max(e.size for e in self.edges)
        width = 1 << most.bit_length()  # > every edge count: one +inf at least
        self.cells, self.low, self.inverse, first, span = self._cells(width)
        # the search from a cell's first edge spans `span` positions: a row holds that many +inf after its edges
        self.width = width = max(width, most + span) if self.cells else width
        self.span = span if self.cells else width
        self.bins = [h._counts.size for h in histograms]
        self.offsets = np.cumsum([0, *self.bins[:-1]]).tolist()
        self.total = int(sum(self.bins))
        padded = np.full((len(histograms), width), math.inf)
        bin_of = np.zeros((len(histograms), width), dtype=np.intp)
        for i, e in enumerate(self.edges):
            padded[i, : e.size] = e
            bin_of[i, : e.size + 1] = self.offsets[i] + np.arange(e.size + 1)  # e.size + 1 bins, overflow last
        self.padded = padded.ravel()
        self.bin_of = bin_of.ravel()
        self.rows = np.arange(len(histograms), dtype=np.intp) * width
        if self.cells:  # a cell's first edge, as a padded position
            self.first = (first + self.rows[:, None]).ravel()
        else:
            self.first = np.zeros(0, dtype=np.intp)
        first_bin = np.zeros(self.total, dtype=bool)  # each histogram's underflow bin
        first_bin[self.offsets] = True
        self.overflow = np.zeros(self.total, dtype=bool)
        self.overflow[[o + b - 1 for o, b in zip(self.offsets, self.bins, strict=True)]] = True
        self.outside = first_bin | self.overflow
        self.last_edge = np.concatenate([np.full(b, e[-1]) for e, b in zip(self.edges, self.bins, strict=True)])
        self.direction = np.concatenate([h._direction for h in histograms])
        self.anchor = np.concatenate([h._anchor for h in histograms])
        self.unit = np.concatenate([h._unit for h in histograms])
        self.scale = np.concatenate([h._scale for h in histograms])

    def _cells(self, width: int) -> tuple[int, FloatArray, FloatArray, IntArray, int]:
        """A table that starts each value's search near its bin: each row's edge range cut into equal cells, a
        value's cell ``(x - low) * inverse`` (clipped, truncated) and, per cell, the row's first edge in it.

        Rounding is monotone, so a cell's value is above every edge of an earlier cell and below every edge of a
        later one: the search from the cell's first edge over as many positions as a cell has edges at most finds
        the same count of edges at or below the value, exactly. With more edges in some cell than a search over
        ``width / 4`` positions, no table (0 cells): the search spans the whole row.
        """
        best: tuple[int, FloatArray, FloatArray, IntArray, int] = (0, np.zeros(0), np.zeros(0),
                                                                   np.zeros((0, 0), dtype=np.intp), width)
        for cells in (64, 256, 1024, 4096):
            low = np.array([e[0] for e in self.edges])
            with np.errstate(divide="ignore", over="ignore"):
                inverse = cells / np.array([e[-1] - e[0] for e in self.edges])
            inverse = np.where(np.isfinite(inverse) & (inverse > 0), inverse, 1.0)  # any positive scale is exact
            first = np.zeros((len(self.edges), cells), dtype=np.intp)
            fullest = 0
            for i, e in enumerate(self.edges):
                with np.errstate(over="ignore"):
                    cell = _cell_of(e, low[i], inverse[i], cells)
                per_cell = np.bincount(cell, minlength=cells)
                first[i, 1:] = np.cumsum(per_cell)[:-1]
                fullest = max(fullest, int(per_cell.max()))
            span = 1 << fullest.bit_length()  # > the most edges in one cell
            if span < best[4]:
                best = (cells, low, inverse, first, span)
            if fullest <= 1:
                break
        return best if best[4] <= width // 4 else (0, *best[1:4], width)


def _cell_of(values: FloatArray, low: FloatArray | float, inverse: FloatArray | float, cells: int) -> IntArray:
    """The cells of finite values: the same floating-point operations for the edges and for the values."""
    cell = (values - low) * inverse
    np.clip(cell, 0.0, cells - 1.0, out=cell)
    return cell.astype(np.intp)


_LAYOUTS: dict[tuple[int, ...], NumericLayout] = {}
_MAX_LAYOUTS: Final = 256
_LAYOUTS_LOCK = threading.Lock()


def _layout(histograms: Sequence[NumericHistogram], hint: NumericLayout | None = None) -> NumericLayout:
    """The layout of these histograms' bins: ``hint`` when it is theirs, else the one kept for the next batch (a
    window's histograms share their reference's edges, which are never mutated); least recently used ones are
    dropped past ``_MAX_LAYOUTS``."""
    if (hint is not None and len(hint.edges) == len(histograms)
            and all(e is h.edges for e, h in zip(hint.edges, histograms, strict=True))):
        return hint
    key = tuple(id(h.edges) for h in histograms)  # valid while the layout holds the edges
    with _LAYOUTS_LOCK:  # the stream may run monitors on more than one thread
        layout = _LAYOUTS.pop(key, None)
        if layout is None:
            layout = NumericLayout(histograms)
            while len(_LAYOUTS) >= _MAX_LAYOUTS:
                del _LAYOUTS[next(iter(_LAYOUTS))]
        _LAYOUTS[key] = layout  # most recent last
    return layout


def update_numeric(histograms: Sequence[NumericHistogram], columns: Sequence[FloatArray],
                   layout: NumericLayout | None = None) -> None:
    """``histograms[i].update(columns[i])`` for every i, in one numpy pass over all of them (``layout``: their
    ``NumericLayout`` when known, checked; else it is looked up).

    A window's numeric features each paid ~15 numpy calls per batch, and ``searchsorted`` itself is slow on values
    in random order (a mispredicted branch per step). Here the columns are concatenated and searched together by a
    branchless binary search over each histogram's edges (padded with +inf), started from the layout's cell table
    (``NumericLayout._cells``: one step instead of five for well-spread edges), in one compiled loop over every value
    (``detectors/fill_kernel.py``), which adds each value's count and fixed-point offset to its bin.
    The state is exactly what ``update`` leaves: a value's bin is
    the same count of edges at or below it, counts and fixed-point sums are integers, the offsets come from the same
    floating-point operations (times a direction of 1 and a cap that cannot bind inside the range, skipped), and
    the sum of squares and the extremes are taken per histogram as there.
    """
    sizes = [column.size for column in columns]
    if len(histograms) < 2 or sum(sizes) > _MAX_BATCH:
        for histogram, column in zip(histograms, columns, strict=True):
            histogram.update(column)
        return
    values = np.concatenate(columns)
    finite = np.isfinite(values)
    if not finite.all():
        bounds = np.cumsum([0, *sizes])
        missing = np.cumsum(np.concatenate([[0], np.isnan(values)]))[bounds]
        kept = np.cumsum(np.concatenate([[0], finite]))[bounds]
        for i, histogram in enumerate(histograms):
            histogram.n_missing += int(missing[i + 1] - missing[i])
            histogram.n_invalid += int(sizes[i] - (kept[i + 1] - kept[i]) - (missing[i + 1] - missing[i]))
        sizes = np.diff(kept).tolist()
        values = values[finite]
    if not values.size:
        return
    layout = _layout(histograms, layout)
    total = layout.total
    block = _in_one_block(histograms, total)
    if block is not None:  # a window's histograms: every count and sum added in place
        counts, sums = block[:total], block[total:]
    else:
        counts, sums = np.zeros(total, dtype=np.int64), np.zeros(total, dtype=np.int64)
    fill_segments(values, np.cumsum([0, *sizes]), layout.padded, layout.rows, layout.span, layout.cells, layout.low,
                  layout.inverse, layout.first, layout.bin_of, layout.outside, layout.overflow, layout.last_edge,
                  layout.direction, layout.anchor, layout.unit, layout.scale, _FRACTION_SCALE, _TAIL_CAP, counts, sums)
    if block is None:
        for h, start, size in zip(histograms, layout.offsets, layout.bins, strict=True):
            h._counts += counts[start:start + size]
            h._fixed += sums[start:start + size]
    live = [i for i, size in enumerate(sizes) if size]
    starts = np.cumsum([0, *sizes]).tolist()
    lows = np.minimum.reduceat(values, [starts[i] for i in live]).tolist()
    highs = np.maximum.reduceat(values, [starts[i] for i in live]).tolist()
    for i, low, high in zip(live, lows, highs, strict=True):
        h = histograms[i]
        segment = values[starts[i]:starts[i + 1]]
        h.sum_sq += float(np.dot(segment, segment))
        h.min = min(h.min, low)
        h.max = max(h.max, high)

class CategoricalHistogram:
    """Counts of a categorical feature over a fixed vocabulary.

    ``counts`` is ``[one per category..., other, unseen]``: "other" holds categories the reference had
    beyond its top K, "unseen" categories the reference never had. The reference's tail is remembered up
    to ``max_known`` names; past that, unknown categories are counted as "other" (``tail_truncated``).
    The names of unseen categories are kept for the first ``len(categories)`` of them, for reports.

    >>> h = CategoricalHistogram(["a", "b"], known=["c"])
    >>> h.update(["a", "a", "c", "z", "b"])
    >>> h.counts.tolist(), h.unseen_examples
    ([2, 1, 1, 1], {'z': 1})
    """

    def __init__(
        self, categories: Sequence[str], known: Iterable[str] = (), tail_truncated: bool = False
    ) -> None:
        self.categories: tuple[str, ...] = tuple(categories)
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must be distinct")
        self.known: frozenset[str] = frozenset(known) - set(self.categories)
        self.tail_truncated = bool(tail_truncated)
        self._index = {name: i for i, name in enumerate(self.categories)}
        self._counts: IntArray = np.zeros(len(self.categories) + 2, dtype=np.int64)
        self.n_missing = 0
        self.n_invalid = 0
        self.n_singletons = 0  # reference categories seen exactly once (set by ``from_values``)
        self.unseen_examples: dict[str, int] = {}

    @classmethod
    def from_values(cls, keys: Sequence[str], top_k: int, max_known: int = 10_000) -> CategoricalHistogram:
        """A reference histogram: its top-K categories (ties by name), the rest as "other"."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        ranked = sorted(Counter(keys).items(), key=lambda item: (-item[1], item[0]))
        tail = [name for name, _ in ranked[top_k:]]
        histogram = cls(
            [name for name, _ in ranked[:top_k]], known=tail[:max_known], tail_truncated=len(tail) > max_known
        )
        histogram.update(keys)
        # Good-Turing: the share of later values in categories the reference never saw is about the share of
        # reference values in categories it saw once (what a quality rule and the calibration expect unseen)
        histogram.n_singletons = sum(1 for _, count in ranked if count == 1)
        histogram._counts[-2] += histogram._counts[-1]  # in the reference itself nothing is unseen
        histogram._counts[-1] = 0
        histogram.unseen_examples.clear()
        return histogram

    def like(self) -> CategoricalHistogram:
        """An empty histogram over the same vocabulary (a fresh current window); shares the vocabulary, which is
        never mutated, instead of rebuilding its index (10,000 categories at most, at every window close)."""
        empty = object.__new__(CategoricalHistogram)
        empty.categories, empty.known, empty.tail_truncated = self.categories, self.known, self.tail_truncated
        empty._index = self._index
        empty._counts = np.zeros_like(self._counts)
        empty.n_missing = empty.n_invalid = empty.n_singletons = 0
        empty.unseen_examples = {}
        return empty

    def update(self, keys: Iterable[str]) -> None:
        self.add_counts(Counter(keys))

    def add_counts(self, counts: Mapping[str, int]) -> None:
        """``update`` of keys already counted (in order of first appearance, as ``Counter`` keeps them)."""
        other, unseen = len(self.categories), len(self.categories) + 1
        for name, count in counts.items():
            index = self._index.get(name)
            if index is not None:
                self._counts[index] += count
            elif name in self.known or self.tail_truncated:
                self._counts[other] += count
            else:
                self._counts[unseen] += count
                if name in self.unseen_examples or len(self.unseen_examples) < max(len(self.categories), 10):
                    self.unseen_examples[name] = self.unseen_examples.get(name, 0) + count

    def count_missing(self, n: int) -> None:
        self.n_missing += n

    def count_invalid(self, n: int) -> None:
        self.n_invalid += n

    def merge(self, other: CategoricalHistogram) -> CategoricalHistogram:
        if (
            not isinstance(other, CategoricalHistogram)
            or self.categories != other.categories
            or self.known != other.known
            or self.tail_truncated != other.tail_truncated
        ):
            raise ReferenceMismatchError("cannot merge categorical histograms with different vocabularies")
        self._counts += other._counts
        self.n_missing += other.n_missing
        self.n_invalid += other.n_invalid
        for name, count in other.unseen_examples.items():
            if name in self.unseen_examples or len(self.unseen_examples) < max(len(self.categories), 10):
                self.unseen_examples[name] = self.unseen_examples.get(name, 0) + count
        return self

    @property
    def counts(self) -> IntArray:
        return self._counts.copy()

    @property
    def n(self) -> int:
        return int(self._counts.sum())

    @property
    def total(self) -> int:
        return self.n + self.n_missing + self.n_invalid

    @property
    def n_unseen(self) -> int:
        return int(self._counts[-1])

    @property
    def unseen_share_expected(self) -> float:
        """The Good-Turing estimate of how much of a later sample falls in categories this reference lacks."""
        n = self.n
        return self.n_singletons / n if n and not self.tail_truncated else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "known": sorted(self.known),
            "tail_truncated": self.tail_truncated,
            "counts": self._counts.tolist(),
            "n_missing": self.n_missing,
            "n_invalid": self.n_invalid,
            "n_singletons": self.n_singletons,
            "unseen_examples": dict(self.unseen_examples),
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> CategoricalHistogram:
        try:
            histogram = cls(payload["categories"], payload["known"], payload["tail_truncated"])
            counts = np.asarray(payload["counts"], dtype=np.int64)
            if counts.shape != histogram._counts.shape or (counts < 0).any():
                raise ValueError("counts do not match the categories")
            histogram._counts = counts
            histogram.n_missing = int(payload["n_missing"])
            histogram.n_invalid = int(payload["n_invalid"])
            histogram.n_singletons = int(payload.get("n_singletons", 0))
            histogram.unseen_examples = {str(k): int(v) for k, v in payload["unseen_examples"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"corrupt categorical histogram: {exc}") from exc
        return histogram

    def to_bytes(self) -> bytes:
        return pack_json(_CATEGORICAL_MAGIC, FORMAT_VERSION, self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> CategoricalHistogram:
        return cls.from_dict(unpack_json(_CATEGORICAL_MAGIC, FORMAT_VERSION, data, "categorical histogram"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalHistogram) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"CategoricalHistogram(categories={len(self.categories)}, n={self.n}, missing={self.n_missing})"


Histogram = NumericHistogram | CategoricalHistogram


def empty_like_all(histograms: Sequence[Histogram]) -> list[Histogram]:
    """``h.like()`` of each histogram (a new window's), the numeric ones' counts and sums as slices of one zeroed
    block: one allocation instead of two per histogram."""
    total = sum(h._counts.size for h in histograms if isinstance(h, NumericHistogram))
    block = np.zeros(2 * total, dtype=np.int64)  # every one's counts, then every one's sums
    at = slot = 0
    out: list[Histogram] = []
    for h in histograms:
        if isinstance(h, NumericHistogram):
            size = h._counts.size
            empty = h._empty(block[at:at + size], block[total + at:total + at + size])
            empty._slot = slot  # its place in the block: ``update_numeric`` adds to all of them at once
            out.append(empty)
            at += size
            slot += 1
        else:
            out.append(h.like())
    return out


def _in_one_block(histograms: Sequence[NumericHistogram], total: int) -> IntArray | None:
    """The block of ``empty_like_all`` when these histograms are all of its numeric ones, in its order (``total``
    bins): then their counts are its first half and their sums its second. None otherwise (a window restored from
    bytes holds copies)."""
    block = histograms[0]._counts.base
    if block is None or block.size != 2 * total:
        return None
    for i, h in enumerate(histograms):
        if h._counts.base is not block or h._fixed.base is not block or h.__dict__.get("_slot") != i:
            return None
    return block

