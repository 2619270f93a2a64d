"""Which DB a command, the pytest plugin or the demo's hints mean when none is named.

One rule everywhere, first match wins:

1. the path given (``--db``, ``--tokenspy=PATH``, ``tokenspy_db`` …);
2. ``$TOKENSPY_DB``;
3. ``.tokenspy/usage.db`` at the top of the git work tree around the current directory: what
   ``pytest --tokenspy`` writes and the action reads. A writer always takes it inside a work
   tree; a reader takes it when it exists (else the next one);
4. ``~/.tokenspy/usage.db``: where ``tokenspy.init(persist=True)`` and ``track_costs`` write.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV = "TOKENSPY_DB"
LOCAL = Path(".tokenspy") / "usage.db"
HOME = Path("~") / ".tokenspy" / "usage.db"


def work_tree(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The top of the git work tree holding ``start`` (default: the cwd): the nearest directory
    with a ``.git`` entry (a directory, or a file in worktrees and submodules). No git process."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / ".git").exists()), None)


def find(explicit: str | os.PathLike[str] | None = None, *, writing: bool = False,
         cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The DB path by the rule above (not checked for being a DB: the caller does that)."""
    if explicit is not None and os.fspath(explicit) != "":
        return Path(explicit).expanduser()
    named = (os.environ if env is None else env).get(ENV, "").strip()
    if named:
        return Path(named).expanduser()
    top = work_tree(cwd)
    if top is not None:
        local = top / LOCAL
        if writing or local.exists():
            return local
    return HOME.expanduser()


def shown(path: Path, cwd: str | os.PathLike[str] | None = None) -> str:
    """``path`` as a user would type it from ``cwd``: relative below it, else as is."""
    try:
        return path.resolve().relative_to(Path(cwd or os.getcwd()).resolve()).as_posix()
    except ValueError:
        return str(path)
