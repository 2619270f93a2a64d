"""SQL side of the diff: GROUP BY in SQLite, never a row loaded into Python.

Each side is read in ONE pass grouped by (function, test, model, provider, run, input-size
bucket), the finest grain any table of the report needs: the by-function, by-test, by-model and
per-run views are roll-ups of those few thousand groups, done in Python (``tokenspy.ci.diff``).
One pass instead of one per view is what keeps a 1M-row diff near a bare two-column GROUP BY.
The pass is cut into rowid ranges that run on a thread pool, both sides at once.

Columns a DB written by the original tool lacks read as their defaults, and nothing here ever
writes: connections come from ``store.open_readonly``.
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


# Input sizes at which some model of the price table changes tier (found with rates.tier_map
# over genai-prices 0.2.3). Each group is split at these sizes, so that a group's calls fall in
# one price tier for every model whose boundaries are among them, i.e. all known models today.
# Only a performance hint: a model with a boundary elsewhere is re-read exactly (fetch_tiered).
SPLITS = (32_000, 100_000, 128_000, 199_999, 200_000, 256_000, 272_000, 512_000)
_BUCKET = (f"CASE WHEN input_tokens <= {SPLITS[0]} THEN 0 ELSE 1"
           + "".join(f" + (input_tokens > {s})" for s in SPLITS[1:]) + " END")
CHUNK_ROWS = 65_536  # rows per query: the sorter then works in memory, and chunks run in parallel


def bucket_range(bucket: int) -> tuple[int, int]:
    """Input sizes of a bucket as (lo, hi]: calls with lo < input_tokens <= hi."""
    lo = -1 if bucket <= 0 else SPLITS[bucket - 1]
    hi = SPLITS[bucket] if bucket < len(SPLITS) else 2**62
    return lo, hi


class Group(NamedTuple):
    """Sums over the rows of one (function, test, model, provider, run, bucket) group.

    ``bucket`` is the ``SPLITS`` bucket of the calls' input size (``fetch_all``) or the
    model's price tier (``fetch_tiered``). One group may come back in several pieces (one per
    chunk of rows); every consumer only adds them up.
    """

    function: str | None
    test: str | None
    model: str | None
    provider: str | None
    run: str | None
    bucket: int
    calls: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    source_file: str | None
    source_line: int | None


@dataclass(frozen=True)
class Source:
    """One side of a diff: a DB file, optionally restricted to the rows of one commit."""

    path: str
    commit: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path}@{self.commit[:12]}" if self.commit else self.path


def _select(conn: sqlite3.Connection, bucket: str) -> str:
    col = store.columns_of(conn)

    def c(name: str, default: str) -> str:
        return name if name in col else default

    return (
        f"SELECT function_name, {c('test_id', 'NULL')}, model, provider, {c('run_id', 'NULL')}, {bucket}, "
        f"COUNT(*), SUM(input_tokens), SUM({c('cached_input_tokens', '0')}), "
        f"SUM({c('cache_write_tokens', '0')}), SUM(output_tokens), SUM({c('reasoning_tokens', '0')}), "
        f"MIN({c('source_file', 'NULL')}), MIN({c('source_line', 'NULL')}) FROM llm_calls"
    )


def _run(src: Source, fn: Callable[[sqlite3.Connection], T]) -> T:
    with closing(store.open_readonly(src.path)) as conn:
        try:
            return fn(conn)
        except sqlite3.DatabaseError as exc:
            raise store.DBError(f"{src.path}: unreadable ({exc})") from None


def _groups(rows: list[tuple]) -> list[Group]:
    return [
        Group(f, t, m, p, r, b or 0, n, i or 0, c or 0, w or 0, o or 0, x or 0, sf, sl)
        for f, t, m, p, r, b, n, i, c, w, o, x, sf, sl in rows
    ]


def _query(src: Source, bucket: str, extra_where: str = "", extra_params: tuple = (),
           id_range: tuple[int, int] | None = None) -> list[Group]:
    conds, params = [], []
    if src.commit:
        conds.append("git_commit = ?")
        params.append(src.commit)
    if extra_where:
        conds.append(extra_where)
        params.extend(extra_params)
    if id_range is not None:
        conds.append("id >= ? AND id < ?")
        params.extend(id_range)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    return _run(src, lambda conn: _groups(
        conn.execute(f"{_select(conn, bucket)}{where} GROUP BY 1, 2, 3, 4, 5, 6", params).fetchall()))


def _id_chunks(src: Source) -> list[tuple[int, int]]:
    # MIN/MAX of the rowid are two b-tree descents, not a scan.
    lo, hi = _run(src, lambda conn: conn.execute("SELECT MIN(id), MAX(id) FROM llm_calls").fetchone())
    if lo is None:
        return []
    n = max(1, -(-(hi - lo + 1) // CHUNK_ROWS))
    step = -(-(hi - lo + 1) // n)
    return [(a, min(a + step, hi + 1)) for a in range(lo, hi + 1, step)]


def fetch_all(sources: Sequence[Source]) -> list[list[Group]]:
    """Every source's rows summed per (function, test, model, provider, run, bucket): chunks of
    rowids of all sources run on a thread pool (sqlite3 releases the GIL while it steps)."""
    chunks = parallel([lambda s=s: _id_chunks(s) for s in sources])
    jobs = [(i, r) for i, ranges in enumerate(chunks) for r in ranges]
    parts = parallel([lambda i=i, r=r: _query(sources[i], _BUCKET, id_range=r) for i, r in jobs])
    out: list[list[Group]] = [[] for _ in sources]
    for (i, _), part in zip(jobs, parts, strict=True):
        out[i].extend(part)
    return out


def fetch_tiered(src: Source, model: str | None, provider: str | None, bounds: Sequence[int]) -> list[Group]:
    """One model's rows, with ``bucket`` = its price tier (how many ``bounds`` the call's input
    exceeds): for a model whose tier boundaries are not all in ``SPLITS``."""
    tier = " + ".join(f"(input_tokens > {int(b)})" for b in bounds) or "0"
    return _query(src, tier, "model IS ? AND provider IS ?", (model, provider))


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
