"""``tokenspy.session()``: a block whose calls are counted together."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from tokenspy import context
from tokenspy.record import CallRecord


class Session:
    """A profiling session: every call made inside the block, in any nested function."""

    def __init__(self, name: str = "session") -> None:
        self.name = name
        # the session_id of its records
        self.id: str | None = None if name is None else name if isinstance(name, str) else str(name)
        self._records: list[CallRecord] = []
        self._token: Any = None
        self._lock = threading.Lock()

    # the recorder calls this for each record made while the session is active
    def _add(self, rec: CallRecord) -> None:
        self._records.append(rec)

    @property
    def cost(self) -> float:
        return sum(r.cost_usd for r in list(self._records))

    @property
    def cost_str(self) -> str:
        return f"${self.cost:.4f}"

    @property
    def tokens(self) -> int:
        return sum(r.input_tokens + r.output_tokens for r in list(self._records))

    @property
    def calls(self) -> int:
        return len(self._records)

    def records(self) -> list[CallRecord]:
        return list(self._records)

    def summary(self) -> dict[str, Any]:
        from tokenspy.tracker import summarize

        return summarize(self.records())

    def __enter__(self) -> Session:
        from tokenspy.interceptor import ensure_active

        ensure_active()
        self._token = context.sessions.set((*context.sessions.get(), self))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        token, self._token = self._token, None
        if token is not None:
            context.sessions.reset(token)

    async def __aenter__(self) -> Session:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<Session {self.name!r} calls={self.calls} cost={self.cost_str}>"


def session(name: str = "session") -> Session:
    """Context manager that profiles all LLM calls within the ``with`` block."""
    return Session(name)
