"""``annotate_cost_diff`` and ``compare_commits``: diff, print, and (under Actions) publish."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Literal, TextIO

from tokenspy import store
from tokenspy.ci import github
from tokenspy.ci.diff import compute
from tokenspy.ci.load import load_sides
from tokenspy.ci.markdown import Extras, render_markdown
from tokenspy.ci.model import CostDiff
from tokenspy.ci.query import Source, has_commit
from tokenspy.ci.text import render_text
from tokenspy.ci.thresholds import Thresholds, resolve

Format = Literal["text", "markdown", "json"]


def _thresholds(max_increase_pct: float | None, max_increase_usd: float | None, noise_sigma: float | None,
                fail_on_regression: bool | None, overrides: Mapping[str, Mapping[str, float]] | None,
                pyproject: str | os.PathLike[str] | bool | None, warn_pct: float | None = None,
                warn_usd: float | None = None) -> Thresholds:
    return resolve(max_increase_pct=max_increase_pct, max_increase_usd=max_increase_usd,
                   noise_sigma=noise_sigma, fail_on_regression=fail_on_regression, overrides=overrides,
                   pyproject=pyproject, warn_pct=warn_pct, warn_usd=warn_usd)


def _flags(max_increase_pct: float | None, max_increase_usd: float | None, noise_sigma: float | None,
           overrides: Mapping[str, Mapping[str, float]] | None, warn_pct: float | None = None,
           warn_usd: float | None = None, fail_on_regression: bool | None = None) -> list[str]:
    """The CLI flags that reproduce explicitly given thresholds (pyproject is read anyway)."""
    out: list[str] = []
    if warn_pct is not None:
        out += ["--warn-pct", f"{warn_pct:g}"]
    if warn_usd is not None:
        out += ["--warn-usd", f"{warn_usd:g}"]
    if max_increase_pct is not None:
        out += ["--fail-pct", f"{max_increase_pct:g}"]
    if max_increase_usd is not None:
        out += ["--fail-usd", f"{max_increase_usd:g}"]
    if noise_sigma is not None:
        out += ["--noise-sigma", f"{noise_sigma:g}"]
    for pattern, entry in (overrides or {}).items():
        pct = entry.get("max_increase_pct")
        usd = entry.get("max_increase_usd")
        out += ["--override", f"{pattern}={'' if pct is None else f'{pct:g}'}"
                              f"{'' if usd is None else f',{usd:g}'}"]
    if fail_on_regression:
        out.append("--fail-on-regression")
    return out


def cli_extras(pyproject: str | os.PathLike[str] | bool | None) -> Extras:
    """What a CLI diff shows beyond the diff: the traffic table of the pyproject it reads."""
    from tokenspy.ci import traffic

    if pyproject is False:
        return Extras()
    return Extras(traffic=traffic.read(None if pyproject is True else pyproject))


def _usage(value: str | None) -> str | None:
    """A usage source to compare: request, response, or None/"" (the current run's)."""
    if not value:
        return None
    from tokenspy.usage_source import check

    return check(value)


def emit(d: CostDiff, *, format: Format | None = "text", github_on: bool | None = None,
         output: TextIO | None = None, extras: Extras | None = None, tag: str = "") -> None:
    """Print the report in ``format`` (None: nothing) and, under Actions, publish it.

    Under Actions the human-readable report is printed with workflow commands stopped (names
    are untrusted); with ``json``, annotations go to stderr so that stdout stays pure JSON
    (the runner reads commands from both)."""
    stream = output if output is not None else sys.stdout
    on = github.enabled(github_on)
    if format == "json":
        stream.write(github.inert_json(d.as_dict()) + "\n")
    elif format is not None:
        text = render_markdown(d, extras=extras) if format == "markdown" else render_text(d, extras)
        if on:
            with github.stop_commands(stream):
                stream.write(text)
        else:
            stream.write(text)
    if on:
        github.publish(d, sys.stderr if format == "json" else stream, extras=extras, tag=tag)
    stream.flush()


def diff_sources(current: Source, baseline: Source | None, thresholds: Thresholds, reproduce: str = "",
                 notes: Sequence[str] = (), usage: str | None = None) -> CostDiff:
    """The diff of two sources (no printing). ``usage``: the usage source to compare
    ("request" or "response"; None: whatever the current run used)."""
    from dataclasses import replace

    from tokenspy import pricing

    loaded = load_sides([current] if baseline is None else [current, baseline], usage=usage)
    cur = loaded.sides[0]
    assert cur is not None
    base = loaded.sides[1] if baseline is not None else None
    d = compute(cur, base, thresholds, pricing.table_version(), reproduce=reproduce, notes=notes)
    return replace(d, usage_note=loaded.usage_note, compared_sources=loaded.compared)


def annotate_cost_diff(
    current_db: str | os.PathLike[str],
    baseline_db: str | os.PathLike[str] | None = None,
    *,
    max_increase_pct: float | None = None,
    max_increase_usd: float | None = None,
    noise_sigma: float | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    fail_on_regression: bool | None = None,
    github: bool | None = None,
    output: TextIO | None = None,
    format: Format | None = "text",
    pyproject: str | os.PathLike[str] | bool | None = None,
    warn_pct: float | None = None,
    warn_usd: float | None = None,
    run: str | None = None,
    usage: str | None = None,
) -> CostDiff:
    """Diff the current DB against a baseline DB, print the report, and under GitHub Actions
    annotate the regressions, append the job summary and set the step outputs.

    Thresholds left ``None`` come from ``[tool.tokenspy.ci]`` of the nearest pyproject.toml,
    then the defaults (see ``tokenspy.ci.thresholds``); ``overrides`` maps globs to
    ``{"max_increase_pct": …, "max_increase_usd": …}``. ``github=None`` detects Actions from
    ``GITHUB_ACTIONS=true``. ``baseline_db=None`` reports the current run alone (verdict pass);
    a baseline path that does not exist raises ``store.DBError`` naming it. Neither DB is
    written or created. Returns the ``CostDiff``; its ``verdict`` is ``"fail"`` only with
    ``fail_on_regression`` (argument or pyproject) and at least one regression.

    Each DB stands for the runs of one code state (``tokenspy.ci.runsel``): its latest run's,
    repeats of identical code averaged; ``run`` takes that one run of the current DB instead.
    ``max_increase_*`` is the fail level, ``warn_*`` the warn level (default: the fail level).
    """
    th = _thresholds(max_increase_pct, max_increase_usd, noise_sigma, fail_on_regression, overrides, pyproject,
                     warn_pct, warn_usd)
    cur = str(store.check_db_path(current_db))
    base = str(store.check_db_path(baseline_db)) if baseline_db is not None else None
    from tokenspy.ci.markdown import shell_join

    argv = ["tokenspy", "diff", os.fspath(current_db), *([os.fspath(baseline_db)] if baseline_db is not None else [])]
    if run is not None:
        argv += ["--run", run]
    if usage:
        argv += ["--usage", usage]
    reproduce = shell_join(argv + _flags(max_increase_pct, max_increase_usd, noise_sigma, overrides, warn_pct,
                                         warn_usd, fail_on_regression))
    d = diff_sources(Source(cur, run=run), Source(base) if base is not None else None, th, reproduce,
                     usage=_usage(usage))
    emit(d, format=format, github_on=github, output=output,
         extras=cli_extras(pyproject) if format is not None or github is not False else None)
    return d


def compare_commits(
    db_path: str | os.PathLike[str],
    commit1: str,
    commit2: str,
    *,
    repo: str | os.PathLike[str] | None = None,
    max_increase_pct: float | None = None,
    max_increase_usd: float | None = None,
    noise_sigma: float | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    fail_on_regression: bool | None = None,
    github: bool | None = None,
    output: TextIO | None = None,
    format: Format | None = "text",
    pyproject: str | os.PathLike[str] | bool | None = None,
    warn_pct: float | None = None,
    warn_usd: float | None = None,
    usage: str | None = None,
) -> CostDiff:
    """The same diff between the rows of two commits of one DB: ``commit1`` is the baseline,
    ``commit2`` the current side. Revisions may be full or short SHAs, branches, tags or
    ``HEAD~1`` (resolved with GitPython in ``repo``, default the repository around the cwd; a
    full SHA needs no repository). Raises ``gitrev.RevisionError`` (a ValueError) for an
    unknown revision or a commit without rows, naming it and its SHA. Each commit stands for
    its runs without uncommitted changes (a re-run with local edits is not that commit's code;
    the report says when such runs were left out).
    """
    from tokenspy.ci.gitrev import RevisionError
    from tokenspy.ci.gitrev import resolve as resolve_rev
    from tokenspy.ci.markdown import shell_join

    th = _thresholds(max_increase_pct, max_increase_usd, noise_sigma, fail_on_regression, overrides, pyproject,
                     warn_pct, warn_usd)
    path = str(store.check_db_path(db_path))
    shas = []
    for rev in (commit1, commit2):
        sha = resolve_rev(rev, repo=repo, db_path=path)
        if not has_commit(path, sha):
            named = f"{rev!r} ({sha})" if rev.strip().lower() != sha else sha
            raise RevisionError(f"commit {named} has no rows in {path}")
        shas.append(sha)
    argv = ["tokenspy", "compare", shas[0][:12], shas[1][:12], "--db", os.fspath(db_path)]
    reproduce = shell_join(argv + _flags(max_increase_pct, max_increase_usd, noise_sigma, overrides, warn_pct,
                                         warn_usd, fail_on_regression))
    if usage:
        reproduce += f" --usage {usage}"
    d = diff_sources(Source(path, shas[1], clean=True), Source(path, shas[0], clean=True), th, reproduce,
                     usage=_usage(usage))
    emit(d, format=format, github_on=github, output=output,
         extras=cli_extras(pyproject) if format is not None or github is not False else None)
    return d
