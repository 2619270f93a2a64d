"""``tokenspy.session()``: a block whose calls are counted together."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from tokenspy import context
from tokenspy import record as _rows
from tokenspy.record import CallRecord


class Session:
    """A profiling session: every call made inside the block, in any nested function."""

    def __init__(self, name: str = "session") -> None:
        self.name = name
        # its session_id in a row (tokenspy.record: 0 for None, text otherwise)
        self._row_id: str | int = 0 if name is None else name if isinstance(name, str) else str(name)
        self._records: list[Any] = []  # rows and CallRecords, as in Tracker
        self._token: Any = None
        self._lock = threading.Lock()

    # the recorder calls this for each record made while the session is active
    def _add(self, rec: CallRecord | tuple[Any, ...]) -> None:
        self._records.append(rec)

    @property
    def cost(self) -> float:
        _rows.settle()
        return _rows.total_cost(self._records)

    @property
    def cost_str(self) -> str:
        return f"${self.cost:.4f}"

    @property
    def tokens(self) -> int:
        _rows.settle()
        return _rows.total_tokens(self._records)

    @property
    def calls(self) -> int:
        _rows.settle()
        return len(self._records)

    def records(self) -> list[CallRecord]:
        _rows.settle()
        return _rows.as_records(self._records)

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
