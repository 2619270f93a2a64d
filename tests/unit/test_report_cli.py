"""`tokenspy report` and `tokenspy history` through tokenspy.cli.main, on real SQLite files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tokenspy.cli import main
from tokenspy.record import CallRecord
from tokenspy.store import write_records


def rec(function: str, cost: float, model: str, provider: str, **kw) -> CallRecord:
    return CallRecord(
        function_name=function, model=model, provider=provider, input_tokens=1000, output_tokens=200,
        cost_usd=cost, duration_ms=300.0, timestamp=kw.pop("ts", 1_700_000_000.0),
        call_stack=["main", function], **kw,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "usage.db"
    write_records(path, [
        rec("plan", 0.004, "claude-3-5-haiku", "anthropic", session_id="s1", git_commit="abc123"),
        rec("write", 0.0015, "gpt-4o-mini", "openai", ts=1_700_000_100.0),
        rec("guess", 0.0, "my-finetune", "acme", priced=False, ts=1_700_000_200.0),
    ])
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_text_report(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (sha256(db), listing(db.parent))
    assert main(["report", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "$0.00550 over 3 calls" in out
    for provider, model in (("anthropic", "claude-3-5-haiku"), ("openai", "gpt-4o-mini")):
        assert any(provider in line and model in line for line in out.splitlines())
    assert "acme/my-finetune" in out and "no known price" in out
    assert (sha256(db), listing(db.parent)) == before


def test_html_report(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (sha256(db), listing(db.parent))
    out_file = tmp_path / "out" / "report.html"
    out_file.parent.mkdir()
    assert main(["report", "--format", "html", "--db", str(db), "--output", str(out_file)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out_file}"
    page = out_file.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'id="flame"' in page and "claude-3-5-haiku" in page
    assert (sha256(db), listing(db.parent)) == before


def test_html_report_default_output(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["report", "--format", "html", "--db", str(db)]) == 0
    assert listing(work) == ["tokenspy_report.html"]


def test_text_report_to_file(db: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "report.txt"
    assert main(["report", "--db", str(db), "--output", str(out_file)]) == 0
    assert "By provider and model" in out_file.read_text(encoding="utf-8")


def test_empty_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.db"
    write_records(path, [])
    assert main(["report", "--db", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "no LLM calls recorded"


@pytest.mark.parametrize("fmt", ["text", "html"])
def test_missing_db(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing" / "here.db"
    out_file = tmp_path / "report.html"
    assert main(["report", "--format", fmt, "--db", str(missing), "--output", str(out_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and err.startswith("tokenspy: error:")
    assert listing(tmp_path) == []  # neither the DB, its directory nor the output


@pytest.mark.parametrize("fmt", ["text", "html"])
def test_not_a_database(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("just some text, long enough to look like a header\n")
    before = sha256(bogus)
    assert main(["report", "--format", fmt, "--db", str(bogus), "--output", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bogus) in err
    assert listing(tmp_path) == ["notes.db"] and sha256(bogus) == before


def test_history_uses_format_history(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sha256(db)
    assert main(["history", "--db", str(db), "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # header and the two newest calls, newest first
    assert "acme/my-finetune" in lines[1] and "unpriced" in lines[1]
    assert "openai/gpt-4o-mini" in lines[2] and "$0.00150" in lines[2]
    assert sha256(db) == before
