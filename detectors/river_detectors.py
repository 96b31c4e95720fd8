"""River's drift detector classes, imported without ``river.drift``'s package ``__init__``.

``import river.drift`` also imports ``river.drift.datasets``, hence ``river.datasets`` and ``river.stream``,
which import pandas, scikit-learn and SQLAlchemy: about 1 s and 70 MiB of a stream worker's memory for
modules it never calls. Each detector's own module imports only ``river.base``, ``river.stats``, River's
compiled core (and KSWIN ``scipy.stats``), so this module loads those source files by their real names
(``river.drift.adwin``, ``river.drift.binary.ddm``, ...) and leaves the package ``__init__``s out.

The classes are River's own, not copies: a later ``import river.drift`` (a test, a notebook) reuses the
modules loaded here, so ``river.drift.ADWIN is ADWIN`` either way, and pickles name the same modules.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Final

import river
from river import base

_RIVER_DIR: Final = Path(next(iter(river.__path__)))


def load_module(name: str) -> ModuleType:
    """The River module ``name`` (``river.drift.adwin``), executed without its parent packages' ``__init__``.

    A module already imported (by this function or a normal import) is returned as it is.
    """
    if name in sys.modules:
        return sys.modules[name]
    parent, _, _ = name.rpartition(".")
    folder = _RIVER_DIR.joinpath(*parent.split(".")[1:])
    spec = importlib.machinery.PathFinder.find_spec(name, [str(folder)])
    if spec is None or spec.loader is None:
        raise ImportError(f"River has no module {name} in {folder}", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as the import system does: the module may import itself while it runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# class name -> its module; a detector's module is loaded when first asked for (KSWIN's imports scipy.stats,
# ~48 MiB a worker on the default ADWIN/DDM never needs)
MODULES: Final = {
    "ADWIN": "river.drift.adwin",
    "KSWIN": "river.drift.kswin",
    "PageHinkley": "river.drift.page_hinkley",
    "DDM": "river.drift.binary.ddm",
    "EDDM": "river.drift.binary.eddm",
    "HDDMA": "river.drift.binary.hddm_a",
    "HDDMW": "river.drift.binary.hddm_w",
}


def detector_class(name: str) -> type[base.DriftDetector] | type[base.BinaryDriftDetector]:
    """River's detector class ``name`` (``"ADWIN"``, ``"HDDMA"``...), its module loaded on first use."""
    if name not in MODULES:
        raise ImportError(f"no River drift detector {name!r}", name=name)
    cls: type[base.DriftDetector] | type[base.BinaryDriftDetector] = getattr(load_module(MODULES[name]), name)
    return cls


def __getattr__(name: str) -> type[base.DriftDetector] | type[base.BinaryDriftDetector]:
    """``from detectors.river_detectors import ADWIN``: loaded then, not when this module is imported."""
    if name in MODULES:
        return detector_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
