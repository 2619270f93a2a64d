"""The git SHA calls are tagged with: read once, re-read only when HEAD moves."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_lock = threading.Lock()
_state: dict[str, object] = {"checked": 0.0, "key": None, "sha": None, "cwd": None}
RECHECK_SECONDS = 1.0


def _find_gitdir(start: Path) -> Path | None:
    for d in (start, *start.parents):
        g = d / ".git"
        if g.is_dir():
            return g
        if g.is_file():  # worktree or submodule: "gitdir: <path>"
            text = g.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                return (d / text.split(":", 1)[1].strip()).resolve()
    return None


def _head_key(gitdir: Path) -> tuple:
    """Cheap fingerprint of where HEAD points (mtimes of HEAD, its ref and packed-refs)."""
    key: list[object] = []
    head = gitdir / "HEAD"
    try:
        text = head.read_text().strip()
        key.append(text)
        if text.startswith("ref:"):
            ref = text[4:].strip()
            for base in (gitdir, _common_dir(gitdir)):
                try:
                    key.append(os.stat(base / ref).st_mtime_ns)
                    break
                except OSError:
                    continue
        for base in {gitdir, _common_dir(gitdir)}:
            try:
                key.append(os.stat(base / "packed-refs").st_mtime_ns)
            except OSError:
                pass
    except OSError:
        return ()
    return tuple(key)


def _common_dir(gitdir: Path) -> Path:
    try:
        return (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
    except OSError:
        return gitdir


def _read_sha(start: Path) -> str | None:
    """HEAD's SHA, read from the repository's files (HEAD, the loose ref, packed-refs).

    Not through GitPython: this runs inside the user's first call, and importing GitPython
    there changes the process (its annotations fill typing's cache, which hands an equal
    ``List[Union[...]]`` of another order to later code: the google-genai suite's schema tests
    then see their types in GitPython's order). Layouts the files do not answer (reftable)
    ask ``git rev-parse``."""
    gitdir = _find_gitdir(start)
    if gitdir is None:
        return None
    try:
        target = (gitdir / "HEAD").read_text().strip()
        for _ in range(5):  # HEAD -> refs/heads/x (-> a symbolic ref, rarely)
            if not target.startswith("ref:"):
                return target if _is_sha(target) else None
            target = _resolve_ref(gitdir, target[4:].strip()) or ""
    except OSError:
        pass
    from tokenspy.gitstate import _git

    out = _git(str(start), "rev-parse", "--verify", "-q", "HEAD")
    sha = out.decode().strip() if out else ""
    return sha if _is_sha(sha) else None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def _resolve_ref(gitdir: Path, ref: str) -> str | None:
    """The content of a loose ref, else its SHA in packed-refs, else None."""
    common = _common_dir(gitdir)
    for base in (gitdir, common):
        try:
            return (base / ref).read_text().strip()
        except OSError:
            continue
    try:
        packed = (common / "packed-refs").read_text()
    except OSError:
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and not line.startswith(("#", "^")):
            return sha
    return None


def current_sha(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """Full 40-char SHA of HEAD for the repo around ``cwd`` (default: the process cwd), or None."""
    now = time.monotonic()
    try:
        here = os.getcwd() if cwd is None else None
    except OSError:  # the working directory was deleted: no repo around it
        return None
    # the last answer holds for a second, in the directory it was found for (a process that
    # changes directory into another repo, as pytester does, gets that repo's SHA at once)
    if here is not None and here == _state["cwd"] and now - float(_state["checked"]) < RECHECK_SECONDS:  # type: ignore[arg-type]
        return _state["sha"]  # type: ignore[return-value]
    with _lock:
        start = Path(cwd or here)
        gitdir = _find_gitdir(start)
        if gitdir is None:
            sha = None
            key: tuple | None = None
        else:
            key = (str(gitdir), *_head_key(gitdir))
            if cwd is None and key == _state["key"]:
                _state.update(checked=now, cwd=here)
                return _state["sha"]  # type: ignore[return-value]
            sha = _read_sha(start)
        if cwd is None:
            _state.update(checked=now, key=key, sha=sha, cwd=here)
        return sha


def reset_cache() -> None:
    with _lock:
        _state.update(checked=0.0, key=None, sha=None, cwd=None)


_root_cache: dict[str, str | None] = {}
_rel_cache: dict[str, str] = {}


def _worktree_root(directory: str) -> str | None:
    try:
        return _root_cache[directory]
    except KeyError:
        pass
    d = Path(directory)
    root = next((str(p) for p in (d, *d.parents) if (p / ".git").exists()), None)
    _root_cache[directory] = root
    return root


def repo_relative(path: str | None) -> str | None:
    """``path`` relative to the root of the git work tree holding it (POSIX separators), so that
    DBs made on different machines agree and CI annotations land on the PR diff; unchanged when
    the file is in no work tree (or is not a real file, like ``<stdin>``)."""
    if not path:
        return path
    try:
        return _rel_cache[path]
    except KeyError:
        pass
    result = path
    if not path.startswith("<"):
        absolute = os.path.abspath(path)
        root = _worktree_root(os.path.dirname(absolute))
        if root is not None:
            result = Path(os.path.relpath(absolute, root)).as_posix()
    if len(_rel_cache) < 65536:
        _rel_cache[path] = result
    return result
