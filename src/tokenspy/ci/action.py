"""The GitHub Action's Python entry: ``python -m tokenspy.ci.action`` (run by entrypoint.sh).

One run: read the settings (``tokenspy.ci.settings``) and the event payload
(``tokenspy.ci.event``), pick the baseline, diff with the CI module (annotations, job summary,
step outputs), keep the sticky PR comment current (``tokenspy.ci.comment``), and on a push to the
default branch leave a snapshot of the DB for the upload step (the next PRs' baseline).

Baseline, ``baseline: auto`` (the default), first match wins:

1. ``baseline-db`` given: that file (``baseline: path`` requires it).
2. ``base-ref`` given: ``compare_commits`` within the current DB, from that revision to this
   run's commit. ``pr-base``, the PR's base branch name or ``origin/<base>`` mean the base SHA
   of the event payload (no git history needed).
3. A pull request whose base SHA has rows in the current DB (e.g. restored with actions/cache):
   ``compare_commits`` from the base SHA.
4. A pull request: the base branch's artifact (``tokenspy.ci.artifacts``); none found is a
   ``::notice`` and a report without baseline (verdict pass).
5. Anything else (a push, a schedule): a report of the current run, verdict pass.

``baseline: artifact`` goes to 4 directly (a push compares with the default branch's artifact);
``baseline: none`` never compares.

Exit codes: 0 verdict pass, 1 verdict fail (only with fail-on-regression), 2 usage error (one
``::error::`` line naming it), 3 internal error. The verdict is also written to
``$TOKENSPY_VERDICT_FILE``, which entrypoint.sh maps to the step's exit code. Comment and
artifact-API problems never change the exit code.
"""

from __future__ import annotations

import os
import shlex
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TextIO

from tokenspy.ci import event as event_mod
from tokenspy.ci.settings import INPUT_ENV, Settings, UsageError

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
SourceKind = Literal["path", "artifact", "commit", "none"]
ARTIFACT_FILE = "usage.db"  # the file name inside the uploaded artifact


@dataclass
class Baseline:
    source: SourceKind
    path: str | None = None
    base_commit: str | None = None
    head_commit: str | None = None
    notes: list[str] = field(default_factory=list)  # shown in the report (summary and comment)
    commands: list[str] = field(default_factory=list)  # workflow commands (::notice / ::warning)
    reproduce: str | None = None


@dataclass
class Outcome:
    verdict: str
    diff: Any
    baseline: Baseline
    comment: Any = None
    artifact_path: str | None = None


