"""Workflow commands (escaping, one line each, ranking and cap), step outputs, job summary."""

from __future__ import annotations

import os
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenspy.ci import github
from tokenspy.ci.diff import build_side, compute
from tokenspy.ci.query import Group
from tokenspy.ci.rates import Rates
from tokenspy.ci.thresholds import Thresholds

RATES = Rates(1e-6, 1e-7, 1e-6, 2e-6, 2e-6, 0.0)
NASTY = st.text(
    alphabet=st.one_of(st.sampled_from(list("%:,\r\n|`<>&@*_[]#$\\=\u2028\x00\t ")),
                       st.characters(blacklist_categories=("Cs",))),
    min_size=1, max_size=30,
)


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """What the runner does with one line: ``::name k=v,k=v::message``, then unescape."""
    assert line.startswith("::")
    head, sep, message = line[2:].partition("::")
    assert sep
    name, _, props = head.partition(" ")
    out = {}
    if props:
        for part in props.split(","):
            k, eq, v = part.partition("=")
            assert eq
            out[k] = github.unescape_property(v)
    return name, out, github.unescape_data(message)


def regress(names: list[str], *, tests: bool = False, src: str | None = "src/app.py", **th):
    """A diff where every name is a new function (or test) costing 1000 tokens * its rank."""
    cur = build_side([(Group(n if not tests else "f", n if tests else None, "m", "p", "r", 0, 1,
                             1000 * (i + 1), 0, 0, 0, 0, src, i + 1), RATES) for i, n in enumerate(names)], "c")
    base = build_side([(Group("other", None, "m", "p", "r", 0, 1, 10**9, 0, 0, 0, 0, None, None), RATES)], "b")
    return compute(cur, base, Thresholds(**th), "t")


@given(st.lists(NASTY, min_size=1, max_size=14, unique=True), st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_annotation_is_one_line_and_round_trips(names, fail):
    d = regress(names, fail_on_regression=fail)
    fn_regs = [r for r in d.regressions if r.kind == "function"]
    assert len(fn_regs) == len(names)
    lines = github.annotations(d, root=Path("/work"))
    expected = min(len(d.regressions), github.MAX_PER_LEVEL) + (len(d.regressions) > github.MAX_PER_LEVEL)
    assert len(lines) == expected
    for line in lines:
        assert "\n" not in line and "\r" not in line  # the runner splits on these only
    parsed = [parse_command(line) for line in lines]
    level = "error" if fail else "warning"
    top = parsed[: github.MAX_PER_LEVEL]
    assert {p[0] for p in top} == {level}
    ranked = sorted(d.regressions, key=lambda r: -r.delta_usd)[: github.MAX_PER_LEVEL]
    for (_, props, message), r in zip(top, ranked, strict=True):
        if r.kind == "function":
            assert props["title"] == f"tokenspy: cost regression in {r.key}"
            assert message.startswith(f"function {r.key}: ")
            assert props["file"] == "src/app.py" and props["line"] == str(r.location.line)
    if len(parsed) > github.MAX_PER_LEVEL:
        name, props, message = parsed[-1]
        assert name == "notice" and message.startswith(f"{len(d.regressions) - github.MAX_PER_LEVEL} more")


def test_escaping_matches_actions_toolkit():
    assert github.escape_data("a%b\r\nc:d,e") == "a%25b%0D%0Ac:d,e"
    assert github.escape_property("a%b\r\nc:d,e") == "a%25b%0D%0Ac%3Ad%2Ce"
    line = github.command("warning", "50% more\n::error::x", file="a,b:c.py", line=3, title="t")
    assert line == "::warning file=a%2Cb%3Ac.py,line=3,title=t::50%25 more%0A::error::x"
    assert github.command("notice", "m") == "::notice::m"


def test_top_ten_by_impact_and_one_summary():
    names = [f"fn{i:02d}" for i in range(25)]
    d = regress(names)
    lines = github.annotations(d)
    assert len(lines) == 11
    titles = [parse_command(x)[1]["title"] for x in lines[:10]]
    # biggest $ first (the total went down: the baseline's big function is gone)
    assert titles == [f"tokenspy: cost regression in fn{i}" for i in range(24, 14, -1)]
    name, _, message = parse_command(lines[10])
    assert name == "notice" and message.startswith("15 more cost increases over a threshold") and "fn00" in message
    assert "fn15" not in message


def test_file_paths_relative_to_repo_root(tmp_path):
    root = tmp_path / "repo"
    assert github.repo_relative("src/a.py", root) == "src/a.py"
    assert github.repo_relative(str(root / "src" / "a.py"), root) == "src/a.py"
    assert github.repo_relative("/elsewhere/a.py", root) is None
    assert github.repo_relative("/elsewhere/a.py", None) is None
    d = regress(["f"], src=str(root / "pkg" / "mod.py"))
    props = [parse_command(x)[1] for x in github.annotations(d, root)]
    assert {"file": "pkg/mod.py", "line": "1", "title": "tokenspy: cost regression in f"} in props
    # outside the root: no file= rather than a wrong one
    d = regress(["f"], src="/other/mod.py")
    assert all("file" not in parse_command(x)[1] for x in github.annotations(d, root))


def test_repo_root_prefers_github_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    assert github.repo_root() == tmp_path
    monkeypatch.delenv("GITHUB_WORKSPACE")
    (tmp_path / "r" / ".git").mkdir(parents=True)
    (tmp_path / "r" / "sub").mkdir()
    assert github.repo_root(tmp_path / "r" / "sub") == (tmp_path / "r").resolve()


def parse_outputs(text: str) -> dict[str, str]:
    out = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines) and lines[i]:
        m = re.fullmatch(r"([\w-]+)<<(\S+)", lines[i])
        assert m, lines[i]
        end = lines.index(m.group(2), i + 1)
        out[m.group(1)] = "\n".join(lines[i + 1:end])
        i = end + 1
    return out


