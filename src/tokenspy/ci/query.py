"""SQL side of the diff: GROUP BY in SQLite, never a row loaded into Python.

Each side is read grouped by (function, test, model, provider, run, input-size bucket), the
finest grain any table of the report needs: the by-function, by-test, by-model and per-run views
are roll-ups of those few thousand groups, done in Python (``tokenspy.ci.diff``).

A DB that tokenspy wrote keeps those groups per commit at write time (``tokenspy.rollup``): a
side is then the roll-up's rows plus the raw GROUP BY of the tail of rows not yet rolled up,
whose bounds come from the same read transaction as the roll-up. Any other DB (the original
tool's, an older tokenspy's, or one bucketed with other ``SPLITS``) is read in ONE raw pass,
cut into rowid ranges that run on a thread pool, both sides at once; so is a long tail.

Columns a DB written by the original tool lacks read as their defaults, and nothing here ever
writes: connections come from ``store.open_readonly``.
"""

from __future__ import annotations

import functools
import itertools
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from tokenspy import rollup, store
from tokenspy.record import as_number
from tokenspy.rollup import BUCKET as _BUCKET
from tokenspy.rollup import SPLITS

T = TypeVar("T")

CHUNK_ROWS = 65_536  # rows per query: the sorter then works in memory, and chunks run in parallel
MAX_RUN_CUTS = 256  # beyond this many runs, chunks are cut by size only


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
    commit: str | None = None  # the rows' git commit: with the run, which code state they are of
    usage_source: str = "response"  # where the token counts come from (tokenspy.usage_source)


@dataclass(frozen=True)
class Source:
    """One side of a diff: a DB file, optionally restricted to the rows of one commit, and
    which of its runs to take (``tokenspy.ci.runsel``): one named ``run``, or the latest code
    state (``clean``: preferring runs without uncommitted changes)."""

    path: str
    commit: str | None = None
    run: str | None = None
    clean: bool = False

    @property
    def label(self) -> str:
        label = f"{self.path}@{self.commit[:12]}" if self.commit else self.path
        return f"{label} run {self.run}" if self.run else label


SQL_RESPONSE = "'response'"  # a DB from before request mode: every row was priced from responses


def _select(conn: sqlite3.Connection, bucket: str) -> str:
    col = store.columns_of(conn)

    def c(name: str, default: str) -> str:
        return name if name in col else default

    return (
        f"SELECT function_name, {c('test_id', 'NULL')}, model, provider, {c('run_id', 'NULL')}, {bucket}, "
        f"COUNT(*), {', '.join(rollup.sum_exprs(col))}, "
        f"MIN({c('source_file', 'NULL')}), MIN({c('source_line', 'NULL')}), {c('git_commit', 'NULL')}, "
        f"{c('usage_source', SQL_RESPONSE)} FROM llm_calls"
    )


def _run(src: Source, fn: Callable[[sqlite3.Connection], T]) -> T:
    with closing(store.open_readonly(src.path)) as conn:
        try:
            return fn(conn)
        except sqlite3.DatabaseError as exc:
            raise store.DBError(f"{src.path}: unreadable ({exc})") from None


@dataclass(frozen=True)
class _Job:
    src: Source
    bucket: str
    id_range: tuple[int, int] | None = None  # [lo, hi)
    extra_where: str = ""
    extra_params: tuple[object, ...] = ()


def _groups(rows: Sequence[tuple]) -> list[Group]:
    out = []
    for row in rows:
        if any(type(v) not in _CLEAN for v in row):
            row = _sane(row)  # a hand-edited DB: blobs for names, text for counts
        f, t, m, p, r, b, n, i, c, w, o, x, sf, sl, gc, us = row
        out.append(Group(f, t, m, p, r, b or 0, n, i or 0, c or 0, w or 0, o or 0, x or 0, sf, sl, gc,
                         us or "response"))
    return out


_CLEAN = (str, int, type(None))
_TEXT_FIELDS = (0, 1, 2, 3, 4, 12, 14, 15)  # names, run, source file, commit, usage source; the rest: numbers


def _sane(row: tuple) -> tuple:
    """A group's row with names as text and numbers as ints (what is not a number counts 0)."""
    out = list(row)
    for k, v in enumerate(row):
        if k in _TEXT_FIELDS:
            out[k] = v.decode("utf-8", "replace") if isinstance(v, bytes) else (None if v is None else str(v))
        elif v is not None:
            out[k] = int(as_number(v, int) or 0)
    return tuple(out)


def _group_by(conn: sqlite3.Connection, job: _Job) -> list[Group]:
    conds: list[str] = []
    params: list[object] = []
    if job.src.commit:
        conds.append("git_commit = ?")
        params.append(job.src.commit)
    if job.extra_where:
        conds.append(job.extra_where)
        params.extend(job.extra_params)
    if job.id_range is not None:
        conds.append("id >= ? AND id < ?")
        params.extend(job.id_range)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    sql = f"{_select(conn, job.bucket)}{where} GROUP BY 1, 2, 3, 4, 5, 6, 15, 16"
    return _groups(conn.execute(sql, params).fetchall())


def _query(job: _Job) -> list[Group]:
    return _run(job.src, functools.partial(_group_by, job=job))


_ROLLUP_SELECT = (f"SELECT function_name, test_id, model, provider, run_id, bucket, calls, "
                  f"{', '.join(rollup.SUMS)}, {', '.join(rollup.MINS)}, git_commit, usage_source FROM {rollup.TABLE}")


