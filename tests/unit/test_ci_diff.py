"""The pure diff: roll-ups, change kinds, thresholds, overrides, noise vs exact mode."""

from __future__ import annotations

import math

import pytest

from tokenspy.ci.diff import build_side, compute
from tokenspy.ci.query import Group
from tokenspy.ci.rates import Rates
from tokenspy.ci.thresholds import Override, Thresholds

# $1 per 1M input tokens, $2 per 1M output: a call of (1000 in, 0 out) costs exactly $0.001.
RATES = Rates(input=1e-6, cached=0.1e-6, cache_write=1.25e-6, output=2e-6, reasoning=2e-6, per_call=0.0)


def g(fn: str, inp: int, out: int = 0, *, test: str | None = None, model: str = "m", run: str | None = "r1",
      calls: int = 1, src: str | None = None, line: int | None = None) -> Group:
    return Group(fn, test, model, "p", run, 0, calls, inp, 0, 0, out, 0, src, line)


def side(*groups: Group, rates: Rates | None = RATES, label: str = "x"):
    return build_side([(gr, rates) for gr in groups], label)


def diff(cur, base, **th):
    return compute(cur, base, Thresholds(**th), "test-table")


def row(d, kind, key):
    return next(r for r in d.rows(kind) if r.key == key)


def test_change_kinds_and_totals():
    base = side(g("same", 1000), g("up", 1000), g("down", 1000), g("gone", 1000))
    cur = side(g("same", 1000), g("up", 1500), g("down", 500), g("fresh", 1000))
    d = diff(cur, base)
    kinds = {r.key: r.change for r in d.functions}
    assert kinds == {"same": "unchanged", "up": "increased", "down": "decreased", "gone": "removed",
                     "fresh": "new"}
    assert d.total.baseline.cost_usd == pytest.approx(0.004)
    assert d.total.current.cost_usd == pytest.approx(0.004)
    assert d.total.change == "unchanged" and not d.total.regression
    # changed rows first, by |$ impact|; unchanged last
    assert [r.key for r in d.functions][-1] == "same"
    assert row(d, "function", "up").delta_pct == pytest.approx(50.0)
    assert row(d, "function", "fresh").delta_pct is None
    assert {r.key for r in d.regressions} == {"up", "fresh"}  # new counts as an increase from zero
    assert d.mode == "exact" and d.verdict == "pass"


def test_verdict_fails_only_with_fail_on_regression():
    base, cur = side(g("f", 1000)), side(g("f", 2000))
    assert diff(cur, base).verdict == "pass"
    d = diff(cur, base, fail_on_regression=True)
    # the total and the model went up with the function: context, not two more regressions
    assert d.verdict == "fail" and [r.kind for r in d.regressions] == ["function"]
    assert d.total.level == "fail" and row(d, "model", "m").level == "fail"


@pytest.mark.parametrize(("new_input", "pct", "regressed"), [
    (1100, 10.0, False),  # exactly at the threshold: not over it
    (1101, 10.0, True),
    (1200, 25.0, False),
    (1300, 25.0, True),
    (5000, math.inf, False),  # an infinite percentage turns the relative threshold off
])
def test_relative_threshold(new_input, pct, regressed):
    d = diff(side(g("f", new_input)), side(g("f", 1000)), max_increase_pct=pct)
    assert row(d, "function", "f").regression is regressed
    assert d.total.level == ("fail" if regressed else "")


@pytest.mark.parametrize(("usd", "regressed"), [(0.0, True), (0.0004, True), (0.0005, False), (0.01, False)])
def test_absolute_threshold_must_also_be_exceeded(usd, regressed):
    # +$0.0005 (+50%): over 10%; regression only if also over the absolute threshold when set
    d = diff(side(g("f", 1500)), side(g("f", 1000)), max_increase_usd=usd)
    assert row(d, "function", "f").regression is regressed


def test_new_key_against_absolute_threshold():
    base = side(g("old", 1000))
    small = diff(side(g("old", 1000), g("new", 100)), base, max_increase_usd=0.001)
    assert row(small, "function", "new").change == "new" and not row(small, "function", "new").regression
    big = diff(side(g("old", 1000), g("new", 5000)), base, max_increase_usd=0.001)
    assert row(big, "function", "new").regression
    assert "from $0" in row(big, "function", "new").reasons[0]