class _Client:
    """One PyGithub client and repository per run, made on first use."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self._repo: Any = None
        self._gh: Any = None

    def repo(self) -> Any:
        if self._repo is None:
            from github import Auth, Github

            if not self.s.repository:
                raise UsageError("GITHUB_REPOSITORY is not set")
            _quiet_pygithub()
            gh = Github(auth=Auth.Token(self.s.github_token) if self.s.github_token else None,
                        base_url=self.s.api_url, per_page=100, user_agent="tokenspy-action",
                        seconds_between_requests=0, seconds_between_writes=0)
            self._gh = gh
            self._repo = gh.get_repo(self.s.repository)
        return self._repo

    def login(self) -> str:
        """Who this token comments as: its user, or for a workflow's GITHUB_TOKEN (which has
        none: GET /user is refused) the GitHub Actions bot."""
        from tokenspy.ci.comment import ACTIONS_BOT

        self.repo()
        try:
            return str(self._gh.get_user().login)
        except Exception:
            return ACTIONS_BOT


def _quiet_pygithub() -> None:
    """PyGithub logs a failed request itself ("Request POST … failed with 403: …") to a stream
    handler it installs at import; the action says what went wrong once, in its own words."""
    import logging

    logging.getLogger("github").setLevel(logging.CRITICAL)


def _cmd(level: str, message: str, s: Settings) -> str:
    from tokenspy.ci.github import command

    return command(level, s.scrub(message), title="tokenspy")


def _api_error(exc: BaseException) -> str:
    data = getattr(exc, "data", None)
    status = getattr(exc, "status", None)
    msg = data.get("message") if isinstance(data, dict) else None
    if status is not None:
        return f"HTTP {status}{': ' + str(msg) if msg else ''}"
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- baseline


def _full_sha(value: str | None) -> bool:
    from tokenspy.ci.gitrev import FULL_SHA

    return bool(value) and FULL_SHA.fullmatch(value or "") is not None


def _rows(db: str, sha: str) -> int:
    from tokenspy.ci.query import count_commit_rows

    return count_commit_rows(db, sha)


def head_commit(s: Settings, ev: event_mod.Event, db: str) -> str | None:
    """This run's commit in the DB: ``GITHUB_SHA`` (a PR's merge commit, what the tests ran on)
    or the PR head, when it has rows; else None (the caller falls back to ``HEAD``)."""
    for sha in (s.sha, ev.head_sha):
        if _full_sha(sha) and _rows(db, sha.lower()) > 0:  # type: ignore[union-attr]
            return sha.lower()  # type: ignore[union-attr]
    return None


def base_revision(base_ref: str, ev: event_mod.Event) -> str:
    names = {"pr-base"}
    if ev.base_ref:
        names |= {ev.base_ref, f"origin/{ev.base_ref}", f"refs/heads/{ev.base_ref}"}
    if base_ref in names and ev.base_sha:
        return ev.base_sha
    if base_ref == "pr-base":
        raise UsageError("input base-ref: 'pr-base' needs a pull_request event with pull_request.base.sha")
    return base_ref


def _artifact_baseline(s: Settings, ev: event_mod.Event, client: _Client, current_db: str) -> Baseline:
    from tokenspy.ci import artifacts

    branch = ev.compare_branch
    why = None
    if not s.artifact_name:
        why = "the artifact-name input is empty"
    elif not s.repository:
        why = "GITHUB_REPOSITORY is not set"
    elif not branch:
        why = "the event payload names no base branch"
    elif not s.github_token:
        why = "no github-token to read the artifacts with"
    if why:
        return _no_baseline(s, f"No baseline artifact looked up: {why}.", "notice")
    assert branch is not None
    try:
        run_id = int(s.run_id) if s.run_id and s.run_id.isdigit() else None
        lookup = artifacts.find_baseline(client.repo(), s.artifact_name, branch,
                                         prefer_sha=ev.base_sha, exclude_run_id=run_id)
    except UsageError:
        raise
    except Exception as exc:
        hint = (" (the job needs `permissions: actions: read`)"
                if getattr(exc, "status", None) in (403, 404) else "")
        return _no_baseline(s, f"Could not list the baseline artifacts: {_api_error(exc)}{hint}.", "warning")
    art = lookup.artifact
    if art is None:
        return _no_baseline(s, f"No baseline: {lookup.reason}.", "notice")
    dest = s.temp_dir() / "tokenspy-baseline" / str(art.id)
    try:
        path = artifacts.download_db(art, token=s.github_token, api_url=s.api_url, dest_dir=dest)
    except Exception as exc:
        what = str(exc) if isinstance(exc, artifacts.ArtifactError) else _api_error(exc)
        return _no_baseline(s, f"Could not fetch baseline artifact {art.name!r} (id {art.id}): {what}.", "warning")
    note = f"Baseline: artifact {art.name} of run {art.run_id} on {branch} at {art.short_sha}"
    if ev.base_sha and not lookup.exact:
        note += f" (the PR's base is {ev.base_sha[:12]}: no artifact from that commit, the newest one is used)"
    reproduce = (f"gh run download {art.run_id} -n {shlex.quote(art.name)} -D tokenspy-baseline && "
                 f"tokenspy diff {shlex.quote(current_db)} tokenspy-baseline/{ARTIFACT_FILE}")
    return Baseline("artifact", path=str(path), notes=[note + "."], reproduce=reproduce)


def _no_baseline(s: Settings, message: str, level: str) -> Baseline:
    text = message + " Reporting the current run only (verdict pass)."
    return Baseline("none", notes=[text], commands=[_cmd(level, text, s)])


def choose_baseline(s: Settings, ev: event_mod.Event, client: _Client, current_db: str) -> Baseline:
    from tokenspy import store

    if s.baseline == "none":
        return Baseline("none", notes=["No baseline (baseline: none)."])
    if s.baseline_db is not None:
        path = s.path(s.baseline_db)
        try:
            store.check_db_path(path)
        except store.DBError as exc:
            raise UsageError(f"input baseline-db: {exc}") from None
        return Baseline("path", path=str(path))
    if s.base_ref is not None:
        base = base_revision(s.base_ref, ev)
        return Baseline("commit", base_commit=base, head_commit=head_commit(s, ev, current_db) or "HEAD")
    if s.baseline == "auto":
        if ev.is_pull_request and _full_sha(ev.base_sha) and _rows(current_db, ev.base_sha.lower()) > 0:  # type: ignore[union-attr]
            head = head_commit(s, ev, current_db)
            if head is not None and head != ev.base_sha.lower():  # type: ignore[union-attr]
                return Baseline("commit", base_commit=ev.base_sha.lower(), head_commit=head,  # type: ignore[union-attr]
                                notes=[f"Baseline: the PR's base commit {ev.base_sha[:12]} in the same DB."])  # type: ignore[index]
        if not ev.is_pull_request:
            what = "a push to the default branch" if ev.is_push_to_default else f"event {ev.name or 'unknown'}"
            return Baseline("none", notes=[f"No baseline for {what}: report of this run."])
    return _artifact_baseline(s, ev, client, current_db)


# --------------------------------------------------------------------------- run


def _diff(s: Settings, base: Baseline, current_db: str) -> Any:
    from tokenspy.ci.api import annotate_cost_diff, compare_commits

    kw: dict[str, Any] = {"max_increase_pct": s.max_increase_pct, "max_increase_usd": s.max_increase_usd,
                          "warn_pct": s.warn_pct, "warn_usd": s.warn_usd,
                          "fail_on_regression": s.fail_on_regression, "github": False, "format": None,
                          "usage": s.usage, "pyproject": _pyproject(s)}
    if base.source == "commit":
        assert base.base_commit and base.head_commit
        d = compare_commits(current_db, base.base_commit, base.head_commit, repo=s.workspace or os.getcwd(), **kw)
    else:
        d = annotate_cost_diff(current_db, base.path, **kw)
    if base.reproduce:
        flags = d.reproduce.split(" --", 1)
        d = replace(d, reproduce=base.reproduce + (" --" + flags[1] if len(flags) == 2 else ""))
    if base.notes:
        d = replace(d, notes=(*d.notes, *base.notes))
    return d


def _pyproject(s: Settings) -> str | None:
    """The workspace's pyproject.toml (thresholds, traffic): the repository the tests ran in."""
    from tokenspy import pyproject

    found = pyproject.find(s.workspace or os.getcwd())
    return str(found) if found is not None else None


