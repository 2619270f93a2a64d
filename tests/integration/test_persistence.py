"""SQLite persistence: schema, permissions, batching, several processes, faults, git tags."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import tokenspy
from tokenspy import gitinfo, store
from tokenspy.errors import TokenspyWarning
from tokenspy.record import CallRecord
from tokenspy.tracker import Tracker

MSG = [{"role": "user", "content": "hi"}]
# source locations are stored relative to the git work tree root
HERE = Path(__file__).resolve().relative_to(Path(__file__).resolve().parents[2]).as_posix()
TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"


def rows(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM llm_calls ORDER BY id").fetchall()
    finally:
        conn.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def persisted(tmp_path):
    tokenspy.init(persist=True, persist_dir=tmp_path / "data")
    yield tmp_path / "data" / "usage.db"
    tokenspy.init(persist=False)


def test_init_persist_writes_every_call_with_all_fields(persisted, oai):
    @tokenspy.profile
    def work():
        oai[0].chat.completions.create(model="gpt-4o", messages=MSG)

    with tokenspy.session("s1"):
        work()
    tokenspy.stats()  # flushes
    (row,) = rows(persisted)
    assert row["function_name"].endswith("work")
    assert json.loads(row["call_stack"]) == [row["function_name"]]
    assert (row["model"], row["provider"], row["input_tokens"], row["output_tokens"]) == ("gpt-4o", "openai", 1200, 300)
    assert (row["cached_input_tokens"], row["reasoning_tokens"], row["priced"]) == (1024, 128, 1)
    assert row["cost_usd"] == pytest.approx(0.00472)
    assert row["session_id"] == "s1"
    assert row["source_file"] == HERE and row["source_line"] > 0
    assert row["run_id"] and row["call_uid"]


def test_db_file_is_private_and_wal(persisted, oai):
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    tokenspy.stats()
    assert stat.S_IMODE(os.stat(persisted).st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        side = Path(str(persisted) + suffix)
        if side.exists():
            assert stat.S_IMODE(os.stat(side).st_mode) & 0o077 == 0
    conn = sqlite3.connect(persisted)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    conn.close()


def test_init_again_sends_later_calls_to_the_new_store(tmp_path, oai):
    tokenspy.init(persist=True, persist_dir=tmp_path / "a")
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    tokenspy.init(persist=True, persist_dir=tmp_path / "b")
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    tokenspy.init(persist=False)
    assert len(rows(tmp_path / "a" / "usage.db")) == 1
    assert len(rows(tmp_path / "b" / "usage.db")) == 2


def test_reset_clears_memory_not_the_db(persisted, oai):
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    tokenspy.reset()
    assert tokenspy.stats()["total_calls"] == 0
    assert len(rows(persisted)) == 1


def test_load_from_db_roundtrip(tmp_path):
    db = tmp_path / "t.db"
    tracker = Tracker(persist_path=db)
    recs = [
        CallRecord("f", "gpt-4o", "openai", 10, 5, 0.1, 3.0, 1.0, call_stack=["a", "f"], cached_input_tokens=2,
                   test_id="t::x", source_file="app.py", source_line=3, project="p"),
        CallRecord("g", "mystery", "openai", 1, 1, 0.0, 1.0, 2.0, priced=False),
    ]
    for r in recs:
        tracker.record(r)
    loaded = tracker.load_from_db()
    tracker.close()
    assert [(r.function_name, r.call_stack, r.cached_input_tokens, r.test_id, r.priced) for r in loaded] == [
        ("f", ["a", "f"], 2, "t::x", True), ("g", [], 0, None, False)]
    assert loaded[0].run_id is None and loaded[0].project == "p"


def test_stats_schema_matches_the_docs(oai, active):
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    data = tokenspy.stats()
    assert list(data)[:6] == ["total_cost_usd", "total_tokens", "total_calls", "by_function", "by_model", "calls"]
    call = data["calls"][0]
    assert list(call)[:10] == ["function_name", "model", "provider", "input_tokens", "output_tokens", "cost_usd",
                               "duration_ms", "timestamp", "session_id", "git_commit"]
    for extra in ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "priced", "test_id",
                  "source_file", "source_line", "run_id", "project", "call_stack", "total_tokens"):
        assert extra in call
    assert data["total_tokens"] == 1500 and data["total_calls"] == 1


def test_seed_schema_db_is_migrated_on_write_and_read_as_is(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE llm_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, function_name TEXT, call_stack TEXT,"
        " model TEXT, provider TEXT, input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL,"
        " duration_ms REAL, timestamp REAL, session_id TEXT, git_commit TEXT)")
    conn.execute("INSERT INTO llm_calls (function_name, call_stack, model, provider, input_tokens, output_tokens,"
                 " cost_usd, duration_ms, timestamp) VALUES ('old', '[\"old\"]', 'gpt-4o', 'openai', 1, 2, 0.5, 1, 1)")
    conn.commit()
    conn.close()
    before = sha256(db)
    assert [r.function_name for r in store.load_records(db)] == ["old"]  # reading changes nothing
    assert sha256(db) == before
    store.write_records(db, [CallRecord("new", "gpt-4o", "openai", 1, 1, 0.0, 1.0, 2.0, test_id="t")])
    got = rows(db)
    assert [(r["function_name"], r["test_id"], r["priced"]) for r in got] == [("old", None, 1), ("new", "t", 1)]


def _worker_script(db: Path, n: int) -> str:
    return textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(TESTS)!r}, {str(SRC)!r}]
        import tokenspy
        from wire import Wire, openai_clients
        tokenspy.init(persist=True, persist_dir={str(db.parent)!r})
        client = openai_clients(Wire())[0]
        for _ in range({n}):
            client.embeddings.create(model="text-embedding-3-small", input="x")
    """)