@dataclass(frozen=True)
class _Plan:
    groups: list[Group]  # read already: the roll-up, and a short tail
    chunks: list[tuple[int, int]]  # rowid ranges [lo, hi) still to GROUP BY


def _plan(conn: sqlite3.Connection, src: Source) -> _Plan:
    """What to read of one side. With a usable roll-up: its rows (of ``src.commit``), and the tail
    above its mark, all in one read transaction; a tail longer than CHUNK_ROWS is left to chunks
    (rows are only appended, so reading ids (mark, max] later reads the same rows). Without
    one: rowid chunks of the whole table."""
    conn.execute("BEGIN")  # a read transaction: one snapshot for the mark, the roll-up and the tail
    try:
        after = rollup.mark(conn)
        if after is None:
            return _Plan([], _chunks(conn))
        where, params = ("WHERE git_commit = ?", (src.commit,)) if src.commit else ("", ())
        groups = _groups(conn.execute(f"{_ROLLUP_SELECT} {where}", params).fetchall())
        hi = conn.execute("SELECT MAX(id) FROM llm_calls").fetchone()[0]
        if hi is None or hi <= after:
            return _Plan(groups, [])
        if hi - after <= CHUNK_ROWS:
            return _Plan(groups + _group_by(conn, _Job(src, _BUCKET, id_range=(after + 1, hi + 1))), [])
        return _Plan(groups, _chunks(conn, after))
    finally:
        conn.rollback()


def _chunks(conn: sqlite3.Connection, after: int | None = None) -> list[tuple[int, int]]:
    """Rowid ranges (above ``after``, if given) of at most ~CHUNK_ROWS rows, cut where the run
    changes when runs were appended one after the other (the usual case): a group then comes back
    in one piece instead of one per chunk, which saves work in Python. Cuts are found by binary search on the rowid
    (a few point reads per run); interleaved runs only make the cuts less useful, never wrong,
    since the run is part of the GROUP BY key."""
    # Two statements: SQLite answers a lone MIN or MAX of the rowid with one b-tree descent, but
    # scans the whole table for both in one SELECT.
    if after is None:
        lo = conn.execute("SELECT MIN(id) FROM llm_calls").fetchone()[0]
    else:
        lo = conn.execute("SELECT MIN(id) FROM llm_calls WHERE id > ?", (after,)).fetchone()[0]
    hi = conn.execute("SELECT MAX(id) FROM llm_calls").fetchone()[0]
    if lo is None:
        return []
    cuts = [lo]
    if "run_id" in store.columns_of(conn):
        def run_at(i: int) -> object:
            row = conn.execute("SELECT run_id FROM llm_calls WHERE id >= ? ORDER BY id LIMIT 1", (i,)).fetchone()
            return row[0] if row else None

        a = lo
        while a <= hi and len(cuts) <= MAX_RUN_CUTS:
            r = run_at(a)
            if run_at(hi) == r:
                break
            left, right = a, hi  # run_at(left) == r != run_at(right)
            while right - left > 1:
                mid = (left + right) // 2
                if run_at(mid) == r:
                    left = mid
                else:
                    right = mid
            cuts.append(right)
            a = right
    cuts.append(hi + 1)
    out = []
    for a, b in itertools.pairwise(cuts):
        n = max(1, -(-(b - a) // CHUNK_ROWS))
        step = -(-(b - a) // n)
        out += [(x, min(x + step, b)) for x in range(a, b, step)]
    return out


def submit_all(sources: Sequence[Source], pool: Executor) -> list[list[Future[list[Group]]]]:
    """Queue every source's chunks on ``pool``, first source first; per source, the futures of
    its groups summed per (function, test, model, provider, run, bucket). sqlite3 releases the
    GIL while it steps, so the caller's thread can meanwhile do Python work."""
    plans = [pool.submit(_run, s, functools.partial(_plan, src=s)) for s in sources]
    out: list[list[Future[list[Group]]]] = []
    for s, future in zip(sources, plans, strict=True):
        plan = future.result()
        done: Future[list[Group]] = Future()
        done.set_result(plan.groups)
        out.append([done, *(pool.submit(_query, _Job(s, _BUCKET, id_range=r)) for r in plan.chunks)])
    return out


def fetch_all(sources: Sequence[Source]) -> list[list[Group]]:
    """``submit_all`` and wait."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return [[g for f in futures for g in f.result()] for futures in submit_all(sources, pool)]


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


def has_commit(path: str, commit: str) -> bool:
    """Whether a commit has rows or a recorded run (one without LLM calls counts)."""
    from tokenspy import runs

    def q(conn: sqlite3.Connection) -> bool:
        if conn.execute("SELECT 1 FROM llm_calls WHERE git_commit = ? LIMIT 1", (commit,)).fetchone():
            return True
        return runs.has_table(conn) and conn.execute(
            f"SELECT 1 FROM {runs.TABLE} WHERE git_commit = ? LIMIT 1", (commit,)).fetchone() is not None

    return _run(Source(path), q)


def run_info(src: Source) -> tuple[dict, tuple[str | None, float | None] | None]:
    """The recorded runs of the source's DB and (run id, timestamp) of its newest row."""
    from tokenspy import runs

    return _run(src, lambda conn: (runs.read(conn), runs.last_call(conn)))
