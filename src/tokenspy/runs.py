"""The ``runs`` table: one row per test run, with the state of the code it ran on.

``llm_calls`` only knows the runs that made calls, and only HEAD's SHA; this table also knows
the runs that made none (a suite whose last LLM call was removed is a run of $0, not a missing
one) and whether the work tree had uncommitted changes (``tokenspy.gitstate``). The diff uses it
to tell repeats of one code from runs of different code (``tokenspy.ci.runsel``). DBs written
before it existed, and rows written outside a test run, have no row here: their runs are
derived from ``llm_calls`` (run id and commit, code state unknown).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

TABLE = "runs"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " run_id TEXT PRIMARY KEY NOT NULL,"
    " git_commit TEXT,"
    " dirty INTEGER NOT NULL DEFAULT 0,"
    " fingerprint TEXT NOT NULL DEFAULT '',"
    " started_at REAL NOT NULL,"
    " finished_at REAL,"
    " calls INTEGER NOT NULL DEFAULT 0)"
)


@dataclass(frozen=True)
class Run:
    run_id: str | None
    commit: str | None
    dirty: bool | None  # None: not recorded (derived from llm_calls)
    fingerprint: str | None  # None: not recorded
    started_at: float | None
    calls: int

    @property
    def recorded(self) -> bool:
        return self.dirty is not None

    @property
    def state(self) -> tuple[str | None, str | None]:
        """The code state: runs with equal states are repeats of one code."""
        return (self.commit, self.fingerprint)


def create(conn: sqlite3.Connection) -> None:
    """Create the table if missing; inside the migration's write transaction."""
    conn.execute(CREATE)


def has_table(conn: sqlite3.Connection) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
    return found is not None


def read(conn: sqlite3.Connection) -> dict[str, Run]:
    """The recorded runs of a DB (none for a DB without the table). Only reads."""
    if not has_table(conn):
        return {}
    rows = conn.execute(f"SELECT run_id, git_commit, dirty, fingerprint, started_at, calls FROM {TABLE}").fetchall()
    return {r[0]: Run(r[0], r[1], bool(r[2]), r[3] or "", r[4], r[5] or 0) for r in rows}


def last_call(conn: sqlite3.Connection) -> tuple[str | None, float | None] | None:
    """(run id, timestamp) of the newest ``llm_calls`` row, or None for an empty table: which run
    is the latest when some runs have no row in ``runs``. One b-tree descent."""
    cols = {row[1] for row in conn.execute("PRAGMA table_info(llm_calls)")}
    run = "run_id" if "run_id" in cols else "NULL"
    row = conn.execute(f"SELECT {run}, timestamp FROM llm_calls ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else (row[0], row[1])
