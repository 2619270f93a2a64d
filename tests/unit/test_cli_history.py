"""`tokenspy history`: newest calls first; bad paths and values are one-line errors, exit 2,
and nothing is created or modified."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokenspy.cli import main
from tokenspy.record import CallRecord
from tokenspy.store import write_records


def _records(n: int) -> list[CallRecord]:
    return [CallRecord(f"fn{i}", "gpt-4o", "openai", 10 * i, i, 0.001 * i, 5.0, 1_700_000_000.0 + i)
            for i in range(n)]


def _tree(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


def test_history_newest_first_with_limit_and_db_untouched(tmp_path, capsys):
    db = tmp_path / "usage.db"
    write_records(db, _records(30))
    before = _tree(tmp_path)
    assert main(["history", "--db", str(db), "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert [name for name in ("fn29", "fn28", "fn27", "fn26") if name in out] == ["fn29", "fn28", "fn27"]
    assert out.index("fn29") < out.index("fn27")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("content", [None, b"not sqlite at all", b""])
def test_history_bad_db_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys, content):
    path = tmp_path / "x.db"
    if content is not None:
        path.write_bytes(content)
    before = _tree(tmp_path)
    assert main(["history", "--db", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and err[0].startswith("tokenspy: error:")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_history_bad_limit(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["history", "--db", str(tmp_path / "x.db"), "--limit", value])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and value in err[0]


def test_default_db_missing_does_not_create_home_dir(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "tokenspy", "history"], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert ".tokenspy/usage.db" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
