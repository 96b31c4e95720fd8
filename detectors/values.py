"""Turning raw feature values (whatever the producer sent) into typed columns, counting what does not fit.

A missing value is ``None`` or NaN. A wrong type is anything else a column cannot hold: a string or bool in
a numeric column, a number in a categorical one, or +-inf (a number no bin or mean can use).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_FAST_NUMERIC = frozenset({float, int})
_FAST_NUMERIC_OR_NONE = frozenset({float, int, type(None)})


class NumericColumn(NamedTuple):
    values: FloatArray  # finite values and NaN (missing); wrong types and +-inf removed
    n_invalid: int


class CategoricalColumn(NamedTuple):
    keys: list[str]  # category keys of the valid values
    n_missing: int
    n_invalid: int


def is_number(value: object) -> bool:
    """True for ints and floats (numpy's too) but not bools, which are categories."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def is_category(value: object) -> bool:
    return isinstance(value, str | bool | np.bool_)


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def numeric_column(raw: Sequence[object]) -> NumericColumn:
    """Floats for a numeric feature; ``None`` becomes NaN so the histogram counts it as missing."""
    if isinstance(raw, np.ndarray) and raw.dtype == np.float64:  # a decoded column: NaN already means missing
        finite_or_nan = np.isfinite(raw) | np.isnan(raw)
        if finite_or_nan.all():
            return NumericColumn(raw, 0)
        return NumericColumn(raw[finite_or_nan], int((~finite_or_nan).sum()))
    types = set(map(type, raw))
    if types <= _FAST_NUMERIC_OR_NONE:
        try:
            values = (np.fromiter(raw, dtype=np.float64, count=len(raw)) if types <= _FAST_NUMERIC
                      else np.array(raw, dtype=np.float64))  # None becomes NaN: missing
        except OverflowError:  # an int too large for a float: take the slow path, which counts it
            pass
        else:
            finite_or_nan = np.isfinite(values) | np.isnan(values)
            if finite_or_nan.all():
                return NumericColumn(values, 0)
            return NumericColumn(values[finite_or_nan], int((~finite_or_nan).sum()))
    kept: list[float] = []
    invalid = 0
    for value in raw:
        if value is None:
            kept.append(math.nan)
        elif is_number(value):
            try:
                number = float(value)  # type: ignore[arg-type]
            except OverflowError:
                invalid += 1
                continue
            if math.isinf(number):
                invalid += 1
            else:
                kept.append(number)
        else:
            invalid += 1
    return NumericColumn(np.asarray(kept, dtype=np.float64), invalid)


def categorical_column(raw: Sequence[object]) -> CategoricalColumn:
    """Category keys for a categorical feature: strings as they are, bools as ``"True"``/``"False"``."""
    if isinstance(raw, np.ndarray):
        raw = [None if isinstance(v, float) and v != v else v for v in raw.tolist()]  # NaN: missing
    if set(map(type, raw)) <= {str}:
        return CategoricalColumn(list(raw), 0, 0)  # type: ignore[arg-type]
    keys: list[str] = []
    missing = invalid = 0
    for value in raw:
        if isinstance(value, str):
            keys.append(value)
        elif isinstance(value, bool | np.bool_):
            keys.append(str(bool(value)))
        elif is_missing(value):
            missing += 1
        else:
            invalid += 1
    return CategoricalColumn(keys, missing, invalid)


def infer_kind(raw: Sequence[object]) -> str:
    """``"numeric"`` when most present values are numbers, else ``"categorical"`` (ties go to numeric)."""
    types = set(map(type, raw))
    if types <= _FAST_NUMERIC:  # the common columns, without a Python call per value
        return "numeric" if any(value == value for value in raw) else "categorical"  # NaN != NaN
    if types == {str}:
        return "categorical"
    numbers = categories = 0
    for value in raw:
        if is_missing(value):
            continue
        if is_number(value):
            numbers += 1
        elif is_category(value):
            categories += 1
    return "numeric" if numbers >= categories and numbers > 0 else "categorical"
