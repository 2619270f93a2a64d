"""The Markdown report: golden files, escaping of any name, length caps that cut whole rows.

Golden files live in tests/golden/. After an intended change of the report, regenerate them with

    TOKENSPY_REGEN_GOLDEN=1 python -m pytest tests/unit/test_ci_markdown.py

and review the diff of tests/golden/*.md before committing.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenspy.ci.diff import build_side, compute
from tokenspy.ci.markdown import COMMENT_MAX_CHARS, Extras, code_span, md, name_cell, render_markdown
from tokenspy.ci.query import Group
from tokenspy.ci.rates import Rates
from tokenspy.ci.thresholds import Override, Thresholds
from tokenspy.ci.traffic import Traffic
from tokenspy.ci.trend import Point, Trend

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
RATES = Rates(2.5e-6, 1.25e-6, 2.5e-6, 10e-6, 10e-6, 0.0)
CHEAP = Rates(0.15e-6, 0.075e-6, 0.15e-6, 0.6e-6, 0.6e-6, 0.0)


def g(fn, inp, out=0, *, test=None, model="gpt-4o", run="r1", calls=1, src=None, line=None, cached=0):
    return Group(fn, test, model, "openai", run, 0, calls, inp, cached, 0, out, 0, src, line)


def priced(*groups):
    return [(x, None if x.model == "acme-llm" else CHEAP if x.model == "gpt-4o-mini" else RATES) for x in groups]


def scenario_regressions():
    base = build_side(priced(
        g("app.summarize", 10_000, 2_000, test="tests/test_app.py::test_summary", src="src/app.py", line=12),
        g("app.classify", 4_000, 100, model="gpt-4o-mini", test="tests/test_app.py::test_classify",
          src="src/app.py", line=40),
        g("app.legacy", 1_000, 100, src="src/old.py", line=3),
        g("app.translate", 8_000, 1_000, test="tests/test_slow.py::test_translate", src="src/tr.py", line=7),
        g("weird | name `<b>` @here\nnext", 500, 50, model="acme-llm"),
        g("app.cheaper", 6_000, 600, cached=1000, src="src/app.py", line=80),
    ), "baseline.db")
    cur = build_side(priced(
        g("app.summarize", 16_000, 3_000, calls=2, test="tests/test_app.py::test_summary", src="src/app.py",
          line=12),
        g("app.classify", 4_000, 100, model="gpt-4o-mini", test="tests/test_app.py::test_classify",
          src="src/app.py", line=40),
        g("app.translate", 11_000, 1_200, test="tests/test_slow.py::test_translate", src="src/tr.py", line=7),
        g("weird | name `<b>` @here\nnext", 900, 50, model="acme-llm"),
        g("app.cheaper", 3_000, 300, cached=500, src="src/app.py", line=80),
        g("app.brand_new", 2_000, 400, test="tests/test_app.py::test_new", src="src/new.py", line=1),
    ), "current.db")
    th = Thresholds(max_increase_usd=0.001, fail_on_regression=True,
                    overrides=(Override("tests/test_slow.py::*", max_increase_pct=50.0),
                               Override("app.translate", max_increase_pct=50.0)))
    return compute(cur, base, th, "genai-prices 0.2.3", reproduce="tokenspy diff current.db baseline.db")


def scenario_no_baseline():
    cur = build_side(priced(
        g("app.summarize", 16_000, 3_000, test="tests/test_app.py::test_summary"),
        g("app.classify", 4_000, 100, model="gpt-4o-mini"),
        g("app.local", 300, 30, model="acme-llm"),
    ), "current.db")
    return compute(cur, None, Thresholds(), "genai-prices 0.2.3", reproduce="tokenspy diff current.db")


def scenario_noise():
    base = build_side(priced(*(g("app.summarize", v, 1000, run=f"b{i}", test="tests/t.py::test_s")
                               for i, v in enumerate([10_000, 11_000, 9_000, 10_500, 9_500]))), "history.db")
    cur = build_side(priced(*(g("app.summarize", v, 1000, run=f"c{i}", test="tests/t.py::test_s")
                              for i, v in enumerate([11_000, 11_500, 11_200]))), "current.db")
    return compute(cur, base, Thresholds(), "genai-prices 0.2.3",
                   reproduce="tokenspy compare 1111111 2222222 --db .tokenspy/usage.db")


def scenario_many():
    base = build_side(priced(*(g(f"app.step_{i:04d}", 1000, test=f"tests/test_{i:04d}.py::t") for i in range(400))),
                      "b.db")
    cur = build_side(priced(*(g(f"app.step_{i:04d}", 1000 + (i % 3) * 200, test=f"tests/test_{i:04d}.py::t")
                              for i in range(400))), "c.db")
    return compute(cur, base, Thresholds(), "genai-prices 0.2.3", reproduce="tokenspy diff c.db b.db")


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TOKENSPY_REGEN_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing {path}: run with TOKENSPY_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def tables(text: str) -> list[list[str]]:
    """Blocks of consecutive lines starting with '|'."""
    out, cur = [], []
    for line in text.split("\n"):
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def assert_tables_intact(text: str) -> None:
    for block in tables(text):
        header_cells = block[0].count("|")
        assert re.fullmatch(r"\|(---\|)+", block[1]), block[1]
        assert block[1].count("|") == header_cells
        for line in block[2:]:
            assert line.endswith("|")
            assert line.count("|") == header_cells, line


TH = Thresholds(max_increase_pct=10.0, fail_on_regression=True)
PR = Extras("This PR")
TRAFFIC = Traffic((("app.summarize", 30_000.0), ("app.*", 1_000.0)), "pyproject.toml")


def _two(base_groups, cur_groups, th=TH):
    return compute(build_side(priced(*cur_groups), "current.db"), build_side(priced(*base_groups), "baseline.db"),
                   th, "genai-prices 0.2.3", reproduce="tokenspy diff current.db baseline.db")


BASE = (g("app.summarize", 10_000, 500, test="tests/test_app.py::test_summary"),
        g("app.classify", 4_000, 100, model="gpt-4o-mini", test="tests/test_app.py::test_classify"))


def scenario_no_change():
    return _two(BASE, BASE)


def scenario_one_regression():
    # one prompt change: one function, its test, its model and the total move; one regression
    return _two(BASE, (g("app.summarize", 18_000, 500, test="tests/test_app.py::test_summary"), BASE[1]))


def scenario_warn_only():
    th = Thresholds(warn_pct=5.0, max_increase_pct=50.0, fail_on_regression=True)
    return _two(BASE, (g("app.summarize", 11_500, 500, test="tests/test_app.py::test_summary"), BASE[1]), th)


def scenario_new_and_removed():
    th = Thresholds(max_increase_pct=10.0, max_increase_usd=1.0, fail_on_regression=True)
    return _two((*BASE, g("app.legacy", 2_000, 50, test="tests/test_old.py::test_legacy")),
                (*BASE, g("app.rerank", 3_000, 20, model="gpt-4o-mini", test="tests/test_app.py::test_rerank",
                          calls=3)), th)


def scenario_accepted():
    return replace(scenario_one_regression(), verdict="pass", accepted_by="tokenspy:accept")


def scenario_many_rows():
    base = [g(f"app.pipeline.stage_{i:05d}." + "deeply_nested_helper_name" * 2, 1000,
              test=f"tests/test_pipeline_{i:05d}.py::test_stage") for i in range(3000)]
    cur = [x._replace(input_tokens=1000 + (i % 3) * 150) for i, x in enumerate(base)]
    return _two(base, cur)


TREND = Trend((*tuple(Point(f"{i:07x}", 0.03 + 0.0005 * (i % 4)) for i in range(30)), Point("PR #7", 0.0485)))

GOLDEN_CASES = {
    "ci_report_no_baseline.md": (scenario_no_baseline, PR),
    "ci_report_no_change.md": (scenario_no_change, PR),
    "ci_report_one_regression.md": (scenario_one_regression, replace(PR, trend=TREND)),
    "ci_report_one_regression_traffic.md": (scenario_one_regression, replace(PR, trend=TREND, traffic=TRAFFIC)),
    "ci_report_no_baseline_traffic.md": (scenario_no_baseline, replace(PR, traffic=TRAFFIC)),
    "ci_report_warn_only.md": (scenario_warn_only, PR),
    "ci_report_new_removed.md": (scenario_new_and_removed, PR),
    "ci_report_accepted.md": (scenario_accepted, PR),
    "ci_report_regressions.md": (scenario_regressions, Extras()),
    "ci_report_noise.md": (scenario_noise, Extras()),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_reports(name):
    scenario, extras = GOLDEN_CASES[name]
    text = render_markdown(scenario(), extras=extras)
    assert text.startswith("<!-- tokenspy -->\n### ")
    assert_tables_intact(text)
    assert_narrow(text)
    check_golden(name, text)


def assert_narrow(text: str) -> None:
    """At most 6 columns in any table; no column zero on both sides in every row."""
    for block in tables(text):
        assert block[1].count("|") - 1 <= 6, block[0]


def test_headline_first_then_counts():
    lines = render_markdown(scenario_one_regression(), extras=PR).split("\n")
    assert lines[1] == "### ❌ This PR raises LLM cost by +\\$0.0200 per test run (+65.2%)"
    assert lines[3] == "❌ 1 function over the limit · ✅ 1 function unchanged"
    traffic = render_markdown(scenario_one_regression(), extras=replace(PR, traffic=TRAFFIC)).split("\n")
    # the per-call change of app.summarize ($0.0300 -> $0.0500) times 30,000 calls a month
    assert traffic[1].endswith("— +\\$600.00/month at configured traffic")


def test_no_traffic_no_projection():
    for scenario in (scenario_one_regression, scenario_no_baseline, scenario_new_and_removed):
        text = render_markdown(scenario(), extras=PR)
        assert "month" not in text


def test_token_breakdowns_only_when_non_zero():
    text = render_markdown(scenario_one_regression(), extras=PR)
    assert "in 10,000 → 18,000 · out 500" in text
    assert "cached" not in text and "reasoning" not in text and "cache write" not in text
    assert "cached 1,000 → 500" in render_markdown(scenario_regressions())


def test_long_names_shortened_in_the_middle_full_name_in_the_detail():
    key = "app.pipeline.stage_00001." + "x" * 80 + ".end"
    cell = name_cell(key, "🔺")
    assert cell.startswith("<details><summary>🔺 app.pipeline.stage\\_000") and "…" in cell
    assert cell.endswith(f"{md(key)}</details>") and "|" not in cell
    assert name_cell("app.short") == "app.short"


def test_golden_many_rows_truncated_within_comment_limit():
    text = render_markdown(scenario_many_rows(), max_chars=COMMENT_MAX_CHARS, extras=PR)
    assert len(text) <= COMMENT_MAX_CHARS < 65_536
    assert "Some rows were left out" in text and "more rows not shown" in text
    assert text.index("### ") < text.index("**Over a level**") < text.index("<details>")
    assert_tables_intact(text)
    assert_narrow(text)
    check_golden("ci_report_many_rows.md", text)


def test_golden_truncated():
    d = scenario_many()
    text = render_markdown(d, max_chars=6000)
    assert len(text) <= 6000
    assert "Some rows were left out" in text and "more rows not shown" in text
    assert_tables_intact(text)
    check_golden("ci_report_truncated.md", text)


@pytest.mark.parametrize("cap", [2500, 4000, 9000, 20000, 65000])
def test_caps_cut_whole_rows_only(cap):
    d = scenario_many()
    full = render_markdown(d)
    text = render_markdown(d, max_chars=cap)
    assert len(text) <= cap
    assert_tables_intact(text)
    full_lines = set(full.split("\n"))
    # every table row kept is a row of the full report, whole
    for block in tables(text):
        for line in block:
            assert line in full_lines or "not shown" in line
    b = render_markdown(d, max_bytes=cap)
    assert len(b.encode()) <= cap


def test_unchanged_rows_collapsed_and_changed_first():
    text = render_markdown(scenario_regressions())
    by_fn = text.split("#### By function")[1].split("#### By test")[0]
    changed, _, unchanged = by_fn.partition("<details>")
    assert "app.classify" not in changed and "app.classify" in unchanged
    assert changed.index("app.summarize") < changed.index("app.legacy")
    assert "<summary>1 unchanged function</summary>" in by_fn


NAMES = st.text(
    alphabet=st.one_of(st.sampled_from(list("|`<>&\r\n\t\\*_[]#$@%:,~!\u2028\u0085\x0b")),
                       st.characters(blacklist_categories=("Cs",))),
    min_size=1, max_size=25,
)


@given(st.lists(NAMES, min_size=1, max_size=6, unique=True), st.lists(NAMES, min_size=1, max_size=4, unique=True))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_name_keeps_tables_intact(fn_names, test_names):
    base = build_side(priced(*(g(f, 1000, test=t) for f in fn_names for t in test_names[:1])), "b")
    cur = build_side(priced(*(g(f, 1500, test=t, model=t) for f in fn_names for t in test_names)), "c")
    d = compute(cur, base, Thresholds(), "v", reproduce="tokenspy diff 'a|b' c")
    text = render_markdown(d)
    assert_tables_intact(text)
    for name in fn_names + test_names:
        cell = md(name)
        assert "|" not in cell and "\n" not in cell and "\r" not in cell and "<" not in cell
        assert len(cell.splitlines()) <= 1
    n_rows = sum(len(block) - 2 for block in tables(text))
    assert n_rows >= len(fn_names) + len(test_names)


def test_md_escapes():
    assert md("a|b") == "a&#124;b"
    assert md("<script>&") == "&lt;script&gt;&amp;"
    assert md("`x`") == "&#96;x&#96;"
    assert md("@team") == "&#64;team"
    assert md("a\nb\r") == "a\\\\nb\\\\r"
    assert md("*_[x]_*") == "\\*\\_\\[x\\]\\_\\*"
    assert md("$1 $2") == "\\$1 \\$2"


def test_code_span_fences_backticks():
    assert code_span("tokenspy diff a.db") == "`tokenspy diff a.db`"
    assert code_span("a`b") == "``a`b``"
    assert code_span("`a") == "`` `a ``"
