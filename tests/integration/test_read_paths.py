"""Read paths never create or modify a file (issue 19, items 9 and 10): a DB whose writer stopped
without a checkpoint (its -wal, with or without its -shm, beside it) is read whole by history,
report, diff and export-free reads, and every file in its directory keeps its bytes and mtime."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tokenspy.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"

# A writer that commits 5 rows and dies without closing: SQLite never checkpoints, so the rows
# live only in the -wal.
WRITER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, sys.argv[2])
    from tokenspy import store
    from tokenspy.record import CallRecord
    conn = store.open_writable(sys.argv[1])
    with store.transaction(conn):
        store._insert(conn, [CallRecord(f"fn{i}", "gpt-4o", "openai", 100, 10, 0.01, 1.0, time.time(), run_id="r")
                             for i in range(5)])
    os._exit(0)
""")


def files(d: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(d.iterdir())}


@pytest.fixture(params=["wal and shm", "wal only"])
def stopped_writer_db(tmp_path, request) -> Path:
    db = tmp_path / "usage.db"
    subprocess.run([sys.executable, "-c", WRITER, str(db), str(SRC)], check=True)
    assert Path(str(db) + "-wal").stat().st_size > 0
    if request.param == "wal only":  # e.g. a DB copied or downloaded with its WAL
        Path(str(db) + "-shm").unlink()
    return db


@pytest.mark.parametrize("argv", [
    ["history", "--db", "{db}"],
    ["report", "--db", "{db}"],
    ["diff", "{db}", "{db}"],
    ["diff", "{db}", "--format", "json"],
])
def test_read_commands_read_the_wal_and_write_nothing(stopped_writer_db, argv, monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    db = stopped_writer_db
    before = files(db.parent)
    rc = main([a.format(db=db) for a in argv])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "fn4" in out or "0.05" in out or "$0.05" in out, out  # the rows that exist only in the WAL
    assert files(db.parent) == before


def test_report_refuses_to_write_over_its_input(stopped_writer_db, capsys):
    db = stopped_writer_db
    before = files(db.parent)
    rc = main(["report", "--format", "html", "--db", str(db), "--output", str(db)])
    err = capsys.readouterr().err
    assert rc == 2 and str(db) in err and len(err.strip().splitlines()) == 1
    assert files(db.parent) == before
    os.link(db, db.parent / "alias.db")  # the same file under another name is the same input
    before = files(db.parent)
    assert main(["report", "--format", "html", "--db", str(db), "--output", str(db.parent / "alias.db")]) == 2
    assert files(db.parent) == before


@pytest.fixture
def garbage_db(tmp_path) -> Path:
    """A tokenspy DB with a row a hand edit (or another tool) left: a blob name, text counts,
    overflowing numbers, invalid UTF-8."""
    import sqlite3
    import time

    from tokenspy import store
    from tokenspy.record import CallRecord

    db = tmp_path / "g.db"
    store.write_records(db, [CallRecord("fine", "gpt-4o", "openai", 10, 5, 0.1, 1.0, time.time())])
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO llm_calls (function_name, call_stack, model, provider, input_tokens, output_tokens,"
                 " cost_usd, duration_ms, timestamp) VALUES (X'00ff', 'notjson', 5, NULL, 'abc', -3, 'x', NULL,"
                 " 'yesterday')")
    conn.execute("INSERT INTO llm_calls (function_name, model, provider, input_tokens, output_tokens, cost_usd,"
                 " timestamp) VALUES (CAST(X'66ff6f' AS TEXT), 'm', 'p', 99999999999999999999, 1e308, 1e400, 1e300)")
    conn.commit()
    conn.close()
    return db


@pytest.mark.parametrize("argv", [["history", "--db", "{db}"], ["report", "--db", "{db}"],
                                  ["report", "--format", "html", "--db", "{db}", "--output", "{out}"],
                                  ["diff", "{db}", "{db}"], ["diff", "{db}", "--format", "json"]])
def test_garbage_values_are_rendered_not_raised(garbage_db, argv, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    assert main([a.format(db=garbage_db, out=tmp_path / "r.html") for a in argv]) == 0
    out = capsys.readouterr().out
    assert "fine" in out or "wrote" in out


@pytest.mark.parametrize("bad", ["a" * 100_000, "x\x1b[31m\nred.db", "nul\x00.db"])
def test_bad_db_paths_are_one_printable_line(bad, capsys):
    assert main(["history", "--db", bad]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and len(err) < 1000
    assert "\x1b" not in err and "\x00" not in err


def test_a_huge_name_does_not_pad_the_text_diff(tmp_path, capsys, monkeypatch):
    import time

    from tokenspy import store
    from tokenspy.record import CallRecord

    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    db = tmp_path / "big.db"
    store.write_records(db, [CallRecord("x" * 1_000_000, "gpt-4o", "openai", 10, 5, 0.1, 1.0, time.time())]
                        + [CallRecord(f"f{i}", "gpt-4o", "openai", 10, 5, 0.1, 1.0, time.time()) for i in range(50)])
    for argv in (["diff", str(db)], ["report", "--db", str(db)], ["history", "--db", str(db)]):
        assert main(argv) == 0
        assert len(capsys.readouterr().out) < 50_000, argv


@pytest.mark.parametrize("argv", [["budget", "reset", "--db", "{db}", "--project", "p"],
                                  ["combine", "{db}", "{src}"]])
def test_writers_refuse_a_sqlite_db_that_is_not_tokenspys(tmp_path, argv, capsys):
    import sqlite3
    import time

    from tokenspy import store
    from tokenspy.record import CallRecord

    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    src = tmp_path / "src.db"
    store.write_records(src, [CallRecord("f", "gpt-4o", "openai", 1, 1, 0.1, 1.0, time.time())])
    before = files(tmp_path)
    assert main([a.format(db=foreign, src=src) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "other.db" in err
    assert files(tmp_path) == before


def test_persisting_into_a_foreign_db_warns_and_leaves_it_alone(tmp_path, oai, active):
    import sqlite3
    import warnings

    import tokenspy
    from tokenspy.tracker import get_global_tracker

    foreign = tmp_path / "usage.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    before = files(tmp_path)
    tokenspy.init(persist=True, persist_dir=tmp_path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            oai[0].chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            get_global_tracker().flush()
        assert any("refusing to write" in str(w.message) for w in caught)
        assert tokenspy.stats()["total_calls"] == 1  # kept in memory
    finally:
        tokenspy.init()
    assert files(tmp_path) == before


def test_a_failed_combine_leaves_no_partial_output(tmp_path, capsys):
    """An input that passes the up-front checks but cannot be read midway (an llm_calls table
    of another shape) fails the combine after the output was created: it is removed, not left
    half-written."""
    import sqlite3
    import time

    from tokenspy import store
    from tokenspy.record import CallRecord

    good, odd = tmp_path / "good.db", tmp_path / "odd.db"
    store.write_records(good, [CallRecord("f", "gpt-4o", "openai", 1, 1, 0.1, 1.0, time.time())])
    with sqlite3.connect(odd) as conn:
        conn.execute("CREATE TABLE llm_calls (function_name TEXT)")  # no id, no other column
        conn.execute("INSERT INTO llm_calls VALUES ('x')")
    out = tmp_path / "out.db"
    rc = main(["combine", str(out), str(good), str(odd)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1
    assert not out.exists() and not Path(f"{out}-wal").exists() and not Path(f"{out}-shm").exists()
