"""The default branch's history DB: each push appends its run to the previous baseline's DB.

The artifact a push uploads is the previous artifact's DB plus this run (``tokenspy combine``,
idempotent), cut to the newest ``KEEP`` commits, so that it stays small and the pull requests'
report can show the trend (``tokenspy.ci.trend``). Only ever writes the new file ``out``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenspy import rollup, runs, store

KEEP = 200  # commits of history the artifact carries


def prune(path: str | os.PathLike[str], keep: int = KEEP) -> int:
    """Delete the rows of all but the newest ``keep`` commits (rows without a commit stay);
    returns the number of commits dropped."""
    from tokenspy.ci.trend import commits

    shas = commits(str(path))
    drop = shas[:-keep] if keep > 0 else shas
    if not drop:
        return 0
    conn = store.open_writable(path)
    try:
        with store.transaction(conn):
            conn.execute("CREATE TEMP TABLE tokenspy_drop (sha TEXT PRIMARY KEY)")
            conn.executemany("INSERT INTO tokenspy_drop VALUES (?)", [(s,) for s in drop])
            conn.execute("DELETE FROM llm_calls WHERE git_commit IN (SELECT sha FROM tokenspy_drop)")
            if rollup.mark(conn) is not None:
                conn.execute(f"DELETE FROM {rollup.TABLE} WHERE git_commit IN (SELECT sha FROM tokenspy_drop)")
            if runs.has_table(conn):
                conn.execute(f"DELETE FROM {runs.TABLE} WHERE git_commit IN (SELECT sha FROM tokenspy_drop)")
        conn.execute("VACUUM")
    finally:
        conn.close()
    return len(drop)


def append(previous: str | os.PathLike[str] | None, current: str | os.PathLike[str],
           out: str | os.PathLike[str], keep: int = KEEP) -> Path:
    """``out`` (replaced) = ``previous`` (the last artifact's DB, if any) + ``current``, pruned."""
    from tokenspy.ci.combine import combine

    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    combine(dest, [p for p in (previous, current) if p is not None])
    prune(dest, keep)
    return dest
