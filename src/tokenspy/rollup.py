"""The write-time roll-up of ``llm_calls`` that ``tokenspy diff`` reads instead of the raw rows.

``llm_rollup`` holds one row per (git_commit, function, test, model, provider, run, usage source,
input-size bucket) with the sums the diff needs: exactly what ``tokenspy.ci.query`` computes with a GROUP BY
over the raw rows, so that reading the roll-up and reading the rows give the same groups.
``tokenspy_meta`` says how far it goes: every row with ``id <= rollup_to`` is in it, no later row
is, and ``rollup_splits`` names the ``SPLITS`` it was bucketed with (a reader whose ``SPLITS``
differ reads the raw rows).

Writers call ``roll_up`` inside their write transaction (BEGIN IMMEDIATE), after their inserts:
it adds the rows above ``rollup_to`` and moves the mark. Rows are only ever appended, with
increasing ids (AUTOINCREMENT), so a reader adds the raw GROUP BY of the tail ``id > rollup_to``
(rows of writers that do not roll up, e.g. an older tokenspy or the original tool) to the
roll-up and counts every row exactly once.

Stdlib only, and nothing from ``tokenspy.ci``: the store imports this module on the write path.
"""

from __future__ import annotations

import sqlite3

# Input sizes at which some model of the price table changes tier (found with rates.tier_map
# over genai-prices 0.2.3). Each group is split at these sizes, so that a group's calls fall in
# one price tier for every model whose boundaries are among them, i.e. all known models today.
# Only a performance hint: a model with a boundary elsewhere is re-read exactly (fetch_tiered).
SPLITS = (32_000, 100_000, 128_000, 199_999, 200_000, 256_000, 272_000, 512_000)
# The bucket of a call: how many SPLITS its input size exceeds (NULL input: NULL, read as 0).
BUCKET = (f"CASE WHEN input_tokens <= {SPLITS[0]} THEN 0 ELSE 1"
          + "".join(f" + (input_tokens > {s})" for s in SPLITS[1:]) + " END")
# What a roll-up was built with: a reader or writer with other SPLITS (or another layout of the
# table, hence the version prefix) does not use it.
# v3: usage_source is part of the group key (a diff compares like sources only); a v2 roll-up
# is rebuilt by the next writer and read as raw rows until then (old rows say "response").
SIGNATURE = "3:" + ",".join(str(s) for s in SPLITS)

TABLE = "llm_rollup"
META = "tokenspy_meta"
KEYS = ("git_commit", "function_name", "test_id", "model", "provider", "run_id", "usage_source", "bucket")
SUMS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
MINS = ("source_file", "source_line")


def sum_exprs(has: frozenset[str] | set[str] | None = None) -> list[str]:
    """The SUM of each of SUMS, in order, over rows whose totals are never below their parts.

    The recorder writes rows that way; other writers (or hand-made records) may not, and the
    pricing clamps a group's fresh input at zero, which would make a group's cost depend on how
    its rows were grouped (the roll-up keeps commits apart, a raw read may not). Made consistent
    row by row, every sum prices to the sum of its pieces. ``has``: the columns the table has
    (one written by the original tool lacks the cached/cache-write/reasoning ones), None: all."""
    def col(name: str) -> str:
        return f"COALESCE({name}, 0)" if has is None or name in has else "0"

    cached, write, reasoning = col("cached_input_tokens"), col("cache_write_tokens"), col("reasoning_tokens")
    row = {
        "input_tokens": f"MAX({col('input_tokens')}, {cached} + {write})",
        "cached_input_tokens": cached,
        "cache_write_tokens": write,
        "output_tokens": f"MAX({col('output_tokens')}, {reasoning})",
        "reasoning_tokens": reasoning,
    }
    return [f"SUM({row[s]})" for s in SUMS]

# SQLite's UNIQUE lets NULLs repeat, so the conflict target is one text column that encodes the
# whole group key: per column its type letter and the hex of its bytes (quote() would cut a text
# at a NUL character and merge groups that GROUP BY keeps apart), joined by '|', which neither
# part contains. Equal keys <=> equal values under GROUP BY's BINARY comparison.
KEY_SQL = " || '|' || ".join(f"substr(typeof({k}), 1, 1) || hex({k})" for k in KEYS)

