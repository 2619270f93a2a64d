"""The writer binds None and bool through registered adapters (the fast path of sqlite3): rows
read back exactly as written, and nobody else's use of sqlite3 changes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

from tokenspy import store
from tokenspy.record import CallRecord


def test_nones_and_bools_round_trip_through_the_store(tmp_path):
    db = tmp_path / "u.db"
    recs = [
        CallRecord("f", "gpt-4o", "openai", 10, 5, 0.001, 1.0, time.time(), call_stack=["f"]),
        CallRecord("g", "mystery-model", "openai", 7, 3, 0.0, 2.0, time.time(), session_id="s",
                   git_commit="a" * 40, call_stack=["g"], priced=False, test_id="t::x", run_id="r"),
    ]
    assert store.write_records(db, recs) == 2
    back = store.load_records(db)
    assert [(r.function_name, r.priced, r.session_id, r.git_commit, r.test_id, r.run_id, r.source_file)
            for r in back] == [("f", True, None, None, None, None, None),
                               ("g", False, "s", "a" * 40, "t::x", "r", None)]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT typeof(priced), typeof(session_id) FROM llm_calls ORDER BY id").fetchall() == [
            ("integer", "null"), ("integer", "text")]


def test_user_sqlite_binds_none_and_bool_as_before():
    conn = sqlite3.connect(":memory:")
    assert conn.execute("SELECT typeof(?), ?, typeof(?), ?", (None, None, True, False)).fetchone() == (
        "null", None, "integer", 0)


def test_an_adapter_the_application_registered_is_kept():
    code = (
        "import sqlite3\n"
        "sqlite3.register_adapter(bool, lambda b: 'yes' if b else 'no')\n"
        "import tokenspy.store\n"
        "print(sqlite3.connect(':memory:').execute('SELECT ?', (True,)).fetchone()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "yes"