def test_eight_processes_write_one_db(tmp_path):
    db = tmp_path / "shared" / "usage.db"
    script = tmp_path / "worker.py"
    script.write_text(_worker_script(db, 2000))
    procs = [subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE) for _ in range(8)]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    conn = sqlite3.connect(db)
    total, runs, uids = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT run_id), COUNT(DISTINCT call_uid) FROM llm_calls").fetchone()
    # each process rolled up what it wrote when it exited: the roll-up the diff reads covers every row
    rolled = conn.execute("SELECT run_id, SUM(calls), SUM(input_tokens), SUM(output_tokens) FROM llm_rollup"
                          " GROUP BY run_id ORDER BY run_id").fetchall()
    raw = conn.execute("SELECT run_id, COUNT(*), SUM(input_tokens), SUM(output_tokens) FROM llm_calls"
                       " GROUP BY run_id ORDER BY run_id").fetchall()
    mark, top = conn.execute("SELECT (SELECT value FROM tokenspy_meta WHERE name = 'rollup_to'),"
                             " (SELECT MAX(id) FROM llm_calls)").fetchone()
    conn.close()
    assert (total, runs, uids) == (16000, 8, 16000)
    assert rolled == raw and len(raw) == 8 and mark == top


def _readonly_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        return ro / "tokenspy"
    candidate = Path("/sys/tokenspy-test-ro")
    try:
        candidate.mkdir()
    except OSError:
        return candidate
    candidate.rmdir()
    pytest.skip("no read-only location available to root here")


def test_readonly_persist_dir_warns_once_and_calls_go_through(tmp_path, oai):
    ro = _readonly_dir(tmp_path)
    tokenspy.init(persist=True, persist_dir=ro)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = [oai[0].chat.completions.create(model="gpt-4o", messages=MSG) for _ in range(3)]
            tokenspy.stats()
            oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
            data = tokenspy.stats()
    finally:
        tokenspy.init(persist=False)
    assert all(r.usage.prompt_tokens == 1200 for r in results)
    assert data["total_calls"] == 4  # kept in memory
    assert len([w for w in caught if issubclass(w.category, TokenspyWarning)]) == 1


