"""tokenspy.report() keeps working once the report renderers have been imported."""

from __future__ import annotations

from pathlib import Path

import tokenspy
import tokenspy.reporting.text  # loaded first, as any report loads it


def test_tokenspy_report_is_still_callable(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.html"
    assert tokenspy.report(format="html", output=out) == str(out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    text = tokenspy.report()
    assert capsys.readouterr().out.strip() == text.strip()
    assert callable(tokenspy.report)