def _accept(s: Settings, ev: event_mod.Event, d: Any) -> Any:
    """A failing verdict on a PR that carries the accept label passes, and says so."""
    if d.verdict != "fail" or not s.accept_label or s.accept_label not in ev.labels:
        return d
    return replace(d, verdict="pass", accepted_by=s.accept_label)


def _subject(ev: event_mod.Event) -> str:
    if ev.is_pull_request:
        return "This PR"
    return "This push" if ev.name == "push" else "This run"


def _previous_history(s: Settings, ev: event_mod.Event, client: _Client, out: TextIO) -> str | None:
    """On a push to the default branch: the DB of the branch's latest artifact (its history)."""
    from tokenspy.ci import artifacts

    if not (s.artifact_name and s.repository and s.github_token and ev.branch):
        return None
    try:
        run_id = int(s.run_id) if s.run_id and s.run_id.isdigit() else None
        lookup = artifacts.find_baseline(client.repo(), s.artifact_name, ev.branch, exclude_run_id=run_id)
        if lookup.artifact is None:
            return None
        dest = s.temp_dir() / "tokenspy-history" / str(lookup.artifact.id)
        return str(artifacts.download_db(lookup.artifact, token=s.github_token, api_url=s.api_url, dest_dir=dest))
    except Exception as exc:
        out.write(_cmd("notice", f"The previous history artifact could not be read ({_api_error(exc)}): "
                                 "the history starts over with this run.", s) + "\n")
        return None


