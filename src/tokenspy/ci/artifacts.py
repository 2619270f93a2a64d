"""The baseline DB of a pull request's base branch, found and fetched as a workflow artifact.

On a push to the default branch the action uploads its DB as an artifact (``artifact-name``). A
later pull request finds, through the REST API (PyGithub), the newest such artifact that

- is not expired and was made on the PR's base branch (``workflow_run.head_branch``),
- came from a run of this repository (not a fork's: ``head_repository_id == repository_id``),
- came from a run that was not triggered by a pull request (a fork's PR workflow can upload an
  artifact of any name; only pushes and the like are trusted) and finished with ``success``,

preferring one made at the PR's exact base SHA, and downloads its zip
(``GET /repos/{o}/{r}/actions/artifacts/{id}/zip``). GitHub answers that with a redirect to its
blob storage: a redirect is followed with the token only to the API's own origin, without it
only to GitHub's storage hosts (https), and never anywhere else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from tokenspy import store

STORAGE_HOST_SUFFIXES = (".actions.githubusercontent.com", ".blob.core.windows.net", ".githubusercontent.com")
MAX_REDIRECTS = 5
MAX_DOWNLOAD_BYTES = 2 * 1024**3
MAX_CANDIDATES = 100  # artifacts looked at (newest first)
MAX_RUN_CHECKS = 10  # workflow runs fetched to check how they ended
DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class ArtifactError(Exception):
    """The artifact could not be listed, fetched or read; one line, no secrets."""


@dataclass(frozen=True)
class ArtifactRef:
    id: int
    name: str
    download_url: str
    run_id: int | None
    head_sha: str | None
    head_branch: str | None
    size: int | None = None

    @property
    def short_sha(self) -> str:
        return (self.head_sha or "?")[:12]


@dataclass(frozen=True)
class Lookup:
    """The artifact chosen (``None`` when there is none) and, if none, why."""

    artifact: ArtifactRef | None
    reason: str = ""
    exact: bool = False  # made at the PR's base SHA


def _ref(raw: dict[str, Any]) -> ArtifactRef:
    run = raw.get("workflow_run") or {}
    return ArtifactRef(
        id=int(raw["id"]), name=str(raw.get("name")), download_url=str(raw.get("archive_download_url") or ""),
        run_id=run.get("id"), head_sha=run.get("head_sha"), head_branch=run.get("head_branch"),
        size=raw.get("size_in_bytes"),
    )


def candidates(artifacts: Iterable[Any], branch: str, *, exclude_run_id: int | None = None,
               limit: int = MAX_CANDIDATES) -> list[ArtifactRef]:
    """Unexpired artifacts of ``branch`` made by runs of the repository itself, newest first."""
    out = []
    for i, art in enumerate(artifacts):
        if i >= limit:
            break
        raw = art.raw_data if hasattr(art, "raw_data") else art
        if raw.get("expired"):
            continue
        run = raw.get("workflow_run") or {}
        if run.get("head_branch") != branch:
            continue
        repo_id, head_repo_id = run.get("repository_id"), run.get("head_repository_id")
        if repo_id is not None and head_repo_id is not None and repo_id != head_repo_id:
            continue  # a fork's run
        if exclude_run_id is not None and run.get("id") == exclude_run_id:
            continue
        if not raw.get("archive_download_url"):
            continue
        out.append(_ref(raw))
    return out


def _run_ok(repo: Any, run_id: int, branch: str) -> tuple[bool, str]:
    run = repo.get_workflow_run(run_id).raw_data
    event = str(run.get("event") or "")
    if event.startswith("pull_request"):
        return False, f"run {run_id} was triggered by {event}"
    if run.get("head_branch") != branch:
        return False, f"run {run_id} is on {run.get('head_branch')!r}"
    if run.get("conclusion") != "success":
        state = run.get("conclusion") or run.get("status") or "unknown"
        return False, f"run {run_id} is {state}"
    return True, ""


def find_baseline(repo: Any, name: str, branch: str, *, prefer_sha: str | None = None,
                  exclude_run_id: int | None = None) -> Lookup:
    """The newest successful artifact ``name`` of ``branch`` (one at ``prefer_sha`` first).

    ``repo`` is a PyGithub ``Repository``; GithubException propagates to the caller."""
    found = candidates(repo.get_artifacts(name=name), branch, exclude_run_id=exclude_run_id)
    if not found:
        return Lookup(None, f"no artifact named {name!r} from branch {branch!r} "
                            "(it is saved by this action on pushes to the default branch)")
    if prefer_sha:
        found = ([a for a in found if a.head_sha == prefer_sha]
                 + [a for a in found if a.head_sha != prefer_sha])
    why: list[str] = []
    checked: dict[int, tuple[bool, str]] = {}
    for art in found:
        if art.run_id is None:
            continue
        if art.run_id not in checked:
            if len(checked) >= MAX_RUN_CHECKS:
                break
            checked[art.run_id] = _run_ok(repo, art.run_id, branch)
        ok, reason = checked[art.run_id]
        if ok:
            return Lookup(art, exact=prefer_sha is not None and art.head_sha == prefer_sha)
        why.append(reason)
    detail = "; ".join(why[:3]) + ("; …" if len(why) > 3 else "")
    return Lookup(None, f"no artifact named {name!r} from a successful run on branch {branch!r}"
                        + (f" ({detail})" if detail else ""))


# --------------------------------------------------------------------------- download


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def redirect_policy(url: str, api_url: str) -> bool | None:
    """How to follow a redirect to ``url``: ``True`` with the token (the API's own origin),
    ``False`` without it (GitHub's blob storage, https only), ``None`` not at all."""
    if _origin(url) == _origin(api_url):
        return True
    scheme, host, _ = _origin(url)
    if scheme == "https" and any(host.endswith(sfx) for sfx in STORAGE_HOST_SUFFIXES):
        return False
    return None


def _fetch(url: str, token: str, api_url: str, dest: Path, session: Any, max_bytes: int) -> None:
    import requests

    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
               "User-Agent": "tokenspy-action"}
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    with_token = redirect_policy(url, api_url)
    if with_token is None:
        raise ArtifactError(f"refusing to download from {urlsplit(url).netloc}: not the API host {api_url}")
    for _ in range(MAX_REDIRECTS + 1):
        try:
            resp = session.get(url, headers={**headers, **(auth if with_token else {})}, stream=True,
                               allow_redirects=False, timeout=(10, 120))
        except requests.RequestException as exc:
            raise ArtifactError(f"download failed ({type(exc).__name__})") from None
        with resp:
            if resp.status_code in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                if not location:
                    raise ArtifactError(f"download redirect ({resp.status_code}) without a Location")
                url = urljoin(url, location)
                with_token = redirect_policy(url, api_url)
                if with_token is None:
                    raise ArtifactError(f"refusing to follow the download redirect to {urlsplit(url).netloc} "
                                        "(neither the API host nor GitHub's artifact storage)")
                continue
            if resp.status_code != 200:
                raise ArtifactError(f"download answered HTTP {resp.status_code}")
            written = 0
            with open(dest, "wb") as fh:
                for chunk in resp.iter_content(chunk_size=1 << 20):
                    written += len(chunk)
                    if written > max_bytes:
                        raise ArtifactError(f"artifact is larger than {max_bytes:,} bytes")
                    fh.write(chunk)
            return
    raise ArtifactError(f"more than {MAX_REDIRECTS} redirects")


def _pick_member(zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    files = [m for m in zf.infolist() if not m.is_dir()]
    dbs = [m for m in files if m.filename.lower().endswith(DB_SUFFIXES)] or (files if len(files) == 1 else [])
    if not dbs:
        names = ", ".join(m.filename for m in files[:5]) or "nothing"
        raise ArtifactError(f"the artifact holds no DB file (found {names})")
    dbs.sort(key=lambda m: (Path(m.filename).name != "usage.db", m.filename.count("/"), m.filename))
    return dbs[0]


def extract_db(zip_path: Path, dest: Path, max_bytes: int = MAX_DOWNLOAD_BYTES * 4) -> Path:
    """Copy the DB out of the artifact zip to ``dest`` (our own name: no path from the zip is
    used) and check that it is a SQLite DB."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            member = _pick_member(zf)
            if member.file_size > max_bytes:
                raise ArtifactError(f"{member.filename} is larger than {max_bytes:,} bytes")
            with zf.open(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile:
        raise ArtifactError("the download is not a zip file") from None
    try:
        store.check_db_path(dest)
    except store.DBError:
        raise ArtifactError(f"{member.filename} in the artifact is not a SQLite database") from None
    return dest


def download_db(art: ArtifactRef, *, token: str, api_url: str, dest_dir: str | os.PathLike[str],
                session: Any = None, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Download ``art`` and extract its DB into ``dest_dir``; returns the DB's path."""
    import requests

    directory = Path(dest_dir)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="tokenspy-artifact-", suffix=".zip", dir=directory)
    os.close(fd)
    own = session is None
    session = session or requests.Session()
    try:
        _fetch(art.download_url, token, api_url, Path(tmp), session, max_bytes)
        return extract_db(Path(tmp), directory / "baseline.db")
    finally:
        if own:
            session.close()
        Path(tmp).unlink(missing_ok=True)


def snapshot_db(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """A self-contained copy of a DB (its WAL folded in) for upload, via SQLite's backup API.
    The source is opened read-only and never written."""
    import sqlite3
    from contextlib import closing

    out = Path(dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with closing(store.open_readonly(src)) as conn, closing(sqlite3.connect(out)) as copy:
        conn.backup(copy)
    return out
