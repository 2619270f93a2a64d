"""The line a pytest test is defined on, read from its file: the diff knows a test by its node id
(``path::Class::test_name[param]``), and an annotation needs ``line=`` to land on the test."""

from __future__ import annotations

import ast
from pathlib import Path


def test_line(test_id: str, file: str, root: Path | None) -> int | None:
    """The first line of the ``def`` the node id names, or None when it cannot be found."""
    parts = test_id.split("::")[1:]
    if not parts:
        return None
    names = [*parts[:-1], parts[-1].split("[", 1)[0]]
    path = Path(file) if Path(file).is_absolute() or root is None else root / file
    try:
        tree: ast.AST = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, SyntaxError):
        return None
    node = tree
    for name in names:
        found = next((n for n in getattr(node, "body", ())
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name), None)
        if found is None:
            return None
        node = found
    return node.lineno  # type: ignore[attr-defined,no-any-return]
