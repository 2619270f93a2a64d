"""Threshold resolution: arguments > pyproject > defaults; validation; overrides; --override."""

from __future__ import annotations

import math
import textwrap

import pytest

from tokenspy.ci.thresholds import Override, parse_override_flag, read_pyproject, resolve


def write(tmp_path, body: str):
    p = tmp_path / "pyproject.toml"
    p.write_text(textwrap.dedent(body))
    return p


def test_defaults_without_pyproject(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    th = resolve(pyproject=False)
    assert (th.max_increase_pct, th.max_increase_usd, th.noise_sigma, th.fail_on_regression) == (10, 0, 3, False)
    assert th.overrides == () and th.source is None


def test_pyproject_found_upwards_and_arguments_win(tmp_path, monkeypatch):
    p = write(tmp_path, """
        [tool.tokenspy.ci]
        max_increase_pct = 25
        max_increase_usd = 0.5
        noise_sigma = 2
        fail_on_regression = true

        [tool.tokenspy.ci.overrides]
        "tests/test_slow.py::*" = { max_increase_pct = 50 }
        "app.*" = { max_increase_usd = 1.5 }
    """)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    th = resolve()
    assert th.source == str(p)
    assert (th.max_increase_pct, th.max_increase_usd, th.noise_sigma, th.fail_on_regression) == (25, 0.5, 2, True)
    assert th.overrides == (Override("tests/test_slow.py::*", 50.0, None), Override("app.*", None, 1.5))
    th = resolve(max_increase_pct=5, max_increase_usd=0, noise_sigma=4, fail_on_regression=False,
                 overrides={"app.*": {"max_increase_pct": 1}})
    assert (th.max_increase_pct, th.max_increase_usd, th.noise_sigma, th.fail_on_regression) == (5, 0, 4, False)
    # argument overrides come after the file's: they win for the keys they match
    assert th.for_key("app.x").max_increase_pct == 1
    assert th.for_key("app.x").max_increase_usd == 0  # that override sets no USD: the global one


def test_nearest_pyproject_without_table_means_defaults(tmp_path, monkeypatch):
    write(tmp_path, "[tool.tokenspy.ci]\nmax_increase_pct = 99\n")
    inner = tmp_path / "pkg"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(inner)
    assert resolve().max_increase_pct == 10


@pytest.mark.parametrize(("body", "fragment"), [
    ("[tool.tokenspy.ci]\nmax_increase_pct = 'ten'\n", "max_increase_pct must be a number"),
    ("[tool.tokenspy.ci]\nmax_increase_usd = -1\n", "max_increase_usd must be a non-negative"),
    ("[tool.tokenspy.ci]\nmax_increse_pct = 3\n", "unknown key 'max_increse_pct'"),
    ("[tool.tokenspy.ci]\nfail_on_regression = 1\n", "fail_on_regression must be true or false"),
    ("[tool.tokenspy.ci.overrides]\n'x*' = 3\n", "override 'x*' must be a table"),
    ("[tool.tokenspy.ci.overrides]\n'x*' = { pct = 3 }\n", "unknown field 'pct'"),
    ("[tool.tokenspy.ci\n", "invalid TOML"),
])
def test_pyproject_errors_name_the_file_and_key(tmp_path, body, fragment):
    p = write(tmp_path, body)
    with pytest.raises(ValueError) as exc:
        read_pyproject(p)
    assert str(p) in str(exc.value) and fragment in str(exc.value)
    assert "\n" not in str(exc.value).strip()


@pytest.mark.parametrize("bad", [dict(max_increase_pct=-1), dict(max_increase_usd=math.inf),
                                 dict(noise_sigma=math.nan), dict(max_increase_pct="x")])
def test_argument_errors(bad):
    with pytest.raises(ValueError):
        resolve(pyproject=False, **bad)


def test_infinite_pct_allowed():
    assert resolve(pyproject=False, max_increase_pct=math.inf).limits.describe() == "none"


@pytest.mark.parametrize(("flag", "pattern", "entry"), [
    ("tests/test_slow.py::*=50", "tests/test_slow.py::*", {"max_increase_pct": 50.0}),
    ("app.*=50,0.25", "app.*", {"max_increase_pct": 50.0, "max_increase_usd": 0.25}),
    ("app.*=,$0.25", "app.*", {"max_increase_usd": 0.25}),
    ("a=b*=20%", "a=b*", {"max_increase_pct": 20.0}),
])
def test_override_flag(flag, pattern, entry):
    assert parse_override_flag(flag) == (pattern, entry)


@pytest.mark.parametrize("flag", ["nopattern", "=5", "x=", "x=abc", "x=5,-1"])
def test_override_flag_errors(flag):
    with pytest.raises(ValueError):
        parse_override_flag(flag)
