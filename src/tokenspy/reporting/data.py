"""The numbers behind every report, aggregated once from records in memory or from a DB.

``ReportData.from_db`` aggregates in SQL (a handful of GROUP BY scans) and brings into Python
only one row per distinct (function, call stack, provider, model, priced) and per distinct
(session, commit): a report of a million calls costs what SQLite needs to scan them, not a
million Python objects. ``ReportData.from_records`` builds the same intermediate groups in
Python, and both then share one derivation, so the two agree for the same calls.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from tokenspy.record import CallRecord, as_number, parse_stack

ROOT_NAME = "all"
UNKNOWN_FUNCTION = "<unknown>"  # same placeholders as store.load_records, so both paths agree
UNKNOWN_PROVIDER = "unknown"
# Deeper stacks keep their outer and inner ends: the middle of a deep recursion says little
# about cost, and renderers recurse once per level.
MAX_STACK_DEPTH = 64
_ELLIPSIS_FRAME = "…"


# --------------------------------------------------------------------------- public rows


@dataclass(frozen=True, slots=True)
class Totals:
    calls: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    duration_ms: float = 0.0
    unpriced_calls: int = 0
    first_timestamp: float | None = None
    last_timestamp: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class FunctionRow:
    name: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_ms: float
    share: float  # of the total cost, 0..1

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ModelRow:
    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    duration_ms: float
    share: float
    unpriced_calls: int  # calls of this model recorded without a known price

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    """A model some calls of which had no known price (those calls count as $0)."""

    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class GroupRow:
    """Calls sharing a session id or a git commit."""

    key: str
    calls: int
    cost_usd: float
    first_timestamp: float | None
    last_timestamp: float | None


@dataclass(frozen=True, slots=True)
class StackNode:
    """A frame of the call-stack tree: ``total`` covers the frame and everything below it."""

    name: str
    calls: int
    self_calls: int
    tokens: int
    self_cost_usd: float
    total_cost_usd: float
    children: tuple[StackNode, ...] = ()

    def walk(self, depth: int = 0) -> Iterator[tuple[int, StackNode]]:
        """Depth-first (node, depth) pairs, this node first."""
        todo: list[tuple[int, StackNode]] = [(depth, self)]
        while todo:
            d, node = todo.pop()
            yield d, node
            todo.extend((d + 1, c) for c in reversed(node.children))


@dataclass(frozen=True, slots=True)
class ReportData:
    totals: Totals
    functions: tuple[FunctionRow, ...]  # most expensive first
    models: tuple[ModelRow, ...]  # most expensive first
    stacks: StackNode  # synthetic root named ROOT_NAME; children sorted by name
    sessions: tuple[GroupRow, ...]  # most recent first
    commits: tuple[GroupRow, ...]  # most recent first
    unpriced: tuple[UnpricedModel, ...]  # most tokens first
    tests: tuple[GroupRow, ...] = ()  # pytest node ids, most expensive first
    # Request mode: the calls whose request set an output ceiling, and what all calls would
    # have cost had each of those answers used its whole ceiling (None: no call had one).
    ceiling: Ceiling | None = None

    @property
    def is_empty(self) -> bool:
        return self.totals.calls == 0

    @classmethod
    def from_records(cls, records: Iterable[CallRecord]) -> ReportData:
        groups: dict[_GroupKey, _Acc] = {}
        pairs: dict[tuple[str | None, str | None], _Acc] = {}
        records = list(records)
        ceiling = _ceiling((r.cost_usd, r.max_cost_usd) for r in records)
        for r in records:
            key = _GroupKey(r.function_name, tuple(r.call_stack), r.provider, r.model, bool(r.priced))
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = _Acc()
            acc.add_record(r)
            pair = (r.session_id, r.git_commit, r.test_id)
            acc = pairs.get(pair)
            if acc is None:
                acc = pairs[pair] = _Acc()
            acc.add_record(r)
        return dataclasses.replace(_build(groups, pairs), ceiling=ceiling)

    @classmethod
    def from_db(cls, path: str | os.PathLike[str], commit: str | None = None) -> ReportData:
        """Aggregate a tokenspy DB in SQL (old schemas too). Never writes or creates a file.
        ``commit``: the rows of that git commit only.

        Raises DBError, one line naming the path, for a missing, non-SQLite or unreadable DB.
        """
        from tokenspy.store import open_readonly

        with closing(open_readonly(path)) as conn:
            cols, max_rowid = _guarded(path, _snapshot, conn)
            ceiling = None
            if "max_cost_usd" in cols:
                where, params = "max_cost_usd IS NOT NULL AND rowid <= ?", (max_rowid,)
                if commit is not None:
                    where, params = where + " AND git_commit = ?", (max_rowid, commit)
                ceiling = _ceiling(_guarded(path, lambda: conn.execute(
                    f"SELECT cost_usd, max_cost_usd FROM llm_calls WHERE {where}", params).fetchall()), total=None)
        # The two passes run on their own connections in parallel (sqlite3 releases the GIL);
        # ``rowid <= max_rowid`` keeps them on the same calls while a writer appends more.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pairs = pool.submit(_guarded_pass, path, _db_pairs, cols, max_rowid, commit)
            groups = _guarded_pass(path, _db_groups, cols, max_rowid, commit)
            data = _build(groups, pairs.result())
        if ceiling is not None:
            ceiling = Ceiling(ceiling.calls, data.totals.cost_usd + ceiling.worst_case_usd)
        return dataclasses.replace(data, ceiling=ceiling)


@dataclass(frozen=True, slots=True)
class Ceiling:
    calls: int  # calls whose request set an output ceiling (max_tokens & co.)
    worst_case_usd: float  # the total cost had each of them used its whole ceiling


def _ceiling(pairs: Iterable[tuple[float, float | None]], total: float | None = 0.0) -> Ceiling | None:
    """From (cost, worst-case cost) pairs: the calls with a ceiling, and the total cost with each
    of those at its worst case. ``total=None``: only the extra over the counted cost (the caller
    adds the total, e.g. from SQL rows that hold only the calls with a ceiling)."""
    calls, extra, cost = 0, 0.0, 0.0
    for counted, worst in pairs:
        cost += counted or 0.0
        if worst is not None:
            calls += 1
            extra += max(worst - (counted or 0.0), 0.0)
    if not calls:
        return None
    return Ceiling(calls, extra if total is None else cost + extra)


def report_data(data_or_records: ReportData | Iterable[CallRecord]) -> ReportData:
    """What the renderers accept: a ReportData as is, or records to aggregate."""
    if isinstance(data_or_records, ReportData):
        return data_or_records
    return ReportData.from_records(data_or_records)


# --------------------------------------------------------------------------- accumulation


class _GroupKey(NamedTuple):
    function: str
    stack: tuple[str, ...]
    provider: str
    model: str
    priced: bool


class _Acc:
    """Running sums of one group of calls."""

    __slots__ = (
        "cache_write",
        "cached",
        "calls",
        "cost",
        "duration",
        "first",
        "input",
        "last",
        "output",
        "reasoning",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.input = self.output = self.cached = self.cache_write = self.reasoning = 0
        self.cost = self.duration = 0.0
        self.first: float | None = None
        self.last: float | None = None

    def add_record(self, r: CallRecord) -> None:
        self.calls += 1
        self.input += r.input_tokens
        self.output += r.output_tokens
        self.cached += r.cached_input_tokens
        self.cache_write += r.cache_write_tokens
        self.reasoning += r.reasoning_tokens
        self.cost += r.cost_usd
        self.duration += r.duration_ms
        self._span(r.timestamp, r.timestamp)

    def merge(self, o: _Acc) -> None:
        self.calls += o.calls
        self.input += o.input
        self.output += o.output
        self.cached += o.cached
        self.cache_write += o.cache_write
        self.reasoning += o.reasoning
        self.cost += o.cost
        self.duration += o.duration
        self._span(o.first, o.last)

    def _span(self, first: float | None, last: float | None) -> None:
        if first is not None and (self.first is None or first < self.first):
            self.first = first
        if last is not None and (self.last is None or last > self.last):
            self.last = last


# --------------------------------------------------------------------------- SQL
#
# GROUP BY in SQLite sorts every row (a 1M-row sort spills to temp files and takes seconds);
# an upsert into a small in-memory temp table keyed by the group is a hash-like aggregation
# that costs one b-tree probe per row. It also adds each group's values in rowid order, the
# order the calls were recorded in, so its float sums equal those of ``from_records``.

_GROUP_KEY_COLUMNS = ("fn", "stack", "provider", "model", "priced")
_PAIR_KEY_COLUMNS = ("session", "git", "test")
_SUM_COLUMNS = ("calls", "inp", "outp", "cached", "cw", "reas", "cost", "dur")
_T = TypeVar("_T")
# NULL cannot be part of a WITHOUT ROWID key; a one-byte BLOB stands for it, as no stored TEXT
# value can ever equal a BLOB.
_NULL_SQL = "x'00'"
_NULL_BLOB = b"\x00"


def _guarded(path: str | os.PathLike[str], fn: Callable[..., _T], *args: object) -> _T:
    from tokenspy.store import DBError

    try:
        return fn(*args)
    except sqlite3.DatabaseError as exc:
        raise DBError(f"{path}: unreadable ({exc})") from None


def _guarded_pass(path: str | os.PathLike[str], fn: Callable[..., _T], *args: object) -> _T:
    from tokenspy.store import open_readonly

    with closing(open_readonly(path)) as conn:
        return _guarded(path, fn, conn, *args)


def _snapshot(conn: sqlite3.Connection) -> tuple[set[str], int]:
    from tokenspy.store import columns_of

    max_rowid = conn.execute("SELECT MAX(rowid) FROM llm_calls").fetchone()[0]
    return columns_of(conn), int(max_rowid or 0)


def _col(cols: set[str], name: str, default: str) -> str:
    """``name`` with NULLs replaced by ``default``; just ``default`` on a DB without that column."""
    return f"COALESCE({name}, {default})" if name in cols else default


def _aggregate(
    conn: sqlite3.Connection, max_rowid: int, keys: tuple[str, ...], key_exprs: list[str],
    value_exprs: list[str], commit: str | None = None,
) -> list[tuple]:
    """Rows of (*key, calls, inp, outp, cached, cw, reas, cost, dur, first, last)."""
    conn.execute("PRAGMA temp_store = MEMORY")  # the temp table must never become a file
    columns = (*keys, *_SUM_COLUMNS, "first", "last")
    conn.execute(
        f"CREATE TEMP TABLE agg ({', '.join(columns)}, PRIMARY KEY ({', '.join(keys)})) WITHOUT ROWID"
    )
    sums = ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUM_COLUMNS)
    conn.execute(
        f"INSERT INTO temp.agg SELECT {', '.join(key_exprs + value_exprs)} "
        "FROM main.llm_calls WHERE rowid <= ? " + ("AND git_commit = ? " if commit is not None else "") +
        # an explicit conflict target: SQLite before 3.35 requires one for DO UPDATE
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sums}, "
        "first = COALESCE(MIN(first, excluded.first), first, excluded.first), "
        "last = COALESCE(MAX(last, excluded.last), last, excluded.last)",
        (max_rowid,) if commit is None else (max_rowid, commit),
    )
    return conn.execute("SELECT * FROM temp.agg").fetchall()


def _value_exprs(cols: set[str], with_tokens: bool) -> list[str]:
    tokens = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
              "reasoning_tokens")
    ts = "timestamp" if "timestamp" in cols else "NULL"
    return [
        "1",
        *(_col(cols, t, "0") if with_tokens else "0" for t in tokens),
        _col(cols, "cost_usd", "0.0"),
        _col(cols, "duration_ms", "0.0") if with_tokens else "0.0",
        ts,
        ts,
    ]


def _db_groups(conn: sqlite3.Connection, cols: set[str], max_rowid: int,
               commit: str | None = None) -> dict[_GroupKey, _Acc]:
    key_exprs = [
        _col(cols, "function_name", repr(UNKNOWN_FUNCTION)),
        _col(cols, "call_stack", _NULL_SQL),
        _col(cols, "provider", repr(UNKNOWN_PROVIDER)),
        _col(cols, "model", "''"),
        f"({_col(cols, 'priced', '1')} != 0)",
    ]
    rows = _aggregate(conn, max_rowid, _GROUP_KEY_COLUMNS, key_exprs, _value_exprs(cols, True), commit)
    parsed: dict[object, tuple[str, ...]] = {}
    groups: dict[_GroupKey, _Acc] = {}
    for fn, stack_raw, provider, model, is_priced, *nums in rows:
        stack = parsed.get(stack_raw)
        if stack is None:
            stack = parsed[stack_raw] = _parse_stack(stack_raw)
        # Two spellings of one stack (JSON whitespace) make one group.
        key = _GroupKey(str(fn), stack, str(provider), str(model), bool(is_priced))
        _merge_into(groups, key, _acc_from_row(nums))
    return groups


def _merge_into(target: dict, key: object, acc: _Acc) -> None:
    # Keys that SQL keeps apart but Python reads alike (5 and '5', two JSON spellings) merge.
    if key in target:
        target[key].merge(acc)
    else:
        target[key] = acc


def _db_pairs(
    conn: sqlite3.Connection, cols: set[str], max_rowid: int, only_commit: str | None = None
) -> dict[tuple[str | None, str | None, str | None], _Acc]:
    # Sessions, commits and tests come from one pass: distinct (session, commit, test) triples
    # are few, as a session rarely spans commits and runs each test once.
    key_exprs = [_col(cols, c, _NULL_SQL) for c in ("session_id", "git_commit", "test_id")]
    rows = _aggregate(conn, max_rowid, _PAIR_KEY_COLUMNS, key_exprs, _value_exprs(cols, False), only_commit)
    pairs: dict[tuple[str | None, str | None, str | None], _Acc] = {}
    for session, commit, test, *nums in rows:
        _merge_into(pairs, (_opt_str(session), _opt_str(commit), _opt_str(test)), _acc_from_row(nums))
    return pairs


def _acc_from_row(nums: list) -> _Acc:
    acc = _Acc()
    # SQL sums of a hand-edited DB may be text or blobs: what is not a number counts as 0
    calls, inp, out, cached, cache_write, reasoning, cost, duration, first, last = nums
    acc.calls = int(as_number(calls, int) or 0)
    acc.input, acc.output = int(as_number(inp, int) or 0), int(as_number(out, int) or 0)
    acc.cached, acc.cache_write, acc.reasoning = (int(as_number(x, int) or 0) for x in (cached, cache_write, reasoning))
    acc.cost, acc.duration = float(as_number(cost) or 0.0), float(as_number(duration) or 0.0)
    acc.first, acc.last = as_number(first), as_number(last)
    return acc


def _opt_str(value: object) -> str | None:
    return None if value is None or value == _NULL_BLOB else str(value)


def _parse_stack(raw: object) -> tuple[str, ...]:
    """A stored call_stack as a tuple (record.parse_stack; a NULL read back as a blob is none)."""
    return () if raw == _NULL_BLOB else parse_stack(raw)


# --------------------------------------------------------------------------- derivation


def _frames(function: str, stack: tuple[str, ...]) -> tuple[str, ...]:
    """The frames of a call, outermost first, always ending in the function that made it."""
    if not stack or stack[-1] != function:
        stack = (*stack, function)
    if len(stack) > MAX_STACK_DEPTH:
        half = MAX_STACK_DEPTH // 2
        stack = (*stack[:half], _ELLIPSIS_FRAME, *stack[-(MAX_STACK_DEPTH - half - 1):])
    return stack


def _sort_key_none_last(value: str | None) -> tuple[bool, str]:
    return (value is None, value or "")


def _cost_order(cost: float, tokens: int, *names: str) -> tuple:
    # Rounded so that sums differing in the last bit (summation order) do not reorder rows.
    return (-round(cost, 12), -tokens, *names)


def _recent_order(row: GroupRow) -> tuple:
    last = row.last_timestamp
    return (last is None, -(last or 0.0), row.key)


def _share(cost: float, total: float) -> float:
    return cost / total if total > 0 else 0.0


def _sum_by(items: Iterable[tuple[object, _Acc]]) -> dict:
    out: dict[object, _Acc] = {}
    for key, acc in items:
        target = out.get(key)
        if target is None:
            target = out[key] = _Acc()
        target.merge(acc)
    return out


def _build(
    groups: dict[_GroupKey, _Acc], pairs: dict[tuple[str | None, str | None, str | None], _Acc]
) -> ReportData:
    # A canonical order makes every float sum below add in the same order for both sources.
    ordered = sorted(groups.items(), key=lambda kv: kv[0])
    total = _Acc()
    unpriced_calls = 0
    for key, acc in ordered:
        total.merge(acc)
        if not key.priced:
            unpriced_calls += acc.calls
    totals = Totals(
        calls=total.calls, cost_usd=total.cost, input_tokens=total.input, output_tokens=total.output,
        cached_input_tokens=total.cached, cache_write_tokens=total.cache_write,
        reasoning_tokens=total.reasoning, duration_ms=total.duration, unpriced_calls=unpriced_calls,
        first_timestamp=total.first, last_timestamp=total.last,
    )
    ordered_pairs = sorted(
        pairs.items(), key=lambda kv: tuple(_sort_key_none_last(k) for k in kv[0])
    )
    return ReportData(
        totals=totals,
        functions=_functions(ordered, total.cost),
        models=_models(ordered, total.cost),
        stacks=_stack_tree(ordered),
        sessions=_group_rows((s, acc) for (s, _c, _t), acc in ordered_pairs),
        commits=_group_rows((c, acc) for (_s, c, _t), acc in ordered_pairs),
        unpriced=_unpriced(ordered),
        tests=tuple(sorted(_group_rows((t, acc) for (_s, _c, t), acc in ordered_pairs),
                           key=lambda r: (-r.cost_usd, -r.calls, r.key))),
    )


def _functions(ordered: list[tuple[_GroupKey, _Acc]], total_cost: float) -> tuple[FunctionRow, ...]:
    rows = [
        FunctionRow(name, a.calls, a.input, a.output, a.cost, a.duration, _share(a.cost, total_cost))
        for name, a in _sum_by((k.function, acc) for k, acc in ordered).items()
    ]
    rows.sort(key=lambda r: _cost_order(r.cost_usd, r.total_tokens, r.name))
    return tuple(rows)


def _models(ordered: list[tuple[_GroupKey, _Acc]], total_cost: float) -> tuple[ModelRow, ...]:
    unpriced = _sum_by(((k.provider, k.model), acc) for k, acc in ordered if not k.priced)
    rows = []
    for (provider, model), a in _sum_by(((k.provider, k.model), acc) for k, acc in ordered).items():
        u = unpriced.get((provider, model))
        rows.append(ModelRow(
            provider, model, a.calls, a.input, a.output, a.cached, a.cache_write, a.reasoning, a.cost,
            a.duration, _share(a.cost, total_cost), u.calls if u else 0,
        ))
    rows.sort(key=lambda r: _cost_order(r.cost_usd, r.total_tokens, r.provider, r.model))
    return tuple(rows)


def _unpriced(ordered: list[tuple[_GroupKey, _Acc]]) -> tuple[UnpricedModel, ...]:
    sums = _sum_by(((k.provider, k.model), acc) for k, acc in ordered if not k.priced)
    rows = [UnpricedModel(p, m, a.calls, a.input, a.output) for (p, m), a in sums.items()]
    rows.sort(key=lambda r: (-(r.input_tokens + r.output_tokens), r.provider, r.model))
    return tuple(rows)


def _group_rows(items: Iterable[tuple[str | None, _Acc]]) -> tuple[GroupRow, ...]:
    sums = _sum_by((k, acc) for k, acc in items if k is not None)
    rows = [GroupRow(str(k), a.calls, a.cost, a.first, a.last) for k, a in sums.items()]
    rows.sort(key=_recent_order)
    return tuple(rows)


class _Frame:
    __slots__ = ("calls", "children", "self_calls", "self_cost", "tokens", "total_cost")

    def __init__(self) -> None:
        self.calls = self.self_calls = self.tokens = 0
        self.self_cost = self.total_cost = 0.0
        self.children: dict[str, _Frame] = {}


def _stack_tree(ordered: list[tuple[_GroupKey, _Acc]]) -> StackNode:
    root = _Frame()
    for key, acc in ordered:
        node = root
        path = [root]
        for name in _frames(key.function, key.stack):
            child = node.children.get(name)
            if child is None:
                child = node.children[name] = _Frame()
            node = child
            path.append(node)
        for frame in path:
            frame.calls += acc.calls
            frame.tokens += acc.input + acc.output
            frame.total_cost += acc.cost
        node.self_calls += acc.calls
        node.self_cost += acc.cost
    return _freeze(ROOT_NAME, root)


def _freeze(name: str, frame: _Frame) -> StackNode:
    # Sorted by name, as flame graphs are: the layout then does not depend on cost rounding.
    children = tuple(_freeze(n, frame.children[n]) for n in sorted(frame.children))
    return StackNode(
        name, frame.calls, frame.self_calls, frame.tokens, frame.self_cost, frame.total_cost, children
    )
