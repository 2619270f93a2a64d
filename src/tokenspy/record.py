"""CallRecord: one billed LLM API call."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class CallRecord:
    """One intercepted LLM API call.

    Token semantics are the same for every provider: ``input_tokens`` counts every input token
    (cached reads and cache writes included), ``output_tokens`` every output token (reasoning
    included); the ``cached_input_tokens``, ``cache_write_tokens`` and ``reasoning_tokens`` fields
    say how many of those were of that kind.
    """

    function_name: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_ms: float
    timestamp: float
    session_id: str | None = None
    git_commit: str | None = None
    call_stack: list[str] = field(default_factory=list)
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    priced: bool = True
    test_id: str | None = None
    source_file: str | None = None
    source_line: int | None = None
    run_id: str | None = None
    project: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_tokens"] = self.total_tokens
        return d


# --------------------------------------------------------------------------- rows
#
# The recorder keeps each call as a *row*: a plain tuple of the CallRecord fields in field order,
# with ``call_stack`` as its JSON text and ``priced`` as 0/1. A tuple of strings and numbers is
# left alone by the garbage collector once it has seen it (CPython untracks such tuples), while
# a CallRecord and its stack list are traversed by every full collection for as long as the
# tracker keeps them: measured through the OpenAI SDK in a process whose heap grows (full
# collections every ~5,000 calls), retained CallRecords added ~8 µs a call to the collector.
# Rows are also the INSERT parameters of the writer as they are. CallRecords are made from rows
# when someone reads them.

ROW_STACK = 10  # index of the call stack (JSON text) in a row
ROW_COST = 5
ROW_INPUT = 3
ROW_OUTPUT = 4
# The text fields that are mostly absent (session_id, git_commit, test_id, project) hold the int
# 0 in a row where the CallRecord has None: sqlite3 binds an int directly but sends None through
# its adapter lookup (~130 ns each, on the writer thread, holding the GIL), and the INSERT turns
# the 0 back into NULL (``NULLIF(?, 0)``; no text equals the integer 0 in SQLite).
ROW_NULLABLE = (8, 9, 15, 19)

_stack_json: dict[tuple[str, ...], str] = {}
_stack_list: dict[str | None, tuple[str, ...]] = {}
_CACHE_MAX = 65536


def stack_json(names: tuple[str, ...]) -> str:
    """The stored JSON text of a call stack (memoized: a program has few distinct stacks)."""
    try:
        return _stack_json[names]
    except KeyError:
        pass
    text = json.dumps(list(names))
    if len(_stack_json) < _CACHE_MAX:
        _stack_json[names] = text
    return text


def parse_stack(raw: object) -> tuple[str, ...]:
    """A stored call_stack (JSON list) as a tuple of names; anything else is one name (a
    hand-edited or foreign DB may hold anything)."""
    if raw is None or raw == "":
        return ()
    try:
        value = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except (ValueError, RecursionError):
        return (str(raw),)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return (str(value),)


def stack_names(text: str | None) -> list[str]:
    """A row's call stack back as a list of names (memoized, as ``stack_json``)."""
    try:
        return list(_stack_list[text])  # type: ignore[index]
    except KeyError:
        pass
    names = parse_stack(text)
    if len(_stack_list) < _CACHE_MAX:
        _stack_list[text] = names  # type: ignore[index]
    return list(names)


def row_of(rec: CallRecord) -> tuple[Any, ...]:
    """The row of a CallRecord (see above)."""
    return (
        rec.function_name, rec.model, rec.provider, rec.input_tokens, rec.output_tokens,
        rec.cost_usd, rec.duration_ms, rec.timestamp, _zero(rec.session_id), _zero(rec.git_commit),
        stack_json(tuple(rec.call_stack)), rec.cached_input_tokens, rec.cache_write_tokens,
        rec.reasoning_tokens, 1 if rec.priced else 0, _zero(rec.test_id), rec.source_file,
        rec.source_line, rec.run_id, _zero(rec.project),
    )


def _zero(value: Any) -> Any:
    return 0 if value is None else value


def _none(value: Any) -> Any:
    return None if type(value) is int else value


def from_row(row: tuple[Any, ...]) -> CallRecord:
    """A CallRecord made from a row."""
    return CallRecord(
        *row[:8], _none(row[8]), _none(row[9]), stack_names(row[ROW_STACK]), row[11], row[12],
        row[13], bool(row[14]), _none(row[15]), row[16], row[17], row[18], _none(row[19]),
    )


def as_records(items: list[Any]) -> list[CallRecord]:
    """CallRecords of a list holding rows and CallRecords (a snapshot; the list is not changed)."""
    return [from_row(r) if type(r) is tuple else r for r in list(items)]


def total_cost(items: list[Any]) -> float:
    column = getattr(items, "column", None)  # a Rows: the one field, no row made again
    if column is not None:
        return sum(v.cost_usd if type(v) is CallRecord else v for v in column(ROW_COST))
    return sum(r[ROW_COST] if type(r) is tuple else r.cost_usd for r in list(items))


def total_tokens(items: list[Any]) -> int:
    column = getattr(items, "column", None)
    if column is not None:
        return sum(
            a.input_tokens + a.output_tokens if type(a) is CallRecord else a + b
            for a, b in zip(column(ROW_INPUT), column(ROW_OUTPUT), strict=False)  # as long as both
        )
    return sum(
        r[ROW_INPUT] + r[ROW_OUTPUT] if type(r) is tuple else r.input_tokens + r.output_tokens
        for r in list(items)
    )


# --------------------------------------------------------------------------- deferred calls
#
# The recorder books a plain call (no budget, no collector, a model it has priced before) later
# and in batches: ``recorder.finish`` puts the call on ``pending`` and ``recorder.settle`` makes
# its row, prices it and hands it to its tracker, store and sessions. In Python, work done in a
# batch runs several times faster than the same work done between two SDK calls, whose data has
# evicted ours from the CPU caches. (The C request books such a call at once instead, once a
# batch has shown it how: see recorder._publish.) Whoever reads what the recorder wrote calls
# ``settle()`` first.
pending: deque[Any] = deque()
settler: Callable[[], None] | None = None  # recorder.settle, set when the recorder is imported
unpublish: Callable[[], None] | None = None  # recorder._unpublish, likewise


def settle() -> None:
    """Book the calls the recorder deferred, so that a read sees every finished call."""
    if pending and settler is not None:
        settler()


def targets_changed() -> None:
    """A tracker's list of rows or its store was replaced, or a store closed: the recorder stops
    booking into the old ones (see recorder._publish)."""
    if unpublish is not None:
        unpublish()
