"""The tables users hand in (a training file to onboard, a report's reference and current files): CSV or Parquet.

pandas is imported when a table is read, so the contract stays importable where pandas is not installed (the SDK).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftwarden.contract.errors import TableError


def read_table(path: str | Path) -> Any:
    """A pandas DataFrame from a ``.csv`` (optionally compressed) or ``.parquet`` file."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise TableError(f"no such file: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError, ImportError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TableError(f"cannot read {path} as {'Parquet' if '.parquet' in suffixes else 'CSV'}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types for a corrupt file
        raise TableError(f"cannot read {path}: {exc}") from exc
