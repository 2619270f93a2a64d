"""render_text and format_history: the terminal outputs."""

from __future__ import annotations

from datetime import datetime

import pytest

from tokenspy.record import CallRecord
from tokenspy.reporting.data import ReportData
from tokenspy.reporting.text import bar, format_history, format_usd, render_text


def rec(function: str, cost: float, model: str = "gpt-4o-mini", provider: str = "openai",
        **kw) -> CallRecord:
    return CallRecord(
        function_name=function, model=model, provider=provider, input_tokens=kw.pop("inp", 1200),
        output_tokens=kw.pop("out", 300), cost_usd=cost, duration_ms=kw.pop("duration_ms", 420.0),
        timestamp=kw.pop("ts", 1_700_000_000.0), call_stack=kw.pop("stack", [function]), **kw,
    )


@pytest.mark.parametrize(("amount", "text"), [
    (0.0, "$0.00"),
    (0.000123, "$0.000123"),
    (0.0000000375, "$0.0000000375"),
    (0.0123, "$0.0123"),
    (0.5, "$0.5000"),
    (1.0, "$1.00"),
    (1234.5, "$1,234.50"),
    (-0.25, "-$0.2500"),
])
def test_format_usd(amount: float, text: str) -> None:
    assert format_usd(amount) == text


def test_bar() -> None:
    assert bar(1.0) == "█" * 20
    assert bar(0.5) == "█" * 10
    assert bar(0.0) == ""
    assert bar(0.03125) == "▋"  # 5/8 of a cell


def test_empty() -> None:
    assert render_text([]) == "no LLM calls recorded"
    assert render_text(ReportData.from_records([])) == "no LLM calls recorded"


def test_report_shows_functions_providers_models_and_bars() -> None:
    records = [
        rec("summarize", 0.000123),
        rec("plan", 0.003, model="claude-3-5-haiku", provider="anthropic", cached_input_tokens=500),
        rec("plan", 0.003, model="claude-3-5-haiku", provider="anthropic"),
    ]
    text = render_text(records)
    assert text == render_text(ReportData.from_records(records))
    assert "$0.00612 over 3 calls" in text  # three significant digits
    lines = text.splitlines()
    plan_row = next(line for line in lines if line.lstrip().startswith("plan"))
    assert "$0.00600" in plan_row and "98.0%" in plan_row and "█" in plan_row
    summarize_row = next(line for line in lines if line.lstrip().startswith("summarize"))
    assert "$0.000123" in summarize_row
    model_rows = [line for line in lines if "claude-3-5-haiku" in line or "gpt-4o-mini" in line]
    assert any("anthropic" in line and "claude-3-5-haiku" in line for line in model_rows)
    assert any("openai" in line and "gpt-4o-mini" in line for line in model_rows)
    assert "cached" in text  # the cached column shows because some input was cached
    assert "reasoning" not in text.split("By provider and model")[1]  # all zero: left out
    assert "Unpriced" not in text


def test_unpriced_models_are_listed_with_a_note() -> None:
    text = render_text([rec("a", 0.01), rec("b", 0.0, model="my-finetune", provider="acme", priced=False)])
    assert "no known price; add to [tool.tokenspy.prices" in text
    unpriced = text.split("Unpriced models")[1]
    assert "acme/my-finetune" in unpriced
    model_row = next(line for line in text.splitlines() if line.lstrip().startswith("acme "))
    assert "unpriced" in model_row
    assert "1 call counted as $0" in text


def test_sessions_and_commits_sections() -> None:
    text = render_text([rec("a", 0.01, session_id="nightly", git_commit="0123456789abcdef0123")])
    assert "Sessions" in text and "nightly" in text
    assert "Git commits" in text and "0123456789ab" in text and "0123456789abc" not in text


def test_long_names_are_shortened() -> None:
    name = "package.module." + "x" * 200 + ".function"
    text = render_text([rec(name, 0.01)])
    assert name not in text and "…" in text and ".function" in text


def test_format_history() -> None:
    ts = 1_700_000_123.0
    rows = [
        (ts, "plan", "gpt-4o", "openai", 1200, 300, 0.000123, 812.4, 1),
        (ts - 60, "draft", "my-finetune", "acme", 50, 5, 0.0, 90.0, 0),
    ]
    text = format_history(rows)
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 3
    assert lines[0].split() == ["time", "function", "provider/model", "in", "out", "cost", "latency", "ms"]
    assert datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds") in lines[1]
    assert "openai/gpt-4o" in lines[1] and "1,200" in lines[1] and "$0.000123" in lines[1]
    assert lines[1].rstrip().endswith("812")
    assert "acme/my-finetune" in lines[2] and "unpriced" in lines[2]


def test_format_history_empty_and_nulls() -> None:
    assert format_history([]) == "no LLM calls recorded\n"
    line = format_history([(None, None, None, None, None, None, None, None, None)]).splitlines()[1]
    assert line.split()[:2] == ["-", "<unknown>"]


def test_control_characters_never_reach_the_terminal() -> None:
    evil = "f\x1b[2J\nrm -rf\r\x07"
    text = render_text([rec(evil, 0.01, model=evil, provider=evil, session_id=evil, git_commit=evil),
                        rec("g", 0.0, model=evil, provider=evil, priced=False)])
    history = format_history([(1.0, evil, evil, evil, 1, 1, 0.01, 1.0, 1)])
    for out in (text, history):
        assert not any(c in out for c in "\x1b\r\x07")
        assert "f?[2J?rm -rf??" in out
    assert len(history.splitlines()) == 2
