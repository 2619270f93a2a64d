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
MAX_RUN_QUERIES = 256  # more runs than this: group by run_id instead of one query per run


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


def _select(conn: sqlite3.Connection, bucket: str, with_run: bool) -> str:
    col = store.columns_of(conn)

    def c(name: str, default: str) -> str:
        return name if name in col else default

    run = f"{c('run_id', 'NULL')}, " if with_run else ""
    return (
        f"SELECT function_name, {c('test_id', 'NULL')}, model, provider, {run}{bucket}, "
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


_ANY_RUN = object()  # the run is a GROUP BY column, not fixed by the query


@dataclass(frozen=True)
class _Job:
    src: Source
    bucket: str
    run: object = _ANY_RUN  # a run id (or None) the query is restricted to
    id_range: tuple[int, int] | None = None
    extra_where: str = ""
    extra_params: tuple[object, ...] = ()
    filter_run: bool = True  # False: the side has this one run only, no need to filter on it


def _query(job: _Job) -> list[Group]:
    def q(conn: sqlite3.Connection) -> list[Group]:
        conds: list[str] = []
        params: list[object] = []
        if job.src.commit:
            conds.append("git_commit = ?")
            params.append(job.src.commit)
        with_run = job.run is _ANY_RUN
        if not with_run and job.filter_run and "run_id" in store.columns_of(conn):
            if job.run is None:
                conds.append("run_id IS NULL")
            else:
                conds.append("run_id = ?")
                params.append(job.run)
        if job.extra_where:
            conds.append(job.extra_where)
            params.extend(job.extra_params)
        if job.id_range is not None:
            conds.append("id >= ? AND id < ?")
            params.extend(job.id_range)
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        n_keys = 6 if with_run else 5
        sql = f"{_select(conn, job.bucket, with_run)}{where} GROUP BY {', '.join(map(str, range(1, n_keys + 1)))}"
        rows = conn.execute(sql, params).fetchall()
        if with_run:
            return [Group(f, t, m, p, r, b or 0, n, i or 0, c or 0, w or 0, o or 0, x or 0, sf, sl)
                    for f, t, m, p, r, b, n, i, c, w, o, x, sf, sl in rows]
        run = job.run
        return [Group(f, t, m, p, run, b or 0, n, i or 0, c or 0, w or 0, o or 0, x or 0, sf, sl)  # type: ignore[arg-type]
                for f, t, m, p, b, n, i, c, w, o, x, sf, sl in rows]

    return _run(job.src, q)


def _runs(conn: sqlite3.Connection, src: Source, limit: int) -> list[str | None] | None:
    """The side's distinct run ids by skip-scan on the run_id index (one descent per run), or
    None when there are more than ``limit``."""
    if "run_id" not in store.columns_of(conn):
        return [None]
    commit = " AND git_commit = ?" if src.commit else ""
    extra: tuple[object, ...] = (src.commit,) if src.commit else ()
    found: list[str | None] = []
    if conn.execute(f"SELECT 1 FROM llm_calls WHERE run_id IS NULL{commit} LIMIT 1", extra).fetchone():
        found.append(None)
    row = conn.execute(f"SELECT MIN(run_id) FROM llm_calls WHERE run_id IS NOT NULL{commit}", extra).fetchone()
    while row[0] is not None:
        found.append(row[0])
        if len(found) > limit:
            return None
        row = conn.execute(f"SELECT MIN(run_id) FROM llm_calls WHERE run_id > ?{commit}", (row[0], *extra)).fetchone()
    return found


def _id_chunks(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    # MIN/MAX of the rowid are two b-tree descents, not a scan.
    lo, hi = conn.execute("SELECT MIN(id), MAX(id) FROM llm_calls").fetchone()
    if lo is None:
        return []
    n = max(1, -(-(hi - lo + 1) // CHUNK_ROWS))
    step = -(-(hi - lo + 1) // n)
    return [(a, min(a + step, hi + 1)) for a in range(lo, hi + 1, step)]


def _plan(src: Source) -> list[_Job]:
    """How to read one side: one query per run when it has a few runs (the run_id index hands
    each query its rows, and the run drops out of the sort key: ~25% less work than grouping by
    it); rowid chunks otherwise. Chunks keep each sort in memory and let threads share the work."""
    def plan(conn: sqlite3.Connection) -> list[_Job]:
        runs = _runs(conn, src, MAX_RUN_QUERIES)
        if runs is None:
            return [_Job(src, _BUCKET, id_range=r) for r in _id_chunks(conn)]
        if len(runs) == 1:
            return [_Job(src, _BUCKET, run=runs[0], id_range=r, filter_run=False) for r in _id_chunks(conn)]
        return [_Job(src, _BUCKET, run=r) for r in runs]

    return _run(src, plan)


def fetch_all(sources: Sequence[Source]) -> list[list[Group]]:
    """Every source's rows summed per (function, test, model, provider, run, bucket), on a
    thread pool over all sources at once (sqlite3 releases the GIL while it steps)."""
    plans = parallel([lambda s=s: _plan(s) for s in sources])
    jobs = [(i, job) for i, plan in enumerate(plans) for job in plan]
    parts = parallel([lambda job=job: _query(job) for _, job in jobs])
    out: list[list[Group]] = [[] for _ in sources]
    for (i, _), part in zip(jobs, parts, strict=True):
        out[i].extend(part)
    return out


def fetch_tiered(src: Source, model: str | None, provider: str | None, bounds: Sequence[int]) -> list[Group]:
    """One model's rows, with ``bucket`` = its price tier (how many ``bounds`` the call's input
    exceeds): for a model whose tier boundaries are not all in ``SPLITS``."""
    tier = " + ".join(f"(input_tokens > {int(b)})" for b in bounds) or "0"
    return _query(_Job(src, tier, extra_where="model IS ? AND provider IS ?", extra_params=(model, provider)))


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
