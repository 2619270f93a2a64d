"""GitHub Actions plumbing: workflow-command annotations, the job summary and step outputs.

Escaping follows actions/toolkit (packages/core/src/command.ts) exactly: a message escapes
``%``, CR and LF; a property value additionally ``:`` and ``,``. Every name in a command comes
from user code, so an unescaped newline would let a function name inject its own workflow
command: that is a security bug, and the reason nothing is written to stdout unescaped while
commands are live (``stop_commands`` brackets the human-readable report).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from tokenspy.ci import fmt
from tokenspy.ci.markdown import COMMENT_MAX_CHARS, STEP_SUMMARY_MAX_BYTES, Extras, render_markdown
from tokenspy.ci.model import CostDiff, DiffRow
from tokenspy.ci.testloc import test_line
from tokenspy.textsafe import BIDI, visible

MAX_PER_LEVEL = 10  # GitHub shows 10 annotations per level per step and drops the rest


def escape_data(value: object) -> str:
    text = str(value)
    if not text.isascii():  # a lone surrogate cannot be written to the runner's UTF-8 stdout
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: object) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def unescape_data(value: str) -> str:
    """Inverse of ``escape_data`` (what the runner does); for tests and debugging."""
    return value.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def unescape_property(value: str) -> str:
    return unescape_data(value.replace("%2C", ",").replace("%3A", ":"))


def describe_command(line: str) -> str:
    """A workflow command as a person reads it (``error app.py:12: message``), for a terminal."""
    head, _, message = line[2:].partition("::")
    name, _, props = head.partition(" ")
    values = dict(p.split("=", 1) for p in props.split(",") if "=" in p) if props else {}
    where = unescape_property(values.get("file", ""))
    if where and values.get("line"):
        where += f":{values['line']}"
    return f"{name}{' ' + where if where else ''}: {unescape_data(message)}"


def command(name: str, message: object = "", **properties: object) -> str:
    """One workflow command line, e.g. ``::warning file=a.py,line=3,title=t::msg``."""
    props = ",".join(f"{k}={escape_property(v)}" for k, v in properties.items() if v is not None and v != "")
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def enabled(flag: bool | None = None) -> bool:
    """``flag`` if given, else whether we run under GitHub Actions."""
    return flag if flag is not None else os.environ.get("GITHUB_ACTIONS") == "true"


def repo_root(cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """``$GITHUB_WORKSPACE``, else the top of the git work tree around ``cwd``."""
    ws = os.environ.get("GITHUB_WORKSPACE")
    if ws:
        return Path(ws)
    here = Path(cwd or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / ".git").exists():
            return d
    return None


def repo_relative(file: str, root: Path | None) -> str | None:
    """The path GitHub needs for ``file=``: relative to the repository root, ``/``-separated.

    A relative stored path is already relative to the git root (the recorder stores it so) and
    stays; an absolute one outside ``root`` gets no location rather than a wrong one."""
    p = Path(file)
    if not p.is_absolute():
        return p.as_posix()
    if root is None:
        return None
    for a, b in ((p, root), (p.resolve(), root.resolve())):
        try:
            return a.relative_to(b).as_posix()
        except ValueError:
            continue
    return None


def _describe(row: DiffRow) -> str:
    what = "total" if row.kind == "total" else f"{row.kind} {row.key}"
    base = fmt.usd(row.baseline.cost_usd) if row.baseline is not None else "$0 (new)"
    cur = fmt.usd(row.current.cost_usd) if row.current is not None else "$0"
    return f"{what}: {base} → {cur} ({fmt.signed_usd(row.delta_usd)}, {fmt.pct(row)})"


def annotations(d: CostDiff, root: Path | None = None) -> list[str]:
    """Commands for the counted rows: regressions at ``error`` level when the verdict fails,
    else (and warn-level increases always) at ``warning``; the top ``MAX_PER_LEVEL`` of each
    level by $ impact, then ONE ``notice`` summing up the rest. The summary is at another level
    so that the per-level cap cannot drop it."""
    def rank(rows: list[DiffRow]) -> list[DiffRow]:
        return sorted(rows, key=lambda r: (-r.delta_usd, r.kind != "total", r.kind, r.key))

    if d.verdict == "fail":
        levels = [("error", rank(d.regressions)), ("warning", rank(d.warnings))]
    else:
        levels = [("warning", rank([*d.regressions, *d.warnings]))]
    lines = []
    rest: list[DiffRow] = []
    per_run = " per run" if d.mode == "noise" else ""
    for level, ranked in levels:
        for r in ranked[:MAX_PER_LEVEL]:
            file = line = None
            if r.location is not None:
                file = repo_relative(r.location.file, root)
                line = r.location.line if file is not None else None
                if file is not None and line is None and r.kind == "test":
                    line = test_line(r.key, file, root)
            what = "cost regression" if r.regression else "cost increase over the warn threshold"
            title = f"tokenspy: total LLM {what}" if r.kind == "total" else f"tokenspy: {what} in {r.key}"
            message = f"{_describe(r)}{per_run}; over threshold: {'; '.join(r.reasons)}"
            lines.append(command(level, message, file=file, line=line, title=title))
        rest += ranked[MAX_PER_LEVEL:]
    if rest:
        shown = ", ".join(r.key for r in rest[:20]) + (", …" if len(rest) > 20 else "")
        lines.append(command(
            "notice",
            f"{len(rest)} more cost increase{'s' if len(rest) != 1 else ''} over a threshold "
            f"({fmt.signed_usd(sum(r.delta_usd for r in rest))} in all), see the job summary: {shown}",
            title=f"tokenspy: {len(rest)} more cost increases",
        ))
    return lines


@contextmanager
def stop_commands(stream: TextIO) -> Iterator[None]:
    """Print untrusted text with workflow commands turned off (``::stop-commands::``)."""
    token = f"tokenspy-{uuid.uuid4().hex}"
    stream.write(f"::stop-commands::{token}\n")
    try:
        yield
    finally:
        stream.write(f"::{token}::\n")


_BIDI = {c: visible(c) for c in BIDI}


def inert_json(value: object) -> str:
    """JSON that stays pure JSON on stdout and that no runner takes for a workflow command: every
    control character is escaped by the encoder, so no line starts with ``::``, and the legacy
    ``##[command]`` form, which the runner finds anywhere in a line, and bidi controls are written
    as ``\\u`` escapes (they can only occur inside strings, where the escape means the same)."""
    text = json.dumps(value, indent=2, ensure_ascii=False).replace("##[", "##\\u005b")
    return text.translate(_BIDI)


@contextmanager
def guarded(stream: TextIO, on: bool | None = None) -> Iterator[None]:
    """Under GitHub Actions, what is printed inside holds untrusted text (function, model and test
    names; paths): the runner must not take any of it for a workflow command."""
    if enabled(on):
        with stop_commands(stream):
            yield
    else:
        yield


def append_step_summary(markdown_for: Callable[[int], str], path: str | os.PathLike[str]) -> int:
    """Append the report to ``$GITHUB_STEP_SUMMARY`` within the 1 MiB a step may write (what the
    step already wrote counts). Returns the bytes written."""
    p = Path(path)
    try:
        used = p.stat().st_size
    except OSError:
        used = 0
    budget = STEP_SUMMARY_MAX_BYTES - used - 1
    if budget <= 0:
        return 0
    text = markdown_for(budget)
    if not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    if len(data) > budget:
        return 0
    with open(p, "ab") as fh:
        fh.write(data)
    return len(data)


def _heredoc(name: str, value: str) -> str:
    # actions/toolkit's prepareKeyValueMessage: a random delimiter that is in neither part.
    while True:
        delim = f"ghadelimiter_{uuid.uuid4()}"
        if delim not in name and delim not in value:
            return f"{name}<<{delim}\n{value}\n{delim}\n"


def write_outputs(values: Sequence[tuple[str, str]], path: str | os.PathLike[str]) -> None:
    with open(path, "a", encoding="utf-8", newline="\n") as fh:
        for name, value in values:
            fh.write(_heredoc(name, value))


def write_report_file(markdown: str) -> str:
    """The report in a file for later steps (``report-path``): in ``$RUNNER_TEMP`` when set.
    Capped to fit a PR comment, which is what the next step does with it."""
    directory = os.environ.get("RUNNER_TEMP") or tempfile.gettempdir()
    fd, name = tempfile.mkstemp(prefix="tokenspy-report-", suffix=".md", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(markdown)
    return name


def outputs(d: CostDiff, report_path: str) -> list[tuple[str, str]]:
    t = d.total
    cur = t.current.cost_usd if t.current is not None else 0.0
    base = t.baseline.cost_usd if t.baseline is not None else None
    return [
        ("current-total-usd", f"{cur:.6f}"),
        ("baseline-total-usd", "" if base is None else f"{base:.6f}"),
        ("delta-usd", "" if base is None else f"{t.delta_usd:.6f}"),
        ("delta-pct", "" if t.delta_pct is None else f"{t.delta_pct:.2f}"),
        ("regressions", str(len(d.regressions))),
        ("warnings", str(len(d.warnings))),
        ("verdict", d.verdict),
        ("accepted", "true" if d.accepted_by else "false"),
        ("report-path", report_path),
    ]


def publish(d: CostDiff, stream: TextIO, root: Path | None = None, extras: Extras | None = None,
            tag: str = "") -> None:
    """Everything the Actions integration does after the diff: annotations on ``stream``,
    the job summary, the report file and the step outputs (the env files that are set)."""
    for line in annotations(d, root if root is not None else repo_root()):
        stream.write(line + "\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        append_step_summary(lambda budget: render_markdown(d, max_bytes=budget, extras=extras, tag=tag), summary)
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        report_path = write_report_file(render_markdown(d, max_chars=COMMENT_MAX_CHARS, extras=extras, tag=tag))
        write_outputs(outputs(d, report_path), out)