def test_corrupt_db_warns_once_and_keeps_calls_in_memory(tmp_path, oai):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "usage.db").write_bytes(b"this is not a database at all" * 100)
    before = sha256(bad / "usage.db")
    tokenspy.init(persist=True, persist_dir=bad)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
            tokenspy.stats()
            oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
            assert tokenspy.stats()["total_calls"] == 2
    finally:
        tokenspy.init(persist=False)
    assert r.choices[0].message.content
    assert len([w for w in caught if issubclass(w.category, TokenspyWarning)]) == 1
    assert sha256(bad / "usage.db") == before  # we never "repair" a user's file


def test_locked_db_warns_retries_and_loses_nothing(tmp_path, oai, monkeypatch):
    monkeypatch.setattr(store, "WRITE_TIMEOUT", 0.2)
    db_dir = tmp_path / "locked"
    tokenspy.init(persist=True, persist_dir=db_dir)
    try:
        oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
        tokenspy.stats()  # creates the DB
        blocker = sqlite3.connect(db_dir / "usage.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
            tokenspy.stats()
            tokenspy.stats()
        assert r.usage.total_tokens == 1500
        assert len([w for w in caught if issubclass(w.category, TokenspyWarning)]) == 1
        blocker.execute("ROLLBACK")
        blocker.close()
        tokenspy.stats()
    finally:
        tokenspy.init(persist=False)
    assert len(rows(db_dir / "usage.db")) == 2


def test_track_git_tags_full_sha_and_follows_head(tmp_path, oai, monkeypatch):
    import git

    repo = git.Repo.init(tmp_path / "repo")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    (tmp_path / "repo" / "a.txt").write_text("1")
    repo.index.add(["a.txt"])
    first = repo.index.commit("one").hexsha
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setattr(gitinfo, "RECHECK_SECONDS", 0.0)
    gitinfo.reset_cache()
    tokenspy.init(track_git=True)
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    (tmp_path / "repo" / "a.txt").write_text("2")
    repo.index.add(["a.txt"])
    second = repo.index.commit("two").hexsha
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)  # not a repo: NULL, no error
    oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
    shas = [c["git_commit"] for c in tokenspy.stats()["calls"]]
    tokenspy.init(track_git=False)
    gitinfo.reset_cache()
    assert len(first) == 40
    assert shas == [first, second, None]


def test_track_git_follows_a_change_of_directory_at_once(tmp_path, oai, monkeypatch):
    # within the one-second reuse of the last SHA, a process that changes directory into
    # another repo (as pytester does) is tagged with that repo's SHA; a deleted working
    # directory is tagged with none, and the call is still recorded
    import git

    shas = {}
    for name in ("one", "two"):
        repo = git.Repo.init(tmp_path / name)
        with repo.config_writer() as cw:
            cw.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
        (tmp_path / name / "a.txt").write_text(name)
        repo.index.add(["a.txt"])
        shas[name] = repo.index.commit(name).hexsha
    monkeypatch.setattr(gitinfo, "RECHECK_SECONDS", 3600.0)
    gitinfo.reset_cache()
    tokenspy.init(track_git=True)
    try:
        for name in ("one", "two"):
            monkeypatch.chdir(tmp_path / name)
            oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
        gone = tmp_path / "gone"
        gone.mkdir()
        monkeypatch.chdir(gone)
        gone.rmdir()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no internal error reported: nothing went wrong
            oai[0].chat.completions.create(model="gpt-4o", messages=MSG)
        tagged = [c["git_commit"] for c in tokenspy.stats()["calls"]]
    finally:
        monkeypatch.chdir(tmp_path)
        tokenspy.init(track_git=False)
        gitinfo.reset_cache()
    assert tagged == [shas["one"], shas["two"], None]
