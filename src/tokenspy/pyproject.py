"""The ``[tool.tokenspy]`` table of the nearest ``pyproject.toml``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def find(start: str | os.PathLike[str] | None = None) -> Path | None:
    """``start`` itself if it is a file, else the nearest ``pyproject.toml`` from ``start``
    (default: the cwd) upwards."""
    here = Path(os.path.abspath(os.fspath(start) if start is not None else os.getcwd()))
    if here.is_file():
        return here
    for d in (here, *here.parents):
        candidate = d / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def tool_table(start: str | os.PathLike[str] | None = None) -> tuple[Path | None, dict[str, Any]]:
    """(the file read, its ``[tool.tokenspy]`` table); ({}, None) when there is none.

    Raises ValueError naming the file when it does not parse."""
    path = find(start)
    if path is None:
        return None, {}
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    table = doc.get("tool", {}).get("tokenspy", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [tool.tokenspy] must be a table")
    return path, table
