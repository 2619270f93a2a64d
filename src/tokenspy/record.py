"""The data types of one billed LLM API call: CallRecord and Usage."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple


class Usage(NamedTuple):
    """Token counts of one call, with the CallRecord semantics (totals include their parts)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0


# A count no provider reports for one call: anything above it comes from a malformed response.
MAX_TOKENS = 10**12
_INTS = frozenset({int})


def _count(value: Any) -> tuple[int, bool]:
    """A token count made sane: (count, whether it had to be changed)."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value, False
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0, value is not None
    if isinstance(value, float) and not math.isfinite(value):
        return 0, True
    n = int(value)
    return min(max(n, 0), MAX_TOKENS), True


def clean_usage(usage: Any) -> tuple[Usage, bool]:
    """``usage`` (a Usage or a tuple in its order, or None) with every count a non-negative int
    no larger than MAX_TOKENS and no part larger than its total; and whether anything changed."""
    if usage is None:
        return Usage(), False
    u = usage if type(usage) is Usage else Usage(*usage)
    tin, tout, cached, write, reasoning, write_1h = u
    # every count an int (not a bool) and none negative; each part within its total
    if _INTS.issuperset(map(type, u)) and min(u) >= 0 and write_1h <= write \
            and cached + write <= tin <= MAX_TOKENS and reasoning <= tout <= MAX_TOKENS:
        return u, False  # what every well-formed response gives
    counts = []
    changed = False
    for value in u:
        n, bad = _count(value)
        counts.append(n)
        changed = changed or bad
    u = Usage(*counts)
    tin = max(u.input_tokens, u.cached_input_tokens + u.cache_write_tokens)
    tout = max(u.output_tokens, u.reasoning_tokens)
    write_1h = min(u.cache_write_1h_tokens, u.cache_write_tokens)
    if (tin, tout, write_1h) != (u.input_tokens, u.output_tokens, u.cache_write_1h_tokens):
        u = u._replace(input_tokens=tin, output_tokens=tout, cache_write_1h_tokens=write_1h)
    return u, changed


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
    # False: cost_usd (0) is not the call's cost: no price is known for the model, or the
    # response reported token counts that are not sane (clamped by clean_usage)
    priced: bool = True
    test_id: str | None = None
    source_file: str | None = None
    source_line: int | None = None
    run_id: str | None = None
    project: str | None = None
    # "response" (the usage the response reported), "request" (counted from the request and the
    # answer with the provider's tokenizer) or "request_approx" (counted by approximation)
    usage_source: str = "response"
    # the request's output ceiling (max_tokens & co.) and the cost had the answer used all of it
    max_output_tokens: int | None = None
    max_cost_usd: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_tokens"] = self.total_tokens
        return d


def as_number(value: object, kind: type[int] | type[float] = float) -> int | float | None:
    """A stored numeric field as ``kind``, or None when it holds no finite number (a
    hand-edited or foreign DB may hold text, blobs or overflowing values)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    if kind is int:
        return min(max(int(number), -MAX_TOKENS), MAX_TOKENS)
    return number


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