def test_total_only_increase():
    # Every key +5%: nothing regresses at 10%. With 4% globally but 10% for every key (the
    # functions and the model "m" by override), only the total is over its threshold.
    names = [f"f{i}" for i in range(5)]
    base = side(*(g(n, 1000) for n in names))
    cur = side(*(g(n, 1050) for n in names))
    assert not diff(cur, base).regressions
    th = dict(max_increase_pct=4.0, overrides=(Override("f*", max_increase_pct=10.0),
                                              Override("m", max_increase_pct=10.0)))
    d = diff(cur, base, **th)
    assert [r.kind for r in d.regressions] == ["total"]
    assert d.total.delta_usd == pytest.approx(0.00025)


def test_glob_overrides_last_match_wins():
    th = Thresholds(overrides=(
        Override("tests/test_slow.py::*", max_increase_pct=50.0),
        Override("tests/test_slow.py::test_very*", max_increase_pct=200.0),
    ))
    assert th.for_key("tests/test_slow.py::test_a").max_increase_pct == 50.0
    assert th.for_key("tests/test_slow.py::test_very_slow").max_increase_pct == 200.0
    assert th.for_key("tests/test_fast.py::test_a").max_increase_pct == 10.0
    base = side(g("f", 1000, test="tests/test_slow.py::test_a"), g("h", 1000, test="tests/test_fast.py::t"))
    cur = side(g("f", 1400, test="tests/test_slow.py::test_a"), g("h", 1400, test="tests/test_fast.py::t"))
    d = compute(cur, base, th, "t")
    assert not row(d, "test", "tests/test_slow.py::test_a").level  # +40% < 50%
    assert row(d, "test", "tests/test_fast.py::t").level == "fail"  # +40% > 10%
    assert row(d, "test", "tests/test_slow.py::test_a").limits.max_increase_pct == 50.0


def test_override_keeps_unset_fields():
    th = Thresholds(max_increase_usd=0.5, overrides=(Override("a*", max_increase_pct=50.0),))
    lim = th.for_key("abc")
    assert (lim.max_increase_pct, lim.max_increase_usd) == (50.0, 0.5)


def test_tests_table_excludes_null_test_ids_and_keeps_locations():
    cur = side(g("f", 1000, test=None, src="src/a.py", line=3),
               g("tests/t.py::test_x", 1000, test="tests/t.py::test_x", src="tests/t.py", line=7),
               g("f", 1000, test="tests/t.py::test_y", src="src/a.py", line=3))
    d = diff(cur, None)
    assert {r.key for r in d.tests} == {"tests/t.py::test_x", "tests/t.py::test_y"}
    assert row(d, "function", "f").location.file == "src/a.py"
    assert row(d, "function", "f").location.line == 3
    # a test that called the model directly: its own row's location
    loc = row(d, "test", "tests/t.py::test_x").location
    assert (loc.file, loc.line) == ("tests/t.py", 7)
    # a test whose calls came from a profiled function: the file of its node id
    loc = row(d, "test", "tests/t.py::test_y").location
    assert (loc.file, loc.line) == ("tests/t.py", None)


def test_no_baseline_is_a_pass_report():
    d = diff(side(g("f", 1000)), None, fail_on_regression=True)
    assert d.verdict == "pass" and not d.regressions and not d.has_baseline
    assert all(r.change == "new" and not r.regression for r in d.functions)


def test_by_model_and_unpriced_models_listed_with_tokens():
    b = build_side([(g("f", 1000, model="priced"), RATES), (g("f", 100, model="mystery"), None)], "b")
    c = build_side([(g("f", 1000, model="priced"), RATES), (g("f", 300, model="mystery"), None)], "c")
    d = diff(c, b)
    m = row(d, "model", "mystery")
    assert m.change == "increased" and m.delta_usd == 0 and m.delta_tokens == 200 and not m.priced
    assert [r.key for r in d.unpriced_models] == ["mystery"]
    assert not m.regression  # no price, no $ increase: listed, not gated
    assert row(d, "model", "priced").change == "unchanged"


