"""Workflow-command injection (issue 19, item 6): under ``GITHUB_ACTIONS=true`` nothing tokenspy
prints from untrusted names (functions, models, tests, files) is taken by the runner for a
workflow command. Every output path runs on a DB full of hostile names; a model of the runner's
parser reads what was printed and must see no command but tokenspy's own."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenspy import store
from tokenspy.cli import main
from tokenspy.record import CallRecord

MARK = "PWNED"
PAYLOADS = [
    "%", "\r", "\n", "::error::", "::add-mask::", "##[set-output name=x]", "##[error]", "ghadelimiter_1",
    "\x1b[31m", "\u202e", "\u2066", "\u2069", "\u202a", " ::warning file=x::", "\r\n::notice::", "%0A::error::",
]
ALLOWED = {"warning", "error", "notice", "stop-commands"}
_COMMAND = re.compile(r"^\s*::([A-Za-z][A-Za-z-]*)(?: [^:]*)?::(.*)$")


def runner_commands(text: str) -> list[str]:
    """The workflow commands a runner would execute in ``text``: ``::name …::`` at a line start
    after blanks, ``##[name …]`` anywhere in a line, none between ``::stop-commands::T`` and
    ``::T::``. Lines break at LF and CR."""
    seen: list[str] = []
    stopped: str | None = None
    for line in re.split(r"\r\n|\r|\n", text):
        if stopped is not None:
            if line.strip() == f"::{stopped}::":
                stopped = None
            continue
        m = _COMMAND.match(line)
        if m:
            seen.append(line)
            if m.group(1).lower() == "stop-commands":
                stopped = m.group(2)
        if "##[" in line:
            seen.append(line)
    return seen


def hostile(n: int, pieces: list[str]) -> str:
    return f"fn{n}{MARK}" + f"{MARK}".join(pieces) + MARK


def make_dbs(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    base, cur = tmp_path / "base.db", tmp_path / "cur.db"
    for db, tokens in ((base, 100), (cur, 5000)):
        if db.exists():
            db.unlink()
        store.write_records(db, [
            CallRecord(name, f"gpt-4o{name}", "openai", tokens, 10, 0.0, 1.0, time.time(), call_stack=[name],
                       test_id=f"tests/test_x.py::test_{name}", source_file=f"src/{name}.py", source_line=3,
                       run_id="r1")
            for name in names])
    return cur, base


OUTPUTS = [
    ["diff", "{cur}", "{base}"],
    ["diff", "{cur}", "{base}", "--format", "json"],
    ["diff", "{cur}", "{base}", "--format", "markdown"],
    ["diff", "{cur}", "{base}", "--fail-on-regression"],
    ["history", "--db", "{cur}"],
    ["report", "--db", "{cur}"],
]


def check(out: str) -> None:
    for line in runner_commands(out):
        name = _COMMAND.match(line)
        assert name is not None and name.group(1).lower() in ALLOWED, line
        assert MARK not in line.split("::")[1], line  # properties are ours (file, line, title)
        if name.group(1).lower() != "stop-commands":
            # an annotation's message holds names, escaped: never a raw line break or command
            assert "\n" not in line and "\r" not in line


@pytest.mark.parametrize("argv", OUTPUTS)
def test_every_output_path_is_inert(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out.txt"))
    cur, base = make_dbs(tmp_path, [hostile(i, [p]) for i, p in enumerate(PAYLOADS)])
    main([a.format(cur=cur, base=base) for a in argv])
    out, err = capsys.readouterr()
    check(out)
    check(err)
    if "json" in argv:
        json.loads(out)  # still pure JSON


@given(st.lists(st.lists(st.sampled_from(PAYLOADS), min_size=1, max_size=4), min_size=1, max_size=4))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_names_never_make_a_command(tmp_path, monkeypatch, capsys, pieces):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out.txt"))
    cur, base = make_dbs(tmp_path, [hostile(i, p) for i, p in enumerate(pieces)])
    for argv in OUTPUTS:
        main([a.format(cur=cur, base=base) for a in argv])
        out, err = capsys.readouterr()
        check(out)
        check(err)


def test_the_parser_model_sees_what_a_runner_would(capsys):
    assert runner_commands("x\n  ::error::boom\n") == ["  ::error::boom"]
    assert runner_commands("a ##[set-output name=x]y") == ["a ##[set-output name=x]y"]
    assert runner_commands("::stop-commands::T\n::error::no\n::T::\n::notice::yes") == [
        "::stop-commands::T", "::notice::yes"]
    assert runner_commands("ok\r::add-mask::secret") == ["::add-mask::secret"]


def test_pytest_terminal_summary_is_inert(pytester, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    for name in ("TOKENSPY_DB", "TOKENSPY_RUN_ID", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    pytester.syspathinsert(str(Path(__file__).resolve().parents[1]))
    model = "gpt-4o" + "".join(PAYLOADS) + MARK
    pytester.makepyfile(test_hostile=f"""
        import warnings
        from wire import Wire, openai_clients

        def test_call():
            warnings.simplefilter("ignore")
            openai_clients(Wire())[0].chat.completions.create(model={model!r}, messages=[])
    """)
    result = pytester.runpytest("--tokenspy=u.db")
    result.assert_outcomes(passed=1)
    text = "\n".join(result.outlines)
    assert MARK in text  # the hostile model is in the summary, inside stop-commands
    check(text)


def test_bidi_controls_are_shown_escaped_and_urls_are_not_linked(tmp_path, monkeypatch, capsys):
    """Item 8: a name with bidi overrides is shown with them escaped in every report (Markdown,
    text, HTML); a bare URL in a name is not turned into a link by GitHub's Markdown."""
    from tokenspy.ci import annotate_cost_diff
    from tokenspy.ci.markdown import render_markdown
    from tokenspy.ci.text import render_text as diff_text
    from tokenspy.reporting.html import render_html
    from tokenspy.reporting.text import render_text as report_text

    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    names = ["fn_\u202eevil\u202c_name", "see https://evil.example/x", "go www.evil.example now", "\u2066iso\u2069"]
    cur, base = make_dbs(tmp_path, names)
    d = annotate_cost_diff(cur, base, output=None, pyproject=False)
    records = store.load_records(cur)
    outputs = {"markdown": render_markdown(d), "diff text": diff_text(d), "report text": report_text(records),
               "html": render_html(records)}
    bidi = [chr(c) for c in (0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069)]
    for label, text in outputs.items():
        assert not any(c in text for c in bidi), label
    assert "\\u202e" in outputs["markdown"] and "\\u202e" in outputs["diff text"] and "\\u202e" in outputs["html"]
    md = outputs["markdown"]
    assert "https://evil" not in md and "www.evil" not in md
    assert "evil.example" in md  # still shown, as text
