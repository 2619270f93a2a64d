"""The workflow's event payload (``$GITHUB_EVENT_PATH``): PR number, base SHA, fork, default branch.

Everything the action needs about the base of a pull request comes from this JSON, never from git
history, so a checkout with ``fetch-depth: 1`` is enough.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenspy.ci.settings import UsageError

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


@dataclass(frozen=True)
class Event:
    """What the action uses of ``GITHUB_EVENT_NAME`` + the payload + ``GITHUB_REF``."""

    name: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    ref: str | None = None

    @property
    def pull_request(self) -> Mapping[str, Any] | None:
        pr = self.payload.get("pull_request")
        return pr if isinstance(pr, Mapping) else None

    @property
    def is_pull_request(self) -> bool:
        return self.name in PULL_REQUEST_EVENTS and self.pr_number is not None

    @property
    def pr_number(self) -> int | None:
        n = _get(self.pull_request, "number")
        if n is None:
            n = self.payload.get("number") if self.pull_request is not None else None
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    @property
    def base_sha(self) -> str | None:
        return _get(self.pull_request, "base", "sha")

    @property
    def base_ref(self) -> str | None:
        """The branch the PR merges into (``main``)."""
        return _get(self.pull_request, "base", "ref")

    @property
    def head_sha(self) -> str | None:
        return _get(self.pull_request, "head", "sha")

    @property
    def head_repo(self) -> str | None:
        return _get(self.pull_request, "head", "repo", "full_name")

    @property
    def base_repo(self) -> str | None:
        return _get(self.pull_request, "base", "repo", "full_name") or _get(self.payload, "repository", "full_name")

    @property
    def is_fork(self) -> bool:
        """A PR whose head lives in another repository (its token is read-only). A deleted fork
        has ``head.repo: null``: a fork too."""
        if self.pull_request is None:
            return False
        head = self.head_repo
        return head is None or (self.base_repo is not None and head.lower() != self.base_repo.lower())

    @property
    def labels(self) -> tuple[str, ...]:
        """The PR's labels as the payload has them (current at the event: ``labeled`` included)."""
        found = _get(self.pull_request, "labels")
        if not isinstance(found, list):
            return ()
        return tuple(str(lb["name"]) for lb in found if isinstance(lb, Mapping) and isinstance(lb.get("name"), str))

    @property
    def default_branch(self) -> str | None:
        return _get(self.payload, "repository", "default_branch")

    @property
    def branch(self) -> str | None:
        """The branch a push went to (from ``GITHUB_REF``)."""
        if self.ref and self.ref.startswith("refs/heads/"):
            return self.ref[len("refs/heads/"):]
        return None

    @property
    def is_push_to_default(self) -> bool:
        return (self.name == "push" and self.branch is not None
                and self.default_branch is not None and self.branch == self.default_branch)

    @property
    def compare_branch(self) -> str | None:
        """The branch whose baseline a run compares with: a PR's base, else the default branch."""
        return self.base_ref if self.pull_request is not None else self.default_branch


def load(name: str | None, path: str | None, ref: str | None = None) -> Event:
    """Read the payload; no path (running outside Actions) gives an empty event."""
    if not path:
        return Event(name, {}, ref)
    try:
        with open(path, encoding="utf-8") as fh:
            payload = json.load(fh)
    except OSError as exc:
        raise UsageError(f"GITHUB_EVENT_PATH {path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UsageError(f"GITHUB_EVENT_PATH {path}: not JSON ({exc})") from None
    if not isinstance(payload, Mapping):
        raise UsageError(f"GITHUB_EVENT_PATH {path}: not a JSON object")
    return Event(name, payload, ref)
