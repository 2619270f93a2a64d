"""Turn a revision (full/short SHA, branch, tag, ``HEAD~1``) into the 40-hex SHA rows are tagged with.

Order: a full SHA is used as is (no repository needed); otherwise GitPython resolves it in the
repository around ``repo`` (default: the cwd); failing that, a hex prefix may match exactly one
commit stored in the DB (useful in a shallow CI clone). An unresolvable revision in a shallow
clone says to fetch the history (``fetch-depth: 0``), since that is almost always the cause.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")
HEX_PREFIX = re.compile(r"[0-9a-fA-F]{4,39}")


class RevisionError(ValueError):
    """A revision that cannot be resolved; the message is one line naming it."""


def _open_repo(repo: str | os.PathLike[str] | None) -> Any | None:
    import git

    try:
        return git.Repo(Path(repo) if repo is not None else Path.cwd(), search_parent_directories=True)
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError):
        return None


def is_shallow(repo: Any) -> bool:
    """``git rev-parse --is-shallow-repository``, read from ``$GIT_COMMON_DIR/shallow``."""
    for d in {getattr(repo, "common_dir", None), repo.git_dir}:
        if d and (Path(d) / "shallow").exists():
            return True
    try:
        return repo.git.rev_parse("--is-shallow-repository").strip() == "true"
    except Exception:  # an old git without the flag: the file test above is authoritative
        return False


def _git_resolve(repo: Any, rev: str) -> str | None:
    import git
    from gitdb.exc import ODBError

    try:
        return repo.commit(rev).hexsha
    except (ValueError, IndexError, TypeError, git.exc.GitError, ODBError):
        return None


def resolve(rev: str, *, repo: str | os.PathLike[str] | None = None, db_path: str | None = None) -> str:
    """The full SHA of ``rev``; raises RevisionError with a one-line explanation."""
    text = rev.strip()
    if not text:
        raise RevisionError("empty revision")
    if FULL_SHA.fullmatch(text):
        return text.lower()
    r = _open_repo(repo)
    try:
        if r is not None:
            sha = _git_resolve(r, text)
            if sha is not None:
                return sha
        if db_path is not None and HEX_PREFIX.fullmatch(text):
            from tokenspy.ci.query import commits_with_prefix

            found = commits_with_prefix(db_path, text.lower())
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise RevisionError(f"revision {rev!r} is ambiguous in {db_path}: "
                                    f"{', '.join(c[:12] for c in found)}…")
        if r is None:
            where = Path(repo) if repo is not None else Path.cwd()
            raise RevisionError(f"unknown revision {rev!r}: {where} is not in a git repository "
                                "(give full 40-character SHAs, or run inside the repository)")
        if is_shallow(r):
            raise RevisionError(
                f"unknown revision {rev!r}: {r.working_tree_dir or r.git_dir} is a shallow clone without "
                "that history; fetch it (actions/checkout with `fetch-depth: 0`, or "
                "`git fetch --unshallow`)")
        raise RevisionError(f"unknown revision {rev!r} in {r.working_tree_dir or r.git_dir}")
    finally:
        if r is not None:
            r.close()