@given(st.text(max_size=50))
@settings(max_examples=100)
def test_outputs_heredoc_round_trip(value):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "out")
        github.write_outputs([("a", value), ("b", "x")], path)
        text = Path(path).read_bytes().decode()
    parsed = parse_outputs(text)
    assert parsed == {"a": value, "b": "x"}


def test_step_summary_respects_what_the_step_already_wrote(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_bytes(b"x" * (github.STEP_SUMMARY_MAX_BYTES - 5000))
    budgets = []

    def render(budget: int) -> str:
        budgets.append(budget)
        return "y" * (budget - 1)

    written = github.append_step_summary(render, summary)
    assert budgets == [4999] and written == 4999
    assert summary.stat().st_size <= github.STEP_SUMMARY_MAX_BYTES
    assert github.append_step_summary(render, summary) == 0  # full: nothing more


def test_stop_commands_brackets_untrusted_text():
    import io

    buf = io.StringIO()
    with github.stop_commands(buf):
        buf.write("::error::not a command\n")
    first, body, last = buf.getvalue().splitlines()
    token = first.removeprefix("::stop-commands::")
    assert len(token) > 20 and last == f"::{token}::" and body == "::error::not a command"


def test_a_test_annotation_carries_the_line_of_its_def(tmp_path):
    """A test is known by its node id: its annotation gets ``line=`` from the file's ``def``
    (a class method and a parametrized id included); a test that cannot be found gets no line."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text(
        "import pytest\n\n\nclass TestA:\n    @pytest.mark.parametrize('x', [1])\n    def test_in(self, x):\n"
        "        pass\n\n\ndef test_top():\n    pass\n")
    ids = ["tests/test_a.py::TestA::test_in[1]", "tests/test_a.py::test_top", "tests/test_a.py::test_gone"]
    # f costs the same in all, its tests shift it around: the tests' rows are what changed
    def side(tokens: list[int], label: str):
        return build_side([(Group("f", t, "m", "p", "r", 0, 1, n, 0, 0, 0, 0, None, None), RATES)
                           for t, n in zip(ids, tokens, strict=True)], label)

    cur, base = side([1000, 10, 1000], "c"), side([10, 2000, 10], "b")
    d = compute(cur, base, Thresholds(max_increase_pct=10), "t")
    props = {parse_command(x)[1].get("title", ""): parse_command(x)[1] for x in github.annotations(d, tmp_path)}
    tests = {t: p for t, p in props.items() if "test_a.py::" in t}
    assert tests, props
    for title, p in tests.items():
        assert p["file"] == "tests/test_a.py"
        if "test_in" in title:
            assert p["line"] == "6"
        elif "test_top" in title:
            assert p["line"] == "10"
        else:
            assert "line" not in p
