"""SQL side of the diff: one GROUP BY per side, never a row loaded into Python.

Each side is read with a single pass grouped by (function, test, model, provider, run), which is
the finest grain any table of the report needs: the by-function, by-test, by-model and per-run
views are roll-ups of those few thousand groups, done in Python (see ``tokenspy.ci.diff``).
One pass instead of one per view is what keeps a 1M-row diff within ~1.x times a bare
two-column GROUP BY. The two sides run on two threads (sqlite3 releases the GIL while stepping).

Columns a DB written by the original tool lacks read as their defaults (``store.select_expr``),
and nothing here ever writes: connections come from ``store.open_readonly``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from tokenspy import store

T = TypeVar("T")


class Group(NamedTuple):
    """Sums over the rows of one (function, test, model, provider, run[, tier]) group."""

    function: str | None
    test: str | None
    model: str | None
    provider: str | None
    run: str | None
    calls: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    max_input: int
    source_file: str | None
    source_line: int | None
    tier: int = 0


@dataclass(frozen=True)
class Source:
    """One side of a diff: a DB file, optionally restricted to the rows of one commit."""

    path: str
    commit: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path}@{self.commit[:12]}" if self.commit else self.path


def _where(src: Source) -> tuple[str, tuple[object, ...]]:
    return ("WHERE git_commit = ?", (src.commit,)) if src.commit else ("", ())


def _select(conn: sqlite3.Connection, extra_key: str = "") -> str:
    col = store.columns_of(conn)

    def c(name: str, default: str) -> str:
        return name if name in col else default

    return (
        f"SELECT function_name, {c('test_id', 'NULL')}, model, provider, {c('run_id', 'NULL')}, "
        f"COUNT(*), SUM(input_tokens), SUM({c('cached_input_tokens', '0')}), "
        f"SUM({c('cache_write_tokens', '0')}), SUM(output_tokens), SUM({c('reasoning_tokens', '0')}), "
        f"MAX(input_tokens), MIN({c('source_file', 'NULL')}), MIN({c('source_line', 'NULL')})"
        f"{extra_key} FROM llm_calls"
    )


def _run(src: Source, fn: Callable[[sqlite3.Connection], T]) -> T:
    with closing(store.open_readonly(src.path)) as conn:
        try:
            return fn(conn)
        except sqlite3.DatabaseError as exc:
            raise store.DBError(f"{src.path}: unreadable ({exc})") from None


def _groups(rows: list[tuple]) -> list[Group]:
    return [
        Group(f, t, m, p, r, n, i or 0, c or 0, w or 0, o or 0, x or 0, mx or 0, sf, sl, *tier)
        for f, t, m, p, r, n, i, c, w, o, x, mx, sf, sl, *tier in rows
    ]


def fetch_groups(src: Source) -> list[Group]:
    """The side's rows summed per (function, test, model, provider, run)."""
    where, params = _where(src)
    return _run(src, lambda conn: _groups(
        conn.execute(f"{_select(conn)} {where} GROUP BY 1, 2, 3, 4, 5", params).fetchall()))


def fetch_tiered(src: Source, model: str | None, provider: str | None, bounds: Sequence[int]) -> list[Group]:
    """Like ``fetch_groups`` for one model only, split by price tier (the number of ``bounds``
    a call's input exceeds): needed only for a tiered model with calls above a boundary."""
    where, params = _where(src)
    cond = "model IS ? AND provider IS ?"
    where = f"{where} AND {cond}" if where else f"WHERE {cond}"
    tier = " + ".join(f"(input_tokens > {int(b)})" for b in bounds) or "0"
    return _run(src, lambda conn: _groups(conn.execute(
        f"{_select(conn, f', {tier}')} {where} GROUP BY 1, 2, 3, 4, 5, 15",
        (*params, model, provider)).fetchall()))


def parallel(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Run the jobs on threads (each opens its own connection); results in order."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 2)) as ex:
        return list(ex.map(lambda job: job(), jobs))


def commits_with_prefix(path: str, prefix: str, limit: int = 3) -> list[str]:
    """Distinct stored commits starting with ``prefix`` (a range on the git_commit index)."""
    src = Source(path)

    def q(conn: sqlite3.Connection) -> list[str]:
        if "git_commit" not in store.columns_of(conn):
            return []
        rows = conn.execute(
            "SELECT DISTINCT git_commit FROM llm_calls WHERE git_commit >= ? AND git_commit < ? LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        ).fetchall()
        return [r[0] for r in rows]

    return _run(src, q)


def count_commit_rows(path: str, commit: str) -> int:
    return _run(Source(path), lambda conn: conn.execute(
        "SELECT COUNT(*) FROM llm_calls WHERE git_commit = ?", (commit,)).fetchone()[0])
