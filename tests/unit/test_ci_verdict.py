"""What the verdict rests on (issue 18): noise mode only on real repeats, one change one
regression, warn and fail levels and their wording."""

from __future__ import annotations

from tokenspy.ci.diff import build_side, compute
from tokenspy.ci.markdown import render_markdown
from tokenspy.ci.query import Group
from tokenspy.ci.rates import Rates
from tokenspy.ci.text import render_text
from tokenspy.ci.thresholds import Thresholds

RATES = Rates(input=1e-6, cached=0.1e-6, cache_write=1.25e-6, output=2e-6, reasoning=2e-6, per_call=0.0)


def g(fn: str, inp: int, *, test: str | None = "tests/t.py::test_a", model: str = "gpt-4o", run: str = "r1") -> Group:
    return Group(fn, test, model, "openai", run, 0, 1, inp, 0, 0, 0, 0, "app.py", 3)


def side(*groups: Group):
    return build_side([(x, RATES) for x in groups], "x")


def repeats(inputs: list[int], prefix: str) -> list[Group]:
    return [g("app.summarize", v, run=f"{prefix}{i}") for i, v in enumerate(inputs)]


def test_noise_mode_needs_three_repeats_on_each_side_and_states_n_mean_sigma():
    # two runs a side: too few to estimate a spread, so the plain thresholds decide
    d = compute(side(*repeats([1300, 1320], "c")), side(*repeats([1000, 1010], "b")), Thresholds(), "t")
    assert d.mode == "exact"
    assert [r.key for r in d.regressions] == ["app.summarize"]
    text = render_text(d)
    assert "plain thresholds" in text and "noise mode needs 3 runs of identical code on each side" in text
    # three on each side: noise mode, with n, mean and sigma of each side in the report
    d = compute(side(*repeats([1300, 1320, 1310], "c")), side(*repeats([1000, 1010, 990], "b")), Thresholds(), "t")
    assert d.mode == "noise"
    mode_line = next(line for line in render_text(d).splitlines() if line.startswith("mode:"))
    assert "baseline: n=3, mean $0.001000, σ $0.000010" in mode_line
    assert "current: n=3, mean $0.001310, σ $0.000010" in mode_line
    # three on one side only: still the plain thresholds
    assert compute(side(*repeats([1300], "c")), side(*repeats([1000, 1010, 990], "b")), Thresholds(), "t").mode \
        == "exact"


def test_one_prompt_change_is_one_regression():
    base = side(g("app.summarize", 1000), g("app.classify", 300, test="tests/t.py::test_b", model="gpt-4o-mini"))
    cur = side(g("app.summarize", 3000), g("app.classify", 300, test="tests/t.py::test_b", model="gpt-4o-mini"))
    d = compute(cur, base, Thresholds(fail_on_regression=True), "t")
    # the function, its test, its model and the total all went up by the same change
    assert [(r.kind, r.key) for r in d.regressions] == [("function", "app.summarize")]
    assert render_text(d).startswith("tokenspy: 1 cost regression, verdict fail")
    text = render_markdown(d)
    assert "### ❌ This change raises LLM cost by" in text and "\n❌ 1 function over the limit · " in text
    context = {(r.kind, r.key): r.level for r in (d.total, *d.tests, *d.models)}
    assert context[("total", "total")] == "fail" and context[("test", "tests/t.py::test_a")] == "fail"
    assert not any(r.regression for r in (d.total, *d.tests, *d.models))


def test_a_test_that_calls_more_counts_when_no_function_explains_it():
    # app.summarize serves two tests; one of them now calls it almost twice as much: +9% for
    # the function (not over 10%), +90% for that test
    a, b = "tests/t.py::test_a", "tests/t.py::test_b"
    base = side(g("app.summarize", 9000, test=a), g("app.summarize", 1000, test=b))
    cur = side(g("app.summarize", 9000, test=a), g("app.summarize", 1900, test=b))
    d = compute(cur, base, Thresholds(), "t")
    assert [(r.kind, r.key) for r in d.regressions] == [("test", "tests/t.py::test_b")]


def test_the_total_counts_only_when_no_key_does():
    base = side(*(g(f"app.f{i}", 1000, test=f"tests/t.py::test_{i}") for i in range(4)))
    cur = side(*(g(f"app.f{i}", 1080, test=f"tests/t.py::test_{i}") for i in range(4)))
    d = compute(cur, base, Thresholds(max_increase_pct=5.0, overrides=()), "t")
    assert len(d.regressions) == 4 and d.total.level == "fail" and not d.total.regression


def test_warn_and_fail_levels():
    th = Thresholds(warn_pct=5.0, max_increase_pct=25.0, fail_on_regression=True)
    base = side(g("app.summarize", 1000))
    warned = compute(side(g("app.summarize", 1100)), base, th, "t")  # +10%
    assert warned.verdict == "pass" and not warned.regressions
    assert [r.key for r in warned.warnings] == ["app.summarize"]
    assert render_text(warned).startswith(
        "tokenspy: no cost regression; 1 cost increase over the warn threshold, verdict pass")
    assert "thresholds: warn +5%, fail +25%" in render_text(warned)
    failed = compute(side(g("app.summarize", 1300)), base, th, "t")  # +30%
    assert failed.verdict == "fail" and [r.key for r in failed.regressions] == ["app.summarize"]
    quiet = compute(side(g("app.summarize", 1040)), base, th, "t")  # +4%
    assert not quiet.regressions and not quiet.warnings


def test_without_fail_on_regression_increases_are_not_called_regressions():
    base = side(g("app.summarize", 1000))
    d = compute(side(g("app.summarize", 2000)), base, Thresholds(), "t")
    head = render_text(d).splitlines()[0]
    assert head.startswith("tokenspy: 1 cost increase over the warn threshold (not failing) — ")
    assert "regression" not in head and d.verdict == "pass"
    assert "\n❌ 1 function over the limit (not failing)" in render_markdown(d)