def _trend(s: Settings, ev: event_mod.Event, base: Baseline, current_db: str, history_db: str | None,
           d: Any, out: TextIO) -> Any:
    """Cost per default-branch commit (the history DB), plus this PR or run."""
    from tokenspy.ci import trend

    source = history_db or (base.path if base.source in ("artifact", "path") else None)
    if base.source == "commit":
        source = current_db
    if source is None:
        return None
    try:
        t = trend.history(source, usage=s.usage)
    except Exception as exc:  # a trend is context: never worth failing the gate
        out.write(_cmd("notice", f"No trend: {type(exc).__name__}: {exc}", s) + "\n")
        return None
    if history_db is None and base.source != "commit" and d.current is not None:
        label = f"PR #{ev.pr_number}" if ev.is_pull_request else "this run"
        t = t.with_point(trend.Point(label, d.current.cost_usd))
    return t


def _html_report(s: Settings, d: Any, base: Baseline, current_db: str, headline: str, out: TextIO) -> str | None:
    """Write the HTML diff report for the upload step; its path, or None."""
    if not s.report_artifact_name:
        return None
    from tokenspy.ci import trend
    from tokenspy.reporting.data import ReportData
    from tokenspy.reporting.diff_html import render_diff_html

    try:
        head = ReportData.from_db(current_db, d.current.commit)
        base_data = None
        if base.source == "commit" and d.baseline is not None:
            base_data = ReportData.from_db(current_db, d.baseline.commit)
        elif base.path and d.baseline is not None:
            shas = trend.commits(base.path)  # a history DB: the flame graph of its newest commit
            base_data = ReportData.from_db(base.path, shas[-1] if len(shas) > 1 else None)
        page = render_diff_html(d, headline=headline, base_data=base_data, head_data=head)
        path = s.temp_dir() / "tokenspy-report" / "tokenspy-report.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        return str(path)
    except Exception as exc:
        out.write(_cmd("warning", f"The HTML report was not written: {type(exc).__name__}: {exc}", s) + "\n")
        return None


def _summary(s: Settings, lines: list[str]) -> None:
    if s.step_summary and lines:
        with open(s.step_summary, "a", encoding="utf-8", newline="\n") as fh:
            fh.write("\n" + "\n".join(s.scrub(x) for x in lines) + "\n")


def _comment(s: Settings, ev: event_mod.Event, client: _Client, d: Any, out: TextIO, extras: Any = None) -> Any:
    from tokenspy.ci import comment
    from tokenspy.ci.markdown import COMMENT_MAX_CHARS, md, render_markdown

    if s.comment == "off":
        return comment.CommentResult("disabled", "comment: off")
    if not ev.is_pull_request or ev.pr_number is None:
        return comment.CommentResult("skipped", "not a pull request")
    if not s.github_token or not s.repository:
        reason = "no github-token" if not s.github_token else "GITHUB_REPOSITORY is not set"
        result = comment.CommentResult("skipped", reason)
    else:
        try:
            body = render_markdown(d, max_chars=COMMENT_MAX_CHARS, extras=extras, tag=s.comment_tag)
            result = comment.upsert(client.repo(), ev.pr_number, body, mode=s.comment,
                                    has_changes=comment.changed(d), tag=s.comment_tag, author=client.login())
        except UsageError:
            raise
        except Exception as exc:  # network, bad token, …: the comment is not worth failing the gate
            if getattr(exc, "status", None) == 403:
                result = comment.CommentResult("skipped", _api_error(exc), forbidden=True)
            else:
                result = comment.CommentResult("failed", _api_error(exc))
    lines: list[str] = []
    pr = f"#{ev.pr_number}"
    if result.forbidden:
        why = ("pull requests from forks get a read-only `GITHUB_TOKEN`" if ev.is_fork
               else "the job needs `permissions: pull-requests: write`")
        tail = f"; {why}. The verdict above still applies."
        out.write(_cmd("notice", f"PR comment skipped: the token may not comment on {pr} ({result.reason}){tail}",
                       s) + "\n")
        lines.append(f"> **PR comment skipped:** the token may not comment on {pr} ({md(result.reason)}){tail}")
    elif result.status == "failed":
        tail = ". The verdict above still applies."
        out.write(_cmd("warning", f"PR comment failed on {pr}: {result.reason}{tail}", s) + "\n")
        lines.append(f"> **PR comment failed** on {pr}: {md(result.reason)}{tail}")
    elif result.status in ("created", "updated", "unchanged"):
        verb = {"created": "posted", "updated": "updated", "unchanged": "already current (not edited)"}
        lines.append(f"💬 PR comment {verb[result.status]}" + (f": {result.url}" if result.url else "."))
    elif result.status == "deleted":
        lines.append("💬 PR comment removed: the cost is unchanged again (comment: on-change).")
    elif result.status == "skipped":
        lines.append(f"💬 PR comment not posted: {md(result.reason)}.")
    _summary(s, lines)
    return result


