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


ADWIN: Final[type[base.DriftDetector]] = load_module("river.drift.adwin").ADWIN
KSWIN: Final[type[base.DriftDetector]] = load_module("river.drift.kswin").KSWIN
PageHinkley: Final[type[base.DriftDetector]] = load_module("river.drift.page_hinkley").PageHinkley
DDM: Final[type[base.BinaryDriftDetector]] = load_module("river.drift.binary.ddm").DDM
EDDM: Final[type[base.BinaryDriftDetector]] = load_module("river.drift.binary.eddm").EDDM
HDDMA: Final[type[base.BinaryDriftDetector]] = load_module("river.drift.binary.hddm_a").HDDMA
HDDMW: Final[type[base.BinaryDriftDetector]] = load_module("river.drift.binary.hddm_w").HDDMW
