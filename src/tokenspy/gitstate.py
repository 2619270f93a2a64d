"""The state of the code a run tested: the commit, and what the work tree changed on top of it.

Two runs are repeats of one code only when both agree: a re-run after an uncommitted prompt
change carries HEAD's SHA like the clean run before it, and averaging the two would hide the
change. The fingerprint covers tracked files only (``git diff HEAD``): untracked files are not
part of what a test imports unless they are added, and caches or DBs in the tree would make
every run differ.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass

CLEAN = ""  # the fingerprint of a work tree without tracked changes


@dataclass(frozen=True)
class GitState:
    commit: str | None
    dirty: bool
    fingerprint: str  # sha256 of `git diff HEAD` (tracked files); CLEAN when not dirty

    def describe(self) -> str:
        if self.commit is None:
            return "no git commit"
        return self.commit[:12] + (f" + uncommitted changes {self.fingerprint[:8]}" if self.dirty else " (clean)")


def _git(cwd: str, *args: str) -> bytes | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # a read must not take index.lock
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def read(cwd: str | os.PathLike[str] | None = None) -> GitState:
    """The git state of the work tree around ``cwd`` (default: the process cwd). Outside a
    repository, or before its first commit, the commit is None."""
    where = os.fspath(cwd) if cwd is not None else os.getcwd()
    head = _git(where, "rev-parse", "--verify", "-q", "HEAD")
    if not head:
        return GitState(None, False, CLEAN)
    diff = _git(where, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff")
    if diff is None:  # cannot tell: never call such a run a repeat of a clean one
        return GitState(head.decode().strip(), True, "unknown")
    if not diff:
        return GitState(head.decode().strip(), False, CLEAN)
    return GitState(head.decode().strip(), True, hashlib.sha256(diff).hexdigest())


def toplevel(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The top directory of the git work tree around ``cwd``, or None."""
    out = _git(os.fspath(cwd) if cwd is not None else os.getcwd(), "rev-parse", "--show-toplevel")
    return out.decode().strip() or None if out else None