def test_sums_are_priced_per_group_with_fee_per_call():
    fee = Rates(input=1e-6, cached=0, cache_write=0, output=0, reasoning=0, per_call=0.01)
    d = diff(build_side([(g("f", 1000, calls=3), fee)], "c"), None)
    assert d.total.current.cost_usd == pytest.approx(0.001 + 0.03)
    assert d.total.current.cost_per_call == pytest.approx(0.031 / 3)


# ----------------------------------------------------------------------------------- noise


def runs(fn: str, values: list[int], prefix: str = "r", test: str = "tests/t.py::t") -> list[Group]:
    return [g(fn, v, test=test, run=f"{prefix}{i}") for i, v in enumerate(values)]


def test_noise_mode_compares_means_and_ignores_noise():
    base = side(*runs("f", [1000, 1100, 900, 1050, 950]))  # mean 1000, sd ~79 tokens
    cur = side(*runs("f", [1150, 1150, 1150], prefix="c"))  # +15%: over 10%, but < 3 sigma
    d = diff(cur, base)
    assert d.mode == "noise"
    assert d.baseline.samples == 5 and d.current.samples == 3
    r = row(d, "function", "f")
    assert r.baseline.cost_usd == pytest.approx(0.001)
    var_b = sum((v - 1000) ** 2 for v in [1000, 1100, 900, 1050, 950]) / 4
    assert r.sigma == pytest.approx(math.sqrt(4 * var_b / 6) * 1e-6)  # pooled with the current's 0
    assert r.beyond_noise is False and not r.regression
    # exact mode (one run each side) would flag the same +15%
    exact = diff(side(g("f", 1150, test="tests/t.py::t")), side(g("f", 1000, test="tests/t.py::t")))
    assert exact.mode == "exact" and row(exact, "function", "f").regression


def test_noise_mode_flags_changes_beyond_sigma_and_threshold():
    base = side(*runs("f", [1000, 1010, 990, 1005, 995]))
    cur = side(*runs("f", [1300, 1300, 1300], prefix="c"))
    r = row(diff(cur, base), "function", "f")
    assert r.beyond_noise and r.regression
    assert any("beyond noise" in s for s in r.reasons)
    # beyond noise but under the relative threshold: still not a regression
    r = row(diff(cur, base, max_increase_pct=50.0), "function", "f")
    assert r.beyond_noise and not r.regression


def test_noise_sigma_setting_and_pooling():
    base = side(*runs("f", [1000, 1100, 900, 1000]))
    cur = side(*runs("f", [1200, 1300, 1100, 1200], prefix="c"))
    loose = row(diff(cur, base), "function", "f")
    tight = row(diff(cur, base, noise_sigma=1.0), "function", "f")
    assert loose.sigma == pytest.approx(tight.sigma)
    assert loose.sigma == pytest.approx(math.sqrt(20000 / 3) * 1e-6)  # both sides' sd pooled
    assert not loose.regression and tight.regression  # +200 tokens = 2.45 sigma


def test_key_missing_from_some_runs_counts_zero_there():
    base = side(g("f", 1000, run="a", test="tests/t.py::t"), g("f", 1000, run="b", test="tests/t.py::t"),
                g("rare", 1000, run="a", test="tests/t.py::t"))
    r = row(diff(base, None), "function", "rare")
    assert r.current.cost_usd == pytest.approx(0.0005)  # mean over 2 runs


def test_deterministic_runs_make_noise_mode_exact():
    base = side(*runs("f", [1000, 1000, 1000]))
    cur = side(*runs("f", [1200, 1200, 1200], prefix="c"))
    r = row(diff(cur, base), "function", "f")
    assert r.sigma == 0 and r.beyond_noise and r.regression


def test_shards_of_one_run_are_summed_not_averaged():
    shards = side(g("f", 1000, test="tests/a.py::t1", run="s1"), g("f", 1000, test="tests/b.py::t2", run="s2"))
    assert shards.info.sharded and shards.info.samples == 1 and shards.info.runs == 2
    d = diff(shards, side(g("f", 2000, test="tests/a.py::t1")))
    assert d.mode == "exact" and row(d, "function", "f").change == "unchanged"
    # a run without tests (a script) next to a test run: not shards, repeats
    mixed = side(g("f", 1000, test="tests/a.py::t1", run="s1"), g("f", 1000, run="script"))
    assert not mixed.info.sharded and mixed.info.samples == 2
