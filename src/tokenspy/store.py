"""SQLite persistence: versioned schema, a batched background writer, read-only readers.

Writes never happen on the caller's thread: ``Store.add`` appends to a queue (a deque, or the
C ``Rows``, which keeps the common row as its values) and a writer thread inserts in batches (one
transaction each), so an intercepted call pays well under a microsecond for persistence. Several
processes may write one file at once (WAL, busy timeout, BEGIN IMMEDIATE). Writers also roll
their rows up for ``tokenspy diff`` (``tokenspy.rollup``) in the transaction of their inserts:
``write_records`` every time, the background writer every ROLLUP_EVERY rows and at close.
Readers open the file so that it is never written or created (see ``open_readonly``).
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import sqlite3
import threading
import time
import uuid
import warnings
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from tokenspy import context as _context
from tokenspy import record as _record
from tokenspy import rollup
from tokenspy.errors import TokenspyWarning
from tokenspy.record import ROW_NULLABLE, CallRecord, row_of

SCHEMA_VERSION = 5
SQLITE_MAGIC = b"SQLite format 3\x00"

# Columns of seed 003 first (the original tool's table), then ours. Order matters: it is the
# INSERT order of ``_row``.
SEED_COLUMNS = (
    "function_name", "call_stack", "model", "provider", "input_tokens", "output_tokens", "cost_usd",
    "duration_ms", "timestamp", "session_id", "git_commit",
)
EXTRA_COLUMNS: dict[str, str] = {
    "cached_input_tokens": "INTEGER NOT NULL DEFAULT 0",
    "cache_write_tokens": "INTEGER NOT NULL DEFAULT 0",
    "reasoning_tokens": "INTEGER NOT NULL DEFAULT 0",
    "priced": "INTEGER NOT NULL DEFAULT 1",
    "test_id": "TEXT",
    "source_file": "TEXT",
    "source_line": "INTEGER",
    "run_id": "TEXT",
    "project": "TEXT",
    # process-unique id of the row: makes `tokenspy combine` idempotent
    "call_uid": "TEXT",
}
COLUMNS = SEED_COLUMNS + tuple(EXTRA_COLUMNS)

_CREATE = """
CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    function_name TEXT,
    call_stack TEXT,
    model TEXT,
    provider TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    duration_ms REAL,
    timestamp REAL,
    session_id TEXT,
    git_commit TEXT
)
"""
# Each index costs write throughput on the hot table: only compare_commits' filter gets one.
# (`tokenspy combine` indexes call_uid in the DB it writes; budgets keep their own small table.)
_INDEXES = ("CREATE INDEX IF NOT EXISTS llm_calls_commit ON llm_calls(git_commit)",)
UID_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS llm_calls_uid ON llm_calls(call_uid)"
# The writer's INSERT takes rows (tokenspy.record) as they are: their fields in CallRecord order,
# the call stack already JSON text, ``priced`` already 0/1. sqlite3 binds only exact
# int/float/str/bytes directly; a bool would take its adaptation path (see
# _bind_without_adaptation for None). The uid is made by SQLite from a per-process prefix (a
# literal of the statement) and a sequence number: one parameter a statement, ``?1``, plus the
# row's place in it, so the parameters of a batch are its rows' fields in a row, with no per-row
# work in Python while the writer holds the GIL (see also _insert_uniform).
_ROW_COLUMNS = (
    "function_name", "model", "provider", "input_tokens", "output_tokens", "cost_usd",
    "duration_ms", "timestamp", "session_id", "git_commit", "call_stack", "cached_input_tokens",
    "cache_write_tokens", "reasoning_tokens", "priced", "test_id", "source_file", "source_line",
    "run_id", "project",
)
_ROW_SQL = ", ".join("NULLIF(?, 0)" if i in ROW_NULLABLE else "?" for i in range(len(_ROW_COLUMNS)))
# Rows go in several to a statement: sqlite3 releases the GIL around each step of a statement,
# and a thread that wants the GIL back waits for the switch interval (5 ms) while the threads
# making LLM calls hold it. One row per statement (executemany) made the writer take ~1 s and
# ~1,400 GIL hand-offs to write one second of calls through the SDK; 1,024 rows a statement make
# a few. Chunks are powers of two, so that a handful of statements are ever prepared.
_CHUNK = 1024
_WIDTH = len(_ROW_COLUMNS)  # fields of a row
_STATEMENT_SIZES = frozenset(1 << i for i in range(_CHUNK.bit_length()))


def _bind_without_adaptation() -> None:
    """Let sqlite3 bind None and bool through its adapter registry instead of its fallback.

    sqlite3 binds only exact int/float/str/bytearray directly; anything else, None included,
    goes through adaptation, whose fallback looks up ``__adapt__`` on the PrepareProtocol class
    and formats an AttributeError message for every value (callgrind: ~3,500 instructions per
    None, and a record has 3-5 Nones). A registered adapter is found first. These two bind
    exactly as the fallback does (None as NULL, a bool as 0/1), so no user of sqlite3 in this
    process can tell, and an adapter the application registered for these types is kept.
    """
    proto = sqlite3.PrepareProtocol
    for typ, adapt in ((type(None), {}.get), (bool, int)):
        if (typ, proto) not in sqlite3.adapters:
            sqlite3.register_adapter(typ, adapt)


_bind_without_adaptation()
_insert_sql: dict[tuple[str, int], str] = {}


def _insert(rows: int) -> str:
    """The INSERT of ``rows`` rows; parameter 1 is the sequence number of the first one."""
    key = (_PROCESS_UID, rows)
    try:
        return _insert_sql[key]
    except KeyError:
        pass
    # The ``?1`` comes first in each row: a bare ``?`` numbers itself one above the largest
    # number used so far, so the bare ones take 2, 3, ... in the order of the rows.
    values = ", ".join(f"('{_PROCESS_UID}-' || (?1 + {i}), {_ROW_SQL})" for i in range(rows))
    sql = _insert_sql[key] = (
        f"INSERT INTO llm_calls (call_uid, {', '.join(_ROW_COLUMNS)}) VALUES {values}"
    )
    return sql


# A batch of one call site (tokenspy._speedups.Rows.take_uniform): the fields its rows share are
# parameters 2-8, bound once a statement, and each row binds its eight numbers. Binding is done
# by the writer holding the GIL, ~65 ns a string (SQLite copies it under its mutex): about half of
# the writer's GIL time goes to the strings and constants every row of such a batch repeats.
_SHARED = ("function_name", "model", "provider", "call_stack", "source_file", "source_line", "run_id")
_NUMBERS = ("input_tokens", "output_tokens", "cost_usd", "duration_ms", "timestamp",
            "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
_CONSTANT = {"session_id": "NULL", "git_commit": "NULL", "priced": "1", "test_id": "NULL", "project": "NULL"}
_insert_uniform_sql: dict[tuple[str, int], str] = {}


def _insert_uniform(rows: int) -> str:
    """The INSERT of ``rows`` rows of a uniform batch (see above); every parameter numbered."""
    key = (_PROCESS_UID, rows)
    try:
        return _insert_uniform_sql[key]
    except KeyError:
        pass
    values = []
    for i in range(rows):
        base = 1 + len(_SHARED) + i * len(_NUMBERS)
        field = {name: f"?{2 + k}" for k, name in enumerate(_SHARED)}
        field.update({name: f"?{base + 1 + k}" for k, name in enumerate(_NUMBERS)})
        field.update(_CONSTANT)
        values.append(f"('{_PROCESS_UID}-' || (?1 + {i}), " + ", ".join(field[c] for c in _ROW_COLUMNS) + ")")
    sql = _insert_uniform_sql[key] = (
        f"INSERT INTO llm_calls (call_uid, {', '.join(_ROW_COLUMNS)}) VALUES {', '.join(values)}"
    )
    return sql


class _Batch(NamedTuple):
    """Rows taken from a queue: ``values`` their fields row after row (``shared`` None), or for a
    uniform batch the fields they share and their numbers row after row."""

    rows: int
    values: list[object]
    shared: tuple[object, ...] | None = None

    def chunk(self, start: int, n: int) -> tuple[str, list[object]]:
        """The statement and parameters inserting rows ``start`` to ``start + n``."""
        if self.shared is None:
            params: list[object] = [_take_uids(n)]
            params += self.values[start * _WIDTH:(start + n) * _WIDTH]
            return _insert(n), params
        width = len(_NUMBERS)
        params = [_take_uids(n), *self.shared]
        params += self.values[start * width:(start + n) * width]
        return _insert_uniform(n), params

    def as_rows(self) -> list[tuple[object, ...]]:
        """The rows again (tokenspy.record), to queue them anew."""
        if self.shared is None:
            return [tuple(self.values[i:i + _WIDTH]) for i in range(0, len(self.values), _WIDTH)]
        name, model, provider, stack, source, line, run_id = self.shared
        width = len(_NUMBERS)
        out = []
        for i in range(0, len(self.values), width):
            tin, tout, cost, dur, ts, cached, write, reasoning = self.values[i:i + width]
            out.append((name, model, provider, tin, tout, cost, dur, ts, 0, 0, stack, cached, write, reasoning,
                        1, 0, source, line, run_id, 0))
        return out


class DBError(Exception):
    """A database path that cannot be used; the message is one line naming the path."""


# --------------------------------------------------------------------------- schema


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(llm_calls)")}


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION. Call inside a write transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    conn.execute(_CREATE)
    have = _columns(conn)
    for name, decl in EXTRA_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE llm_calls ADD COLUMN {name} {decl}")
    for stmt in _INDEXES:
        conn.execute(stmt)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS budget_windows ("
        " project TEXT NOT NULL, started_at REAL NOT NULL)"
    )
    # v3: track_costs' running spend per project and window (tokenspy.toll); budgets read these
    # few rows, never llm_calls
    conn.execute("CREATE INDEX IF NOT EXISTS budget_windows_project ON budget_windows(project, started_at)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS budget_spend ("
        " project TEXT NOT NULL, period TEXT NOT NULL, window_start REAL NOT NULL,"
        " spent_usd REAL NOT NULL DEFAULT 0, calls INTEGER NOT NULL DEFAULT 0,"
        " tokens INTEGER NOT NULL DEFAULT 0, updated_at REAL,"
        " PRIMARY KEY (project, period, window_start)) WITHOUT ROWID"
    )
    # v4: the roll-up the diff reads (tokenspy.rollup); rows already there are rolled up by the
    # next write that rolls up
    rollup.create(conn)
    __import__("tokenspy.runs", fromlist=["create"]).create(conn)  # v5: the runs table (tokenspy.runs)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _create_private(path: Path) -> None:
    """Create the DB file (and its directory) readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


