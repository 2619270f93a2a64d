"""The sticky pull-request comment: one per PR and tag, found by its hidden marker.

The marker is ``<!-- tokenspy:TAG -->`` (``tokenspy.ci.markdown.marker_for``; the tag defaults
to the job's name), so matrix jobs and several workflows keep one comment each. Modes:

- ``update`` (default): create the comment, or edit ours when its body differs.
- ``new``: post a new comment each time the report differs from our newest one (older ones stay).
- ``on-change``: post only while the cost changed against the baseline; when it is unchanged
  again, a comment left from before is deleted (it would show a stale regression).
- ``off``: no API call at all.
- A body equal to the one already posted is never re-sent (no PATCH, no notification).

A read-only token (a fork's pull request: 403 "Resource not accessible by integration") makes the
comment ``skipped`` with the reason; it never fails the action. Other API errors give ``failed``
with a one-line reason (token scrubbed by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tokenspy.ci.markdown import marker_for
from tokenspy.ci.model import CostDiff

MARKER = marker_for("")  # also the marker of every comment from before tags: see upsert
BODY_MAX_CHARS = 65_536  # GitHub's limit for an issue comment body
Status = Literal["created", "updated", "unchanged", "deleted", "skipped", "failed", "disabled"]


@dataclass(frozen=True)
class CommentResult:
    status: Status
    reason: str = ""
    url: str = ""
    forbidden: bool = False  # the token may not write (fork PR / missing permission)


def changed(d: CostDiff) -> bool:
    """Whether the diff has anything to say: a baseline, and a key or the total that moved."""
    if not d.has_baseline:
        return False
    if d.total.changed:
        return True
    t = d.total
    if t.baseline is not None and t.current is not None and t.baseline.cost_usd != t.current.cost_usd:
        return True
    return any(r.changed for rows in (d.functions, d.tests, d.models) for r in rows)


def fit_body(body: str, marker: str = MARKER) -> str:
    """The marker first, and at most ``BODY_MAX_CHARS`` characters, cut at a line end."""
    if not is_ours(body, marker):
        body = f"{marker}\n{body}"
    if len(body) <= BODY_MAX_CHARS:
        return body
    note = "\n\n> ✂️ Cut to fit GitHub's comment limit; the job summary has the full report.\n"
    cut = body[: BODY_MAX_CHARS - len(note)]
    cut = cut[: cut.rfind("\n") + 1] if "\n" in cut else cut
    return cut + note


REPORT_LINK = "📄 HTML report"  # its link names this run: not a change of the report


def _norm(body: str | None) -> str:
    lines = (line.rstrip() for line in (body or "").replace("\r\n", "\n").split("\n"))
    return "\n".join(line for line in lines if not line.startswith(REPORT_LINK)).strip()


def is_ours(body: str | None, marker: str = MARKER) -> bool:
    """The body's first line is exactly ``marker`` (another tag's comment is not ours)."""
    first = (body or "").lstrip().split("\n", 1)[0].rstrip()
    return first == marker


def _forbidden(exc: Any) -> bool:
    status = getattr(exc, "status", None)
    message = str((getattr(exc, "data", None) or {}).get("message", "")) if isinstance(
        getattr(exc, "data", None), dict) else ""
    return status == 403 and "rate limit" not in message.lower()


def _message(exc: Any) -> str:
    data = getattr(exc, "data", None)
    msg = data.get("message") if isinstance(data, dict) else None
    status = getattr(exc, "status", None)
    return f"HTTP {status}: {msg}" if status is not None and msg else f"{type(exc).__name__}: {exc}"


ACTIONS_BOT = "github-actions[bot]"  # who a workflow's GITHUB_TOKEN comments as


def _author(c: Any) -> str | None:
    user = getattr(c, "user", None)
    return getattr(user, "login", None) if user is not None else None


def upsert(repo: Any, pr_number: int, body: str, *, mode: str, has_changes: bool, tag: str = "",
           author: str | None = ACTIONS_BOT) -> CommentResult:
    """Create, edit or delete the sticky comment on PR ``pr_number`` of a PyGithub ``Repository``.

    A comment is ours when it starts with our marker *and* was written by ``author`` (the
    token's own login): anyone can post a comment that starts with the marker, and we must
    never edit or delete theirs. When a PR has none with this tag's marker, the newest of ours
    with the untagged marker (what tokenspy wrote before comments had tags) is taken over, so
    that the first run after an upgrade edits it instead of posting a second comment."""
    from github import GithubException

    if mode == "off":
        return CommentResult("disabled", "comment: off")
    marker = marker_for(tag)
    body = fit_body(body, marker)
    try:
        pr = repo.get_pull(pr_number)
        mine = [c for c in pr.get_issue_comments() if author is None or _author(c) == author]
        ours = [c for c in mine if is_ours(c.body, marker)]
        if not ours and mode != "new":
            ours = [c for c in mine if is_ours(c.body, MARKER)][-1:]
        newest = ours[-1] if ours else None
        if mode == "on-change" and not has_changes:
            if newest is None:
                return CommentResult("skipped", "nothing changed against the baseline (comment: on-change)")
            for c in ours:
                c.delete()
            return CommentResult("deleted", "the cost is unchanged again: the earlier comment was removed")
        url = getattr(newest, "html_url", "") or "" if newest is not None else ""
        if newest is not None and _norm(newest.body) == _norm(body):
            return CommentResult("unchanged", "the report is the same as in the comment", url=url)
        if newest is None or mode == "new":
            created = pr.create_issue_comment(body)
            return CommentResult("created", url=getattr(created, "html_url", "") or "")
        newest.edit(body)
        return CommentResult("updated", url=url)
    except GithubException as exc:
        if _forbidden(exc):
            return CommentResult("skipped", _message(exc), forbidden=True)
        return CommentResult("failed", _message(exc))