# The sums have no declared type: like the raw SUM, they keep whatever type SQLite's sum gives.
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " git_commit TEXT, function_name TEXT, test_id TEXT, model TEXT, provider TEXT, run_id TEXT, usage_source TEXT,"
    " bucket INTEGER,"
    " calls INTEGER NOT NULL,"
    + "".join(f" {s} NOT NULL," for s in SUMS)
    + " source_file TEXT, source_line INTEGER) WITHOUT ROWID",
    f"CREATE TABLE IF NOT EXISTS {META} (name TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID",
    # rollup_to = 0: the next roll-up takes every row already there
    f"INSERT OR IGNORE INTO {META} (name, value) VALUES ('rollup_to', 0), ('rollup_splits', '{SIGNATURE}')",
)

# One statement: GROUP BY the tail and fold it into the roll-up. SUM is NULL over NULLs only, so
# it is stored as 0 (the reader turns a NULL sum into 0 anyway); scalar MIN is NULL as soon as
# one side is, hence the COALESCE (the aggregate MIN skips NULLs).
_ROLL = (
    f"INSERT INTO {TABLE} (key, {', '.join(KEYS)}, calls, {', '.join(SUMS)}, {', '.join(MINS)}) "
    f"SELECT {KEY_SQL}, * FROM ("
    f"SELECT {', '.join(KEYS[:-1])}, {BUCKET} AS bucket, COUNT(*), "
    + ", ".join(f"COALESCE({e}, 0)" for e in sum_exprs())
    + f", {', '.join(f'MIN({m})' for m in MINS)} FROM llm_calls "
    f"WHERE id > (SELECT value FROM {META} WHERE name = 'rollup_to') GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
    # WHERE true: without it SQLite would read ON CONFLICT as the join constraint of the FROM
    ") WHERE true "
    "ON CONFLICT (key) DO UPDATE SET calls = calls + excluded.calls, "
    + ", ".join(f"{s} = {s} + excluded.{s}" for s in SUMS) + ", "
    + ", ".join(f"{m} = COALESCE(MIN({m}, excluded.{m}), {m}, excluded.{m})" for m in MINS)
)
_MARK = (f"UPDATE {META} SET value = COALESCE((SELECT MAX(id) FROM llm_calls), value) "
         "WHERE name = 'rollup_to'")


def create(conn: sqlite3.Connection) -> None:
    """Create the roll-up tables (empty, ``rollup_to = 0``) if missing; inside a write transaction."""
    for stmt in CREATE:
        conn.execute(stmt)


def _meta(conn: sqlite3.Connection, name: str) -> object:
    row = conn.execute(f"SELECT value FROM {META} WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def mark(conn: sqlite3.Connection) -> int | None:
    """``rollup_to`` if ``conn``'s DB has a roll-up built with this ``SPLITS``, else None (read
    the raw rows). Only reads; call inside the read transaction that reads the roll-up."""
    have = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
                        (TABLE, META)).fetchone()[0]
    if have != 2 or _meta(conn, "rollup_splits") != SIGNATURE:
        return None
    value = _meta(conn, "rollup_to")
    return value if isinstance(value, int) else None


def roll_up(conn: sqlite3.Connection) -> None:
    """Fold the rows above ``rollup_to`` into the roll-up and advance the mark.

    Call inside the caller's write transaction (BEGIN IMMEDIATE): the write lock makes the tail
    it reads the whole tail. A roll-up this tokenspy cannot use (built with other ``SPLITS``, or
    with a table missing, e.g. dropped by hand from a v4 DB) is rebuilt from all the rows: once
    per change of the price table's tier boundaries."""
    if mark(conn) is None:
        drop(conn)
        create(conn)
    conn.execute(_ROLL)
    conn.execute(_MARK)


def drop(conn: sqlite3.Connection) -> None:
    """Remove the roll-up (the DB then reads like one an older tokenspy wrote); in a write transaction."""
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(f"DROP TABLE IF EXISTS {META}")