def open_writable(path: str | os.PathLike[str], timeout: float = 10.0) -> sqlite3.Connection:
    """Open (creating 0600 if needed) a DB for writing, migrated to the current schema."""
    p = Path(path).expanduser()
    if not p.exists():
        _create_private(p)
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        conn = sqlite3.connect(str(p), timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            with transaction(conn):
                _migrate(conn)
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            # Switching a new file to WAL fails at once (no busy wait) when several processes
            # open it together: back off and try again until the timeout.
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        except BaseException:
            conn.close()
            raise


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT: takes the write lock up front so concurrent writers queue."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --------------------------------------------------------------------------- reading


def check_db_path(path: str | os.PathLike[str]) -> Path:
    """Validate a DB path for reading; raise DBError naming it."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DBError(f"{p}: no such database file")
    if not p.is_file():
        raise DBError(f"{p}: not a file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise DBError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if head != SQLITE_MAGIC:
        raise DBError(f"{p}: not a SQLite database")
    return p


def open_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open an existing tokenspy DB without ever writing or creating a file.

    A DB with no live writer (no -wal/-journal beside it) is opened ``immutable``: SQLite then
    takes no locks and creates no -shm file. With a writer present, ``mode=ro`` reads the WAL.
    """
    p = check_db_path(path)
    live = any(Path(str(p) + sfx).exists() for sfx in ("-wal", "-journal"))
    uri = p.resolve().as_uri() + ("?mode=ro" if live else "?mode=ro&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise DBError(f"{p}: unreadable SQLite database ({exc})") from None
    if "llm_calls" not in names:
        conn.close()
        raise DBError(f"{p}: no llm_calls table (not a tokenspy database)")
    return conn


def columns_of(conn: sqlite3.Connection) -> set[str]:
    return _columns(conn)


def select_expr(conn: sqlite3.Connection, column: str, default: str = "NULL") -> str:
    """``column`` if the (possibly older-schema) table has it, else a literal default."""
    return column if column in _columns(conn) else default


def _record_from_row(row: sqlite3.Row) -> CallRecord:
    keys = row.keys()

    def get(name: str, default=None):
        return row[name] if name in keys and row[name] is not None else default

    stack_raw = get("call_stack")
    try:
        stack = json.loads(stack_raw) if stack_raw else []
    except ValueError:
        stack = [str(stack_raw)]
    return CallRecord(
        function_name=get("function_name", "<unknown>"),
        model=get("model", ""),
        provider=get("provider", "unknown"),
        input_tokens=int(get("input_tokens", 0)),
        output_tokens=int(get("output_tokens", 0)),
        cost_usd=float(get("cost_usd", 0.0)),
        duration_ms=float(get("duration_ms", 0.0)),
        timestamp=float(get("timestamp", 0.0)),
        session_id=get("session_id"),
        git_commit=get("git_commit"),
        call_stack=list(stack) if isinstance(stack, list) else [str(stack)],
        cached_input_tokens=int(get("cached_input_tokens", 0)),
        cache_write_tokens=int(get("cache_write_tokens", 0)),
        reasoning_tokens=int(get("reasoning_tokens", 0)),
        priced=bool(get("priced", 1)),
        test_id=get("test_id"),
        source_file=get("source_file"),
        source_line=get("source_line"),
        run_id=get("run_id"),
        project=get("project"),
    )


def load_records(
    path: str | os.PathLike[str], limit: int | None = None, newest_first: bool = False
) -> list[CallRecord]:
    """Records of a DB (oldest first, or newest first with a limit)."""
    with closing(open_readonly(path)) as conn:
        conn.row_factory = sqlite3.Row
        sql = "SELECT * FROM llm_calls ORDER BY id" + (" DESC" if newest_first else "")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_record_from_row(r) for r in conn.execute(sql)]


# --------------------------------------------------------------------------- writing

_PROCESS_UID = uuid.uuid4().hex[:16]  # hex only: it is spelled into the INSERT statements
_seq = 0
_seq_lock = threading.Lock()


def _take_uids(n: int) -> int:
    """The first of ``n`` sequence numbers reserved for rows of this process."""
    global _seq
    with _seq_lock:
        first = _seq
        _seq += n
    return first


def _rows(records: Iterable[CallRecord | tuple[object, ...]]) -> list[tuple[object, ...]]:
    return [r if type(r) is tuple else row_of(r) for r in records]  # type: ignore[misc]


def _insert_all(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    """Insert ``rows`` (tokenspy.record rows); call inside a transaction."""
    _insert_batch(conn, _Batch(len(rows), list(_chain(rows))))


def _insert_batch(conn: sqlite3.Connection, batch: _Batch) -> None:
    """Insert a batch in statements of a power of two rows; call inside a transaction."""
    start, end = 0, batch.rows
    while start < end:
        n = min(end - start, _CHUNK)
        n = 1 << (n.bit_length() - 1)  # the largest power of two not above
        _insert_chunk(conn, batch, start, n)
        start += n


def _insert_chunk(conn: sqlite3.Connection, batch: _Batch, start: int, n: int) -> None:
    conn.execute(*batch.chunk(start, n))


_chain = itertools.chain.from_iterable


def write_records(path: str | os.PathLike[str], records: Iterable[CallRecord]) -> int:
    """Synchronously insert records and roll them up (one transaction); returns how many were
    written."""
    conn = open_writable(path)
    try:
        rows = _rows(records)
        with transaction(conn):
            _insert_all(conn, rows)
            rollup.roll_up(conn)
        return len(rows)
    finally:
        conn.close()


_live_stores: weakref.WeakSet[Store] = weakref.WeakSet()
_RETRYABLE = ("locked", "busy")
WRITE_TIMEOUT = 10.0  # seconds a batch waits for another writer's lock before retrying later
MAX_PENDING = 1_000_000  # beyond this, a DB that stays locked costs records, not memory
# Rows a Store writes between two roll-ups (tokenspy.rollup); it also rolls up at close. A
# roll-up is one GROUP BY of the new rows folded into the roll-up table, run by SQLite with the
# GIL released, about 1 µs a row on the writer thread plus a fixed part that batches of this
# size make negligible. Rows not rolled up yet are read raw by the diff, so nothing depends on it.
ROLLUP_EVERY = 8192


def _new_queue() -> Any:
    """A deque of rows, or where tokenspy._speedups is built its Rows, which keeps the common row
    as its values and makes the row again when the writer takes it (see there why)."""
    rows = getattr(_context.speedups, "Rows", None)
    return rows() if rows is not None else deque()


def _take(q: Any, n: int) -> _Batch:
    """The first ``n`` queued rows, removed: as a uniform batch when they are one, else as their
    fields row after row (no tuple made again for a row the Rows kept as its values)."""
    if type(q) is deque:
        pop = q.popleft
        rows = [pop() for _ in range(n)]
        return _Batch(len(rows), list(_chain(rows)))
    uniform = q.take_uniform(n)
    if uniform is not None:
        shared, values = uniform
        return _Batch(len(values) // len(_NUMBERS), values, shared)
    values = q.take_flat(n)
    return _Batch(len(values) // _WIDTH, values)


def _put_back(q: Any, batch: _Batch) -> None:
    """Queue again, in front and in order, the rows ``_take`` took (a write to retry)."""
    rows = batch.as_rows()
    if type(q) is deque:
        q.extendleft(reversed(rows))
    else:
        q.put_back(rows)


class Store:
    """A DB file fed by a background writer thread."""

    # One transaction a second: frequent small commits cost the calling threads more (measured:
    # +4.9 % vs +1.9 % per call through the SDK) than the records they would save in a crash.
    interval = 1.0  # seconds between batches; stats(), reset(), flush() and exit write at once
    wake_at = 4096  # queued records that wake the writer early

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._queue: Any = _new_queue()  # rows (tokenspy.record)
        self._lock = threading.Lock()  # serializes use of the connection
        self._wake = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # set: the writer thread returns (see close)
        self._broken = False
        self._warned: set[str] = set()
        self._unrolled = 0  # rows written since this Store last rolled up
        self._left = 0  # rows the last timer flush left queued
        _live_stores.add(self)

    # hot path -----------------------------------------------------------------
    def add(self, rec: CallRecord | tuple[object, ...]) -> None:
        """Queue a CallRecord or a row (tokenspy.record) for the writer."""
        # recorder.finish inlines this for a Tracker's store (with a row): keep them in step
        q = self._queue
        q.append(rec if type(rec) is tuple else row_of(rec))  # type: ignore[arg-type]
        if self._thread is None:
            self._start()
        elif len(q) >= self.wake_at:
            self._wake.set()

    # writer ---------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                stop = threading.Event()
                t = threading.Thread(target=self._run, args=(stop,), name="tokenspy-writer", daemon=True)
                self._thread, self._stop = t, stop
                t.start()

    def _run(self, stop: threading.Event) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if stop.is_set():  # closed (stop is set before the wake)
                return
            _record.settle()  # calls the recorder deferred reach the queue within a tick too
            if self._queue:
                self._flush(final=False, periodic=True)

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, TokenspyWarning, stacklevel=2)

    def flush(self) -> None:
        """Write everything queued so far. Never raises: problems warn once."""
        _record.settle()
        self._flush(final=False)

    def _flush(self, final: bool, periodic: bool = False) -> None:
        """Write the queue; roll up in the same transaction once ROLLUP_EVERY rows were written
        since the last roll-up, and always when ``final`` (close).

        ``periodic`` (the writer's timer): write whole statements only, at most one partial
        one (see ``_periodic_count``); what is left goes with the next batch. Every SQLite call
        the writer makes hands the GIL back and forth with the threads making LLM calls, and on
        a VM each hand-off costs them ~1 ms: measured through the SDK, a flush cost the callers
        as much as ~2,000 rows did (flushing every 0.2 s instead of 1 s: +6.9 % instead of
        +1.3 % per call). So a batch is one statement whenever possible, in autocommit."""
        with self._lock:
            q = self._queue
            if not q and not (final and self._unrolled):
                return
            if self._broken:
                q.clear()
                return
            n = len(q)
            if periodic:
                n = self._periodic_count(n)
            batch = _take(q, n)
            rows = batch.rows
            try:
                if self._conn is None:
                    self._conn = open_writable(self.path, WRITE_TIMEOUT)
                roll = final or self._unrolled + rows >= ROLLUP_EVERY
                if not roll and rows in _STATEMENT_SIZES:
                    _insert_chunk(self._conn, batch, 0, rows)  # its own transaction
                else:
                    with transaction(self._conn):
                        _insert_batch(self._conn, batch)
                        if roll:
                            rollup.roll_up(self._conn)
                self._unrolled = 0 if roll else self._unrolled + rows
            except (sqlite3.Error, OSError) as exc:
                text = str(exc)
                if isinstance(exc, sqlite3.OperationalError) and any(w in text for w in _RETRYABLE):
                    if len(q) + rows <= MAX_PENDING:
                        _put_back(q, batch)
                    self._warn("locked", f"tokenspy: {self.path} is locked ({text}); will retry")
                else:
                    self._broken = True
                    q.clear()
                    self._close_conn()
                    self._warn(
                        "broken",
                        f"tokenspy: cannot write to {self.path} ({text}); "
                        "calls are kept in memory only",
                    )

    def _periodic_count(self, n: int) -> int:
        """How many of ``n`` queued rows the timer writes: whole _CHUNK statements and the
        largest power of two of the rest, i.e. at most one statement that is not full-size; the
        rest (less than half of what was left) waits for the next tick. A queue that did not grow
        since the last tick (the app went quiet) is written whole."""
        if n <= self._left:
            self._left = 0
            return n
        full = n - n % _CHUNK
        rest = n - full
        take = full + (1 << (rest.bit_length() - 1) if rest else 0)
        self._left = n - take
        return take

    def _close_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def close(self) -> None:
        """Write the queue, roll up what this Store left unrolled, close the connection, end the
        writer thread (a Store used again starts another)."""
        _record.settle()
        self._stop_writer()
        _record.targets_changed()  # later calls go to Store.add, which starts another writer
        self._flush(final=True)
        with self._lock:
            self._close_conn()

    def _stop_writer(self) -> None:
        # without this, the thread of every Store ever closed (each init() closes the last one)
        # would wake every tick for the life of the process
        with self._lock:  # this thread's own stop: an add() right after may start the next one
            t, stop, self._thread = self._thread, self._stop, None
        if t is None:
            return
        stop.set()
        self._wake.set()
        if t is not threading.current_thread():
            t.join(timeout=10)

    def _after_fork(self) -> None:
        # The parent's connection and writer thread do not exist in a forked child.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._conn = None
        self._thread = None
        self._queue = _new_queue()
        self._unrolled = 0
        self._left = 0


def flush_all() -> None:
    for store in list(_live_stores):  # Store.flush books deferred calls first
        store.flush()


def _close_all() -> None:
    try:
        _record.settle()
    except Exception:
        pass
    for store in list(_live_stores):
        try:
            store.close()
        except Exception:
            pass


def _reinit_after_fork() -> None:
    global _PROCESS_UID, _seq, _seq_lock
    _PROCESS_UID = uuid.uuid4().hex[:16]
    _seq = 0
    _seq_lock = threading.Lock()
    for store in list(_live_stores):
        store._after_fork()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
