"""Seeded streams shared by the detector tests (pytest puts this folder on sys.path)."""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Mapping

import numpy as np

from detectors.monitor import Observation, Outcome


def make_observations(n: int, seed: int, shift: float = 0.0, start: int = 0, categories: str = "abc",
                      weights: tuple[float, ...] | None = None, step: float = 1.0) -> list[Observation]:
    """``x`` normal(shift, 1), ``y`` uniform(0, 10), ``c`` categorical; prediction = a score of x."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    y = rng.uniform(0, 10, n)
    c = rng.choice(list(categories), n, p=weights)
    return [
        Observation(float(start + i) * step, {"x": float(x[i]), "y": float(y[i]), "c": str(c[i])},
                    float(1 / (1 + np.exp(-x[i]))), None)
        for i in range(n)
    ]


def make_outcomes(n_before: int, n_after: int, p_before: float, p_after: float, seed: int) -> list[Outcome]:
    rng = np.random.default_rng(seed)
    wrong = np.concatenate([rng.random(n_before) < p_before, rng.random(n_after) < p_after])
    return [Outcome(float(i), "a", "b" if w else "a") for i, w in enumerate(wrong)]


def fingerprint(obj: object) -> object:
    """A structure equal for two states exactly when every number in them is bit-for-bit equal.

    Pickle bytes cannot be compared directly: pickle memoises shared objects, so two equal states built
    along different paths (one restored from bytes) can pickle differently. Objects without a ``__dict__``
    (River's Rust ADWIN core) are compared by their own pickled state.
    """
    if obj is None or isinstance(obj, bool | int | str | bytes):
        return obj
    if isinstance(obj, float):
        return ("float", obj.hex())
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, np.generic):
        return ("scalar", obj.dtype.str, obj.tobytes())
    if isinstance(obj, Mapping):
        return ("map", tuple((fingerprint(k), fingerprint(v)) for k, v in obj.items()))
    if isinstance(obj, list | tuple | deque):
        return (type(obj).__name__, tuple(fingerprint(item) for item in obj))
    if isinstance(obj, set | frozenset):
        return ("set", tuple(sorted(map(repr, map(fingerprint, obj)))))
    if hasattr(obj, "__dict__"):
        return (type(obj).__qualname__, fingerprint(vars(obj)))
    return (type(obj).__qualname__, pickle.dumps(obj, protocol=5))
