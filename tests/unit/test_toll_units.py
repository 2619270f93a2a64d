"""track_costs building blocks: windows, the rate limiter (injected clock), argument checks, the
reporter's line and colour rules, the SQLiteStore's spend accounting."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenspy import LocalRateLimitError, track_costs
from tokenspy.record import CallRecord
from tokenspy.toll import CostReporter, RateLimiter, Spend, SQLiteStore
from tokenspy.toll.windows import calendar_start, check_reset, window_start

UTC = timezone.utc


@pytest.fixture(autouse=True)
def _isolated(tmp_path):
    """Never the user's ~/.tokenspy DB, nor another test's rate windows."""
    from tokenspy.toll import limiter, set_store

    set_store(SQLiteStore(tmp_path / "toll.db"))
    limiter.clear()
    yield
    set_store(None)
    limiter.clear()


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


# ----------------------------------------------------------------------------- windows


def test_calendar_windows_are_utc_calendar_periods():
    t = ts(2026, 3, 5, 13, 7)  # a Thursday
    assert calendar_start("daily", t) == ts(2026, 3, 5)
    assert calendar_start("weekly", t) == ts(2026, 3, 2)  # ISO week: Monday
    assert calendar_start("monthly", t) == ts(2026, 3, 1)
    assert calendar_start("all", t) == 0.0
    # a Monday's week starts that day; a Sunday's the Monday before; across a month/year boundary
    assert calendar_start("weekly", ts(2026, 3, 2, 0, 0)) == ts(2026, 3, 2)
    assert calendar_start("weekly", ts(2026, 3, 1, 23, 59)) == ts(2026, 2, 23)
    assert calendar_start("weekly", ts(2027, 1, 1, 12)) == ts(2026, 12, 28)
    assert calendar_start("monthly", ts(2026, 12, 31, 23, 59, 59)) == ts(2026, 12, 1)


def test_a_reset_starts_the_window_later_but_never_earlier():
    t = ts(2026, 3, 5, 13)
    assert window_start("daily", t, ts(2026, 3, 5, 9)) == ts(2026, 3, 5, 9)
    assert window_start("daily", t, ts(2026, 3, 4, 9)) == ts(2026, 3, 5)  # yesterday's reset: calendar
    assert window_start("monthly", t, ts(2026, 3, 3)) == ts(2026, 3, 3)
    assert window_start("all", t, ts(2026, 1, 1)) == ts(2026, 1, 1)
    assert window_start("all", t, None) == 0.0


@given(st.floats(min_value=0, max_value=4e9), st.sampled_from(["daily", "weekly", "monthly"]))
def test_window_holds_its_moment(t, period):
    start = calendar_start(period, t)
    d = datetime.fromtimestamp(start, UTC)
    assert start <= t
    assert (d.hour, d.minute, d.second, d.microsecond) == (0, 0, 0, 0)
    if period == "weekly":
        assert d.weekday() == 0 and t - start < 7 * 86400
    elif period == "monthly":
        assert d.day == 1 and datetime.fromtimestamp(t, UTC).month == d.month
    else:
        assert t - start < 86400


@pytest.mark.parametrize("bad", ["month", "Monthly", "yearly", "", 30, True, timedelta(days=1)])
def test_reset_accepts_only_the_three_periods(bad):
    with pytest.raises(ValueError, match="reset must be"):
        check_reset(bad)
    with pytest.raises(ValueError, match="reset must be"):
        track_costs(reset=bad)(lambda: None)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"project": ""}, ValueError),
        ({"project": 3}, TypeError),
        ({"model": ""}, TypeError),
        ({"max_budget": "5"}, TypeError),
        ({"max_budget": True}, TypeError),
        ({"max_budget": -1}, ValueError),
        ({"max_budget": float("nan")}, ValueError),
        ({"rate_limit": 0}, ValueError),
        ({"rate_limit": 1.5}, TypeError),
        ({"tpm_limit": True}, TypeError),
        ({"extract_usage": "model"}, TypeError),
    ],
)
def test_bad_arguments_fail_at_decoration(kwargs, error):
    with pytest.raises(error, match="track_costs"):
        track_costs(**kwargs)(lambda: None)


def test_decorating_a_non_callable_is_refused():
    with pytest.raises(TypeError, match="by keyword"):
        track_costs("my-project")  # type: ignore[call-overload]


# ----------------------------------------------------------------------------- rate limiter


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_rpm_sliding_window_and_retry_after():
    clock = Clock()
    lim = RateLimiter(clock)
    for i in range(3):
        clock.t = 1000.0 + i * 10
        lim.admit("p", rpm=3)
    clock.t = 1025.0
    with pytest.raises(LocalRateLimitError) as info:
        lim.admit("p", rpm=3)
    err = info.value
    assert (err.limit_type, err.limit_value) == ("rpm", 3)
    assert err.retry_after == pytest.approx(35.0)  # the request at t=1000 leaves at 1060
    clock.t = 1060.0  # exactly 60 s later: out of the window
    lim.admit("p", rpm=3)
    with pytest.raises(LocalRateLimitError):
        lim.admit("p", rpm=3)
    assert lim.usage("other") == (0, 0)  # per project
    lim.admit("other", rpm=3)


def test_calls_after_the_first_of_an_invocation_count_as_requests():
    clock = Clock()
    lim = RateLimiter(clock)
    lim.admit("p", rpm=3)
    lim.record("p", 10, reserved=True)  # the first call uses the admission's reservation
    lim.record("p", 10, reserved=False)  # a second call in the same invocation
    assert lim.usage("p") == (2, 20)
    lim.admit("p", rpm=3)
    with pytest.raises(LocalRateLimitError):
        lim.admit("p", rpm=3)


def test_tpm_counts_tokens_of_calls_made_and_says_when_enough_have_left():
    clock = Clock()
    lim = RateLimiter(clock)
    for i, n in enumerate((400, 300, 500)):
        clock.t = 1000.0 + i * 10
        lim.admit("p", tpm=1000)
        lim.record("p", n, reserved=True)
    clock.t = 1030.0
    with pytest.raises(LocalRateLimitError) as info:
        lim.admit("p", tpm=1000)
    assert info.value.limit_type == "tpm"
    assert info.value.limit_value == 1000
    # 1200 in the window; the 400 at t=1000 leaving makes 800 < 1000: at t=1060
    assert info.value.retry_after == pytest.approx(30.0)
    clock.t = 1060.0
    lim.admit("p", tpm=1000)
    assert lim.usage("p")[1] == 800


def test_limits_are_checked_before_the_call_with_the_module_clock(monkeypatch):
    from tokenspy.toll.limits import limiter

    clock = Clock()
    monkeypatch.setattr(limiter, "clock", clock)
    limiter.clear()
    ran = []

    @track_costs(project="unit-rpm", rate_limit=2)
    def f():
        ran.append(1)

    f()
    f()
    with pytest.raises(LocalRateLimitError) as info:
        f()
    assert len(ran) == 2  # the refused invocation did not run
    assert info.value.retry_after == pytest.approx(60.0)
    clock.t += 60.0
    f()
    assert len(ran) == 3
    limiter.clear()


# ----------------------------------------------------------------------------- reporter


def _rec(**kw) -> CallRecord:
    base = dict(function_name="chat", model="gpt-4o", provider="openai", input_tokens=1200,
                output_tokens=300, cost_usd=0.00472, duration_ms=1.0, timestamp=0.0,
                cached_input_tokens=1024)
    base.update(kw)
    return CallRecord(**base)


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_reporter_line_without_colour_off_a_tty(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = io.StringIO()
    CostReporter(stream=out).report(_rec(), Spend("app", "monthly", 0.0, 0.5), 2.0)
    line = out.getvalue()
    assert line.count("\n") == 1 and "\x1b[" not in line
    for part in ("chat", "gpt-4o", "1,200 in + 300 out", "1,024 cached", "$0.004720", "project app",
                 "$0.500000 of $2.00", "this month"):
        assert part in line


def test_reporter_colour_only_on_a_tty_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = TTY()
    CostReporter(stream=tty).report(_rec(), Spend("app", "all", 0.0, 0.5), None)
    assert "\x1b[" in tty.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    tty = TTY()
    CostReporter(stream=tty).report(_rec(), Spend("app", "all", 0.0, 0.5), None)
    assert "\x1b[" not in tty.getvalue()
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: an empty value does not disable colour
    tty = TTY()
    CostReporter(stream=tty).report(_rec(), Spend("app", "all", 0.0, 0.5), None)
    assert "\x1b[" in tty.getvalue()


def test_disabled_reporter_and_default_stream(capsys):
    CostReporter(enabled=False).report(_rec(), Spend("app", "all", 0.0), None)
    assert capsys.readouterr().err == ""
    CostReporter().report(_rec(priced=False, cost_usd=0.0), Spend("app", "all", 0.0), None)
    err = capsys.readouterr().err  # sys.stderr as it is when the line is written
    assert "unpriced" in err and "all time" in err


# ----------------------------------------------------------------------------- store accounting


def test_spend_goes_to_the_window_of_its_time_and_resets_keep_history(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    now = ts(2026, 3, 18, 12)  # Wednesday
    store.add_spend("p", 1.0, 10, at=ts(2026, 2, 27), now=now)  # last month
    store.add_spend("p", 2.0, 20, at=ts(2026, 3, 9), now=now)  # this month, last week
    store.add_spend("p", 4.0, 40, at=ts(2026, 3, 17), now=now)  # this week, yesterday
    got = store.add_spend("p", 8.0, 80, at=now, now=now)
    assert {k: v.spent_usd for k, v in got.items()} == {"all": 15.0, "monthly": 14.0, "weekly": 12.0,
                                                         "daily": 8.0}
    assert got["daily"].calls == 1 and got["all"].tokens == 150
    assert store.window("p", "weekly", at=now) == got["weekly"]
    store.reset_window("p", at=now + 60)
    later = now + 120
    for period in ("daily", "weekly", "monthly", None):
        w = store.window("p", period, at=later)
        assert (w.spent_usd, w.window_start) == (0.0, now + 60)
    # the old windows keep their totals
    assert store.window("p", "monthly", at=now).spent_usd == 14.0
    assert store.window("other", "daily", at=now).spent_usd == 0.0
    store.close()
