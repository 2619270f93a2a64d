"""CallRecord: one billed LLM API call."""

from __future__ import annotations

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
