"""``tokenspy combine``: merge shard DBs (CI matrix jobs, xdist workers) into one.

Idempotent: rows are keyed by ``call_uid`` (UNIQUE) and inserted with ``INSERT OR IGNORE``, so
combining the same shard twice, or a shard that grew since, adds only rows not yet there (and
the roll-up the diff reads, ``tokenspy.rollup``, takes just those, in the same transaction). Rows
of DBs written by the original tool have no ``call_uid``; they get a deterministic one derived
from a hash of the row's content and id, which stays the same however often the shard is read
(a hash of the whole file would change, and duplicate every row, as soon as the shard grows).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from tokenspy import rollup, runs, store

_DEFAULTS = {"cached_input_tokens": "0", "cache_write_tokens": "0", "reasoning_tokens": "0", "priced": "1",
             "usage_source": "'response'"}
_INSERT = (f"INSERT OR IGNORE INTO llm_calls ({', '.join(store.COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in store.COLUMNS)})")
BATCH = 20_000


@dataclass(frozen=True)
class CombineResult:
    added: int
    skipped: int  # rows already present (same call_uid)
    files: int


def legacy_uid(row: Sequence[object]) -> str:
    """Stable uid for a row without one: hash of (id, every column value)."""
    h = hashlib.sha256(repr(tuple(row)).encode("utf-8", "surrogatepass")).hexdigest()
    return f"legacy-{h[:32]}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_target(out: Path) -> None:
    """Refuse an output that is not a tokenspy DB to be: a directory, a file that is not SQLite,
    or an SQLite DB of something else (tokenspy's tables would be written into it). A missing
    or empty file, or a tokenspy DB, is fine. Raises DBError naming it."""
    if not out.exists():
        if out.parent.exists() and not out.parent.is_dir():
            raise store.DBError(f"{out}: {out.parent} is not a directory")
        return
    if out.is_dir():
        raise store.DBError(f"{out}: is a directory, not a database file")
    if out.stat().st_size == 0:
        return
    store.check_db_path(out)  # SQLite at all
    with closing(sqlite3.connect(out.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise store.DBError(f"{out}: unreadable SQLite database ({exc})") from None
    if tables and "llm_calls" not in tables:
        raise store.DBError(f"{out}: an SQLite database without tokenspy's tables; refusing to write into it")


def combine(out_db: str | os.PathLike[str], in_dbs: Sequence[str | os.PathLike[str]]) -> CombineResult:
    """Copy every row of ``in_dbs`` into ``out_db`` (created 0600 if missing). Inputs are only
    read; the whole merge is one transaction. Recorded runs (``tokenspy.runs``) come along."""
    out = Path(out_db).expanduser()
    check_target(out)
    inputs = [store.check_db_path(p) for p in in_dbs]
    for p in inputs:
        if _same_file(p, out):
            raise store.DBError(f"{p}: is the output database itself")
    for p in inputs:  # fail on a bad input before creating or touching the output
        store.open_readonly(p).close()
    created = not out.exists()
    try:
        return _merge(out, inputs)
    except BaseException as exc:
        if created:  # a failed combine leaves no partial output (an existing one is rolled back)
            for leftover in (out, Path(f"{out}-wal"), Path(f"{out}-shm")):
                leftover.unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):
            raise store.DBError(f"{out}: cannot write ({exc})") from None
        raise


def _merge(out: Path, inputs: Sequence[Path]) -> CombineResult:
    conn = store.open_writable(out)
    added = seen = 0
    try:
        with store.transaction(conn):
            # The recording DBs skip this index to keep writes cheap; the combined one needs it
            # for INSERT OR IGNORE to see duplicates.
            conn.execute(store.UID_INDEX)
            for p in inputs:
                with closing(store.open_readonly(p)) as src:
                    have = store.columns_of(src)
                    cols = [c if c in have else _DEFAULTS.get(c, "NULL") for c in store.COLUMNS]
                    cur = src.execute(f"SELECT id, {', '.join(cols)} FROM llm_calls ORDER BY id")
                    while True:
                        batch = cur.fetchmany(BATCH)
                        if not batch:
                            break
                        rows = [(*r[1:-1], r[-1] if r[-1] is not None else legacy_uid(r)) for r in batch]
                        before = conn.total_changes
                        conn.executemany(_INSERT, rows)
                        added += conn.total_changes - before
                        seen += len(rows)
                    _copy_runs(src, conn)
            rollup.roll_up(conn)
    finally:
        conn.close()
    return CombineResult(added, seen - added, len(inputs))


def _copy_runs(src: sqlite3.Connection, conn: sqlite3.Connection) -> None:
    """The input's recorded runs; a run both have (shards of one CI run) keeps the larger count."""
    for r in runs.read(src).values():
        conn.execute(
            f"INSERT INTO {runs.TABLE} (run_id, git_commit, dirty, fingerprint, started_at, calls)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET calls = MAX(calls, excluded.calls),"
            " started_at = MIN(started_at, excluded.started_at)",
            (r.run_id, r.commit, int(bool(r.dirty)), r.fingerprint or "", r.started_at or 0.0, r.calls),
        )
