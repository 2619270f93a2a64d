"""Bad paths are one line and exit 2, a foreign SQLite file is never written, and one rule finds
the DB for every command (issue 18). The CLI run for real, in a subprocess."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import git
import pytest

from tokenspy import dbpath, store
from tokenspy.record import CallRecord


def tokenspy(*argv: str, cwd: Path, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "TOKENSPY_"))}
    return subprocess.run([sys.executable, "-m", "tokenspy", *argv], cwd=cwd, capture_output=True, text=True,
                          env={**base, "HOME": str(home), **env}, timeout=120)


def one_db(path: Path, fn: str = "app.summarize") -> Path:
    store.write_records(path, [CallRecord(fn, "gpt-4o", "openai", 1000, 100, 0.0, 1.0, 1.75e9, run_id="r1")])
    return path


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.mark.parametrize("target", ["adir", "notadb.txt"])
def test_combine_into_a_directory_or_a_non_db_is_one_line(tmp_path, home, target):
    good = one_db(tmp_path / "good.db")
    (tmp_path / "adir").mkdir()
    (tmp_path / "notadb.txt").write_text("not a database\n")
    before = sha(tmp_path / "notadb.txt")
    proc = tokenspy("combine", target, "good.db", cwd=tmp_path, home=home)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("tokenspy: error: ") and target in proc.stderr
    assert sha(tmp_path / "notadb.txt") == before and good.is_file()


def test_combine_refuses_an_sqlite_db_that_is_not_tokenspys(tmp_path, home):
    one_db(tmp_path / "good.db")
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.commit()
    conn.close()
    before = sha(other)
    proc = tokenspy("combine", "other.db", "good.db", cwd=tmp_path, home=home)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "other.db" in proc.stderr and "tokenspy" in proc.stderr
    assert sha(other) == before
    # a tokenspy DB, or a new file, is a fine target
    assert tokenspy("combine", "new.db", "good.db", cwd=tmp_path, home=home).returncode == 0
    assert tokenspy("combine", "new.db", "good.db", cwd=tmp_path, home=home).returncode == 0


def test_demo_dir_that_is_a_file_is_one_line(tmp_path, home):
    (tmp_path / "some").mkdir()
    (tmp_path / "some" / "file.txt").write_text("mine")
    proc = tokenspy("demo", "--dir", "some/file.txt", cwd=tmp_path, home=home)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "file.txt" in proc.stderr
    assert (tmp_path / "some" / "file.txt").read_text() == "mine"


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "src" / "deep").mkdir(parents=True)
    git.Repo.init(root).close()
    return root


def test_every_reading_command_finds_the_repos_db_from_a_subdirectory(repo, home):
    one_db(repo / ".tokenspy" / "usage.db", fn="app.from_the_repo")
    one_db(home / ".tokenspy" / "usage.db", fn="app.from_home")
    sub = repo / "src" / "deep"
    history = tokenspy("history", cwd=sub, home=home)
    assert history.returncode == 0 and "app.from_the_repo" in history.stdout, history.stderr
    report = tokenspy("report", cwd=sub, home=home)
    assert report.returncode == 0 and "app.from_the_repo" in report.stdout, report.stderr
    budget = tokenspy("budget", cwd=sub, home=home)
    assert budget.returncode == 0 and str(repo / ".tokenspy" / "usage.db") in budget.stdout
    # TOKENSPY_DB comes before the repo's; --db before both
    named = tokenspy("history", cwd=sub, home=home, TOKENSPY_DB=str(home / ".tokenspy" / "usage.db"))
    assert "app.from_home" in named.stdout and "app.from_the_repo" not in named.stdout
    given = tokenspy("history", "--db", str(repo / ".tokenspy" / "usage.db"), cwd=sub, home=home,
                     TOKENSPY_DB=str(home / ".tokenspy" / "usage.db"))
    assert "app.from_the_repo" in given.stdout
    # outside any repository: the home DB
    outside = home / "elsewhere"
    outside.mkdir()
    assert "app.from_home" in tokenspy("history", cwd=outside, home=home).stdout


def test_one_rule_for_writers_and_readers(repo):
    sub = repo / "src" / "deep"
    # a writer in a work tree takes the repo's DB even before it exists; a reader only once it does
    assert dbpath.find(writing=True, cwd=sub, env={}) == repo.resolve() / ".tokenspy" / "usage.db"
    assert dbpath.find(cwd=sub, env={}) == Path("~/.tokenspy/usage.db").expanduser()
    assert dbpath.find("x.db", cwd=sub, env={"TOKENSPY_DB": "y.db"}) == Path("x.db")
    assert dbpath.find(cwd=sub, env={"TOKENSPY_DB": "y.db"}) == Path("y.db")
