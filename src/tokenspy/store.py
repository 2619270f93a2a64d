"""SQLite persistence: versioned schema, a batched background writer, read-only readers.

Writes never happen on the caller's thread: ``Store.add`` appends to a queue and a writer thread
inserts in batches (one transaction each). Several processes may write one file at once (WAL,
busy timeout, BEGIN IMMEDIATE). Writers also roll their rows up for ``tokenspy diff``
(``tokenspy.rollup``) in the transaction of their inserts: ``write_records`` every time, the
background writer every ROLLUP_EVERY rows and at close. Readers open the file so that it is
never written or created (see ``open_readonly``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from tokenspy import rollup, runs
from tokenspy.errors import TokenspyWarning, safe_warn
from tokenspy.gitstate import GitState
from tokenspy.record import CallRecord

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
    # v5: request mode (tokenspy.usage_source); rows from before it were priced from responses
    "usage_source": "TEXT NOT NULL DEFAULT 'response'",
    "max_output_tokens": "INTEGER",
    "max_cost_usd": "REAL",
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
    # v5: the runs table (each test run's git state: tokenspy.runs), and usage_source & co. above
    runs.create(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _create_private(path: Path) -> None:
    """Create the DB file (and its directory) readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


def _refuse_foreign(p: Path, conn: sqlite3.Connection) -> None:
    """Never add tokenspy's tables to somebody else's database (a wrong --db or persist path): an
    existing file must be empty, or a SQLite DB without tables or with llm_calls. Asked of the
    writer's own connection, before it changes anything: opening and closing the file in any
    other way would drop every lock this process's SQLite connections hold on it (POSIX locks
    are per process), and another process could then reset a WAL still being written."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise
        raise DBError(f"{p}: not a usable SQLite database ({exc}); refusing to write into it") from None
    if tables and "llm_calls" not in tables:
        raise DBError(f"{p}: a SQLite database without tokenspy's tables; refusing to write into it")


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
            _refuse_foreign(p, conn)
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
    try:
        p = Path(path).expanduser()
        exists, is_file = p.exists(), p.is_file()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        raise DBError(f"{str(path)[:200]}{'…' if len(str(path)) > 200 else ''}: not a usable path "
                      f"({getattr(exc, 'strerror', None) or exc})") from None
    if not exists:
        raise DBError(f"{p}: no such database file")
    if not is_file:
        raise DBError(f"{p}: not a file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise DBError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if head != SQLITE_MAGIC:
        raise DBError(f"{p}: not a SQLite database")
    return p


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class _Snapshot(sqlite3.Connection):
    """A connection to a private copy of a DB; the copy goes when the connection is closed."""

    snapshot_dir: str | None = None

    def close(self) -> None:
        super().close()
        if self.snapshot_dir is not None:
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)
            self.snapshot_dir = None


def _snapshot_copy(p: Path) -> tuple[str, str]:
    """Copy a DB and its -wal into a private directory: (directory, the copy's path)."""
    d = tempfile.mkdtemp(prefix="tokenspy-read-")
    os.chmod(d, 0o700)
    copy = os.path.join(d, "snapshot.db")
    try:
        # the DB file first, then its WAL: the WAL's frames bring the copy up to the last commit
        shutil.copyfile(p, copy)
        shutil.copyfile(str(p) + "-wal", copy + "-wal")
    except OSError:
        shutil.rmtree(d, ignore_errors=True)
        raise
    return d, copy


def open_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open an existing tokenspy DB without ever writing or creating a file beside it.

    Without a non-empty -wal beside it, the DB is opened ``immutable``: SQLite takes no locks and
    creates no -shm file. With one (a writer is live, or one stopped without a checkpoint),
    reading it in place would make SQLite create or rewrite the -shm file, so the DB and its WAL
    are read from a private copy instead.
    """
    p = check_db_path(path)
    wal = Path(str(p) + "-wal")
    snapshot_dir = None
    try:
        if wal.exists() and wal.stat().st_size > 0:
            snapshot_dir, copy = _snapshot_copy(p)
            conn = sqlite3.connect(Path(copy).as_uri() + "?mode=ro", uri=True, check_same_thread=False,
                                   factory=_Snapshot)
            conn.snapshot_dir = snapshot_dir
        else:
            conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro&immutable=1", uri=True,
                                   check_same_thread=False)
    except OSError as exc:
        raise DBError(f"{p}: cannot read ({exc.strerror or exc})") from None
    conn.text_factory = _lenient_text  # a hand-edited DB's invalid UTF-8 is read, not raised
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        conn.close()
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
        usage_source=get("usage_source", "response"),
        max_output_tokens=get("max_output_tokens"),
        max_cost_usd=get("max_cost_usd"),
    )


record_from_row = _record_from_row  # a CallRecord from a row read with sqlite3.Row (tokenspy.export)


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

_PROCESS_UID = uuid.uuid4().hex[:16]
_seq = 0
_seq_lock = threading.Lock()
# The uid of a row is this process's prefix and a zero-padded sequence number, given in the
# order rows are written, so that the rows one process wrote from a given row on are a range of
# uids (Tracker.records reads them back).
UID_DIGITS = 12


def _take_uids(n: int) -> list[str]:
    """``n`` new process-unique row ids (they make ``tokenspy combine`` idempotent)."""
    global _seq
    with _seq_lock:
        first = _seq + 1
        _seq += n
    return [f"{_PROCESS_UID}-{i:0{UID_DIGITS}d}" for i in range(first, first + n)]


def next_uid() -> str:
    """The uid the next row this process writes will get."""
    with _seq_lock:
        return f"{_PROCESS_UID}-{_seq + 1:0{UID_DIGITS}d}"


def uid_range_end(uid: str) -> str:
    """The upper bound of the uids of this process that follow ``uid``."""
    return uid.rpartition("-")[0] + "-~"  # "~" sorts after every digit


_stack_texts: dict[tuple[str, ...], str] = {}


def _stack_text(stack: list[str]) -> str:
    """The stored JSON of a call stack (a program has few distinct stacks: memoized, bounded)."""
    key = tuple(stack)
    text = _stack_texts.get(key)
    if text is None:
        text = json.dumps(stack)
        if len(_stack_texts) >= 4096:
            _stack_texts.clear()
        _stack_texts[key] = text
    return text


def _params(uid: str, r: CallRecord) -> tuple[object, ...]:
    return (uid, r.function_name, _stack_text(r.call_stack), r.model, r.provider, r.input_tokens,
            r.output_tokens, r.cost_usd, r.duration_ms, r.timestamp, r.session_id, r.git_commit,
            r.cached_input_tokens, r.cache_write_tokens, r.reasoning_tokens, 1 if r.priced else 0, r.test_id,
            r.source_file, r.source_line, r.run_id, r.project, r.usage_source, r.max_output_tokens,
            r.max_cost_usd)


# Rows go in up to CHUNK to a statement: sqlite3 hands the GIL back and forth around every step
# of a statement, and while other threads are busy making LLM calls each hand-off waits for the
# interpreter's switch interval (5 ms). One row a statement (executemany) made the writer fall
# seconds behind a busy app; with 256 rows a statement it still fell behind a loop of calls
# that return at once. 1,024 rows is 24,576 parameters, within the limit of every SQLite since
# 3.32 (32,766); an older library's limit (999) is read from the connection (``_chunk``).
CHUNK = 1024
_VALUES = "(" + ", ".join("?" for _ in COLUMNS) + ")"


def _chunk(conn: sqlite3.Connection) -> int:
    """Rows per INSERT statement on this connection: CHUNK, or fewer under a lower limit."""
    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+; before, the version's default
    if getlimit is not None:
        limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    else:
        limit = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
    return max(1, min(CHUNK, limit // len(COLUMNS)))


@functools.lru_cache(maxsize=16)
def _insert_sql(rows: int) -> str:
    return f"INSERT INTO llm_calls (call_uid, {', '.join(COLUMNS[:-1])}) VALUES " + ", ".join([_VALUES] * rows)


def _insert(conn: sqlite3.Connection, records: list[CallRecord]) -> None:
    """Insert records, each with a new uid; call inside a transaction."""
    uids = _take_uids(len(records))
    chunk = _chunk(conn)
    start = 0
    while start < len(records):
        # whole chunks, then the rest in powers of two: a few distinct statements, all cached
        left = len(records) - start
        n = chunk if left >= chunk else 1 << (left.bit_length() - 1)
        params = [x for i in range(start, start + n) for x in _params(uids[i], records[i])]
        conn.execute(_insert_sql(n), params)
        start += n


def write_records(path: str | os.PathLike[str], records: Iterable[CallRecord]) -> int:
    """Synchronously insert records and roll them up (one transaction); returns how many were
    written."""
    records = list(records)
    conn = open_writable(path)
    try:
        with transaction(conn):
            _insert(conn, records)
            rollup.roll_up(conn)
        return len(records)
    finally:
        conn.close()


def write_run(path: str | os.PathLike[str], run_id: str, git: GitState, started_at: float, finished_at: float) -> None:
    """Record a finished run (creating the DB if needed); ``calls`` is counted from ``llm_calls``.
    Writing the same run again (a re-run of the gate) replaces its row."""
    conn = open_writable(path)
    try:
        with transaction(conn):
            calls = conn.execute("SELECT COUNT(*) FROM llm_calls WHERE run_id = ?", (run_id,)).fetchone()[0]
            conn.execute(
                f"INSERT OR REPLACE INTO {runs.TABLE} (run_id, git_commit, dirty, fingerprint, started_at, finished_at,"
                " calls) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, git.commit, int(git.dirty), git.fingerprint, started_at, finished_at, calls),
            )
    finally:
        conn.close()


_live_stores: weakref.WeakSet[Store] = weakref.WeakSet()
_RETRYABLE = ("locked", "busy")
WRITE_TIMEOUT = 10.0  # seconds a batch waits for another writer's lock before retrying later
# Seconds interpreter exit waits for the last rows (a lock held on the DB across exit would
# otherwise hold exit for WRITE_TIMEOUT and more); what is left is counted in a warning.
EXIT_TIMEOUT = 2.0
MAX_PENDING = 1_000_000  # beyond this, a DB that stays locked costs records, not memory
# Rows a Store writes between two roll-ups (tokenspy.rollup); it also rolls up at close. Rows
# not rolled up yet are read raw by the diff, so nothing depends on it but speed.
ROLLUP_EVERY = 8192


class Store:
    """A DB file fed by a background writer thread."""

    interval = 1.0  # seconds between batches; stats(), reset(), flush() and exit write at once
    wake_at = 4096  # queued records that wake the writer early

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._queue: deque[CallRecord] = deque()
        self._lock = threading.Lock()  # serializes use of the connection
        self._wake = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # set: the writer thread returns (see close)
        self._broken = False
        self._warned: set[str] = set()
        self._unrolled = 0  # rows written since this Store last rolled up
        self._inflight = 0  # rows of the batch being written
        self._ident: tuple[int, int] | None = None  # (device, inode) of the file _conn has open
        _live_stores.add(self)

    def add(self, rec: CallRecord) -> None:
        """Queue a record for the writer."""
        q = self._queue
        q.append(rec)  # deque.append is atomic: no lock on the caller's path
        if self._thread is None:
            self._start()
        elif len(q) >= self.wake_at:
            self._wake.set()

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
            if self._queue:
                try:
                    self._flush(final=False)
                except Exception as exc:  # the writer must outlive any surprise: rows keep coming
                    self._warn("writer", f"tokenspy: the DB writer hit {type(exc).__name__}: {exc}")

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            safe_warn(message, TokenspyWarning, stacklevel=2)

    def flush(self) -> None:
        """Write everything queued so far. Never raises: problems warn once."""
        self._flush(final=False)

    def _flush(self, final: bool, deadline: float | None = None) -> None:
        """Write the queue in one transaction; roll up in it once ROLLUP_EVERY rows were written
        since the last roll-up, and always when ``final`` (close). With a ``deadline``
        (``time.monotonic()``, at exit) a lock is waited for until then only, and the rows not
        written are counted in a warning instead of kept."""
        if deadline is None:
            self._lock.acquire()
        elif not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            # the writer thread is stuck on a lock held by another process
            self._lost(len(self._queue) + self._inflight)
            return
        try:
            q = self._queue
            if not q and not (final and self._unrolled):
                return
            if self._broken:
                q.clear()
                return
            pop = q.popleft
            batch = [pop() for _ in range(len(q))]
            self._inflight = len(batch)
            try:
                self._write(batch, final, deadline)
            except (sqlite3.Error, OSError, DBError) as exc:
                text = str(exc)
                if isinstance(exc, sqlite3.OperationalError) and any(w in text for w in _RETRYABLE):
                    if deadline is not None:
                        self._lost(len(batch) + len(q))
                        q.clear()
                        return
                    if len(q) + len(batch) <= MAX_PENDING:
                        q.extendleft(reversed(batch))
                    self._warn("locked", f"tokenspy: {self.path} is locked ({text}); will retry")
                else:
                    self._broken = True
                    q.clear()
                    self._close_conn()
                    self._warn(
                        "broken",
                        f"tokenspy: cannot write to {self.path} ({text}); calls are kept in memory only",
                    )
        finally:
            self._inflight = 0
            self._lock.release()

    def _write(self, batch: list[CallRecord], final: bool, deadline: float | None) -> None:
        """Insert a batch (and roll up); a row that cannot be stored (a value SQLite refuses,
        e.g. an int beyond 64 bits in a record made by hand) is dropped, not the batch."""
        conn = self._connection(deadline)
        roll = final or self._unrolled + len(batch) >= ROLLUP_EVERY
        try:
            with transaction(conn):
                _insert(conn, batch)
                if roll:
                    rollup.roll_up(conn)
        except (sqlite3.Error, OSError):
            raise
        except Exception:  # OverflowError & co (refused before anything is written): row by row
            dropped = 0
            with transaction(conn):
                for r in batch:
                    try:
                        _insert(conn, [r])
                    except (sqlite3.Error, OSError):
                        raise
                    except Exception:
                        dropped += 1
                if roll:
                    rollup.roll_up(conn)
            self._warn("row", f"tokenspy: {dropped} call(s) had values SQLite cannot store (not written to "
                              f"{self.path}); writing the others")
        self._unrolled = 0 if roll else self._unrolled + len(batch)

    def _connection(self, deadline: float | None) -> sqlite3.Connection:
        """The open connection, re-opened when the file was deleted or replaced since (writes
        to the old inode would be lost without a word)."""
        conn = self._conn
        try:
            st = os.stat(self.path)
            ident: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            ident = None
        if conn is not None and ident != self._ident:
            self._close_conn()
            conn = None
            self._warn("moved", f"tokenspy: {self.path} was deleted or replaced while in use; writing to "
                                f"the file now at that path")
        if conn is None:
            timeout = WRITE_TIMEOUT if deadline is None else max(deadline - time.monotonic(), 0.05)
            conn = self._conn = open_writable(self.path, timeout)
            st = os.stat(self.path)
            self._ident = (st.st_dev, st.st_ino)
        elif deadline is not None:
            conn.execute(f"PRAGMA busy_timeout = {int(max(deadline - time.monotonic(), 0.05) * 1000)}")
        return conn

    def records_since(self, uid: str | None = None) -> list[CallRecord]:
        """The rows this process wrote from ``uid`` on (None: every row of the DB), read through
        this Store's own connection (another open of the file would drop this process's locks on
        it: see _refuse_foreign)."""
        self.flush()
        where, params = ("WHERE call_uid >= ? AND call_uid < ?", (uid, uid_range_end(uid))) if uid else ("", ())
        with self._lock:
            conn = self._connection(None)
            conn.row_factory = sqlite3.Row
            try:
                rows = conn.execute(f"SELECT * FROM llm_calls {where} ORDER BY id", params).fetchall()
            finally:
                conn.row_factory = None
        return [_record_from_row(r) for r in rows]

    def _lost(self, n: int) -> None:
        if n:
            self._warn("exit", f"tokenspy: {self.path} stayed locked at exit; {n} call(s) not written")

    def _close_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def close(self, deadline: float | None = None) -> None:
        """Write the queue, roll up what this Store left unrolled, close the connection, end the
        writer thread (a Store used again starts another). ``deadline``: see ``_flush``."""
        self._stop_writer(deadline)
        self._flush(final=True, deadline=deadline)
        if self._lock.acquire(timeout=-1 if deadline is None else max(deadline - time.monotonic(), 0.0)):
            try:
                self._close_conn()
            finally:
                self._lock.release()

    def _stop_writer(self, deadline: float | None = None) -> None:
        # without this, the thread of every Store ever closed (each init() closes the last one)
        # would wake every tick for the life of the process
        with self._lock if deadline is None else contextlib.nullcontext():
            t, stop, self._thread = self._thread, self._stop, None
        if t is None:
            return
        stop.set()
        self._wake.set()
        if t is not threading.current_thread():
            t.join(timeout=10 if deadline is None else max(deadline - time.monotonic(), 0.0))

    def _after_fork(self) -> None:
        # The parent's connection and writer thread do not exist in a forked child.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._conn = None
        self._ident = None
        self._thread = None
        self._queue = deque()
        self._unrolled = 0
        self._inflight = 0


def flush_all() -> None:
    for store in list(_live_stores):
        store.flush()


def _close_all(timeout: float | None = None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    for store in list(_live_stores):
        try:
            store.close(deadline)
        except Exception:
            pass


def _close_at_exit() -> None:
    _close_all(EXIT_TIMEOUT)


def _reinit_after_fork() -> None:
    global _PROCESS_UID, _seq, _seq_lock
    _PROCESS_UID = uuid.uuid4().hex[:16]
    _seq = 0
    _seq_lock = threading.Lock()
    for store in list(_live_stores):
        store._after_fork()
    # A multiprocessing child (Process, Pool and ProcessPoolExecutor workers with "fork") ends
    # in os._exit, which runs no atexit handler: write its rows from multiprocessing's exit
    # finalizers instead. Registered through an after-fork hook because the child's bootstrap
    # clears the finalizers inherited from the parent before running those hooks.
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(_close_at_exit, _finalize_in_child)


def _finalize_in_child(close: Callable[[], None]) -> None:
    util = sys.modules["multiprocessing.util"]
    util.Finalize(None, close, exitpriority=0)


atexit.register(_close_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