def run(s: Settings, ev: event_mod.Event, out: TextIO | None = None) -> Outcome:
    from tokenspy import store
    from tokenspy.ci.api import emit
    from tokenspy.ci.github import write_outputs

    out = out if out is not None else sys.stdout
    current_db = s.current_db
    try:
        store.check_db_path(s.path(current_db))
    except store.DBError as exc:
        raise UsageError(f"input current-db: {exc} (run the tests with `pytest --tokenspy` before this step)") from None
    client = _Client(s)
    base = choose_baseline(s, ev, client, str(s.path(current_db)))
    for line in base.commands:
        out.write(line + "\n")
    try:
        d = _diff(s, base, current_db)
    except (store.DBError, ValueError) as exc:  # RevisionError and bad pyproject thresholds are ValueErrors
        raise UsageError(str(exc)) from None
    d = _accept(s, ev, d)
    try:
        from tokenspy.ci import traffic

        table = traffic.read(_pyproject(s))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    outcome = Outcome(d.verdict, d, base)
    history_db = None
    if ev.is_push_to_default and s.artifact_name:
        from tokenspy.ci import history

        previous = _previous_history(s, ev, client, out)
        history_db = str(history.append(previous, s.path(current_db),
                                        s.temp_dir() / "tokenspy-artifact" / ARTIFACT_FILE))
        outcome.artifact_path = history_db
    from tokenspy.ci.markdown import Extras, headline

    extras = Extras(subject=_subject(ev), traffic=table)
    extras = replace(extras, trend=_trend(s, ev, base, str(s.path(current_db)), history_db, d, out))
    html_path = _html_report(s, d, base, str(s.path(current_db)), headline(d, extras), out)
    if html_path and s.repository and s.run_id:
        extras = replace(extras, html_report=s.report_artifact_name,
                         html_url=f"{s.server_url}/{s.repository}/actions/runs/{s.run_id}#artifacts")
    out.flush()
    emit(d, format="text", github_on=s.github_actions, output=out, extras=extras, tag=s.comment_tag)
    if history_db is not None:
        _summary(s, [f"📦 This run's DB, with the history of up to {history.KEEP} commits, is saved as the "
                     f"artifact `{s.artifact_name}`: the baseline of pull requests into `{ev.branch}`."])
    outcome.comment = _comment(s, ev, client, d, out, extras)
    if s.github_actions and s.output:
        from tokenspy.version import __version__

        write_outputs([
            ("baseline-source", base.source),
            ("comment-status", outcome.comment.status),
            ("comment-url", outcome.comment.url),
            ("artifact-path", outcome.artifact_path or ""),
            ("html-report-path", html_path or ""),
            ("version", __version__),
        ], s.output)
    out.flush()
    return outcome


def _write_verdict(path: str | None, verdict: str) -> None:
    if path:
        Path(path).write_text(verdict + "\n", encoding="utf-8")


def main(environ: dict[str, str] | None = None, out: TextIO | None = None) -> int:
    env = os.environ if environ is None else environ
    stream = out if out is not None else sys.stdout
    token = (env.get(INPUT_ENV["github-token"]) or "").strip()

    def scrub(text: object) -> str:
        return str(text).replace(token, "***") if token else str(text)

    try:
        s = Settings.from_environ(env)
        ev = event_mod.load(s.event_name, s.event_path, s.ref)
        outcome = run(s, ev, stream)
    except UsageError as exc:
        from tokenspy.ci.github import command

        stream.write(command("error", scrub(f"tokenspy: {exc}")) + "\n")
        stream.flush()
        return EXIT_USAGE
    except Exception as exc:
        from tokenspy.ci.github import command

        sys.stderr.write(scrub(traceback.format_exc()))
        stream.write(command("error", scrub(f"tokenspy: internal error: {type(exc).__name__}: {exc}")) + "\n")
        stream.flush()
        return EXIT_INTERNAL
    _write_verdict(s.verdict_file, outcome.verdict)
    return EXIT_FAIL if outcome.verdict == "fail" else EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
