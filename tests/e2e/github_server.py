"""A loopback stand-in for the GitHub REST API: the endpoints the action calls, in memory.

A threaded ``http.server`` on 127.0.0.1 (random port), optionally under a path prefix like GitHub
Enterprise Server's ``/api/v3``. Every URL it returns is built on its own ``base_url``, as PyGithub
requires. It checks the token, paginates lists with ``per_page``/``page`` and a ``Link`` header,
logs every request, and has switches for the failure modes the action must survive:

- ``fork_mode``: writes answer 403 "Resource not accessible by integration" (a fork PR's token);
- ``actions_forbidden``: the artifacts list answers 403 (no ``actions: read``);
- ``redirect_to``: where the artifact zip redirects (default: this server's ``/_blob/``).
"""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

FORBIDDEN = {"message": "Resource not accessible by integration",
             "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
             "status": "403"}
TIMESTAMP = "2025-01-01T00:00:00Z"


@dataclass
class Request:
    method: str
    path: str  # without the prefix and the query
    query: dict[str, list[str]]
    authorization: str | None
    body: Any = None
    status: int = 0


@dataclass
class State:
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # newest first, as the API lists them
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)


class GitHubServer:
    def __init__(self, owner: str = "acme", repo: str = "shop", token: str = "ghs_loopbackTOKEN123",
                 prefix: str = "", default_branch: str = "main") -> None:
        self.owner, self.repo, self.token, self.prefix = owner, repo, token, prefix.rstrip("/")
        self.default_branch = default_branch
        self.repo_id = 4242
        self.state = State()
        self.log: list[Request] = []
        self.fork_mode = False
        self.user_login: str | None = None  # None: the token is a GITHUB_TOKEN (GET /user is 403)
        self.actions_forbidden = False
        self.redirect_to: str | None = None
        self._ids = iter(range(1001, 10**9))
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> GitHubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        """What GITHUB_API_URL is set to."""
        return self.host + self.prefix

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    # ------------------------------------------------------------------ fixtures
    def repo_json(self, full_name: str | None = None, repo_id: int | None = None) -> dict[str, Any]:
        owner, name = (full_name or self.full_name).split("/")
        api = f"{self.base_url}/repos/{owner}/{name}"
        return {
            "id": repo_id or self.repo_id, "node_id": "R_1", "name": name, "full_name": f"{owner}/{name}",
            "private": False, "fork": full_name is not None and full_name != self.full_name,
            "owner": {"login": owner, "id": 1, "type": "Organization", "url": f"{self.base_url}/users/{owner}"},
            "url": api, "html_url": f"{self.host}/{owner}/{name}", "default_branch": self.default_branch,
            "pulls_url": api + "/pulls{/number}", "issues_url": api + "/issues{/number}",
        }

    def add_pull(self, number: int, base_sha: str, head_sha: str, *, base_ref: str | None = None,
                 head_ref: str = "feature", head_repo: str | None = None) -> dict[str, Any]:
        """A pull request; ``head_repo`` other than this repository makes it a fork's."""
        api = f"{self.base_url}/repos/{self.full_name}"
        head_full = head_repo or self.full_name
        pr = {
            "id": 50000 + number, "number": number, "state": "open", "title": "Make it dearer",
            "url": f"{api}/pulls/{number}", "issue_url": f"{api}/issues/{number}",
            "comments_url": f"{api}/issues/{number}/comments",
            "html_url": f"{self.host}/{self.full_name}/pull/{number}",
            "user": {"login": "dev", "id": 7, "type": "User"},
            "head": {"ref": head_ref, "sha": head_sha, "label": f"{head_full.split('/')[0]}:{head_ref}",
                     "repo": self.repo_json(head_full, self.repo_id if head_repo is None else 9999)},
            "base": {"ref": base_ref or self.default_branch, "sha": base_sha,
                     "label": f"{self.owner}:{base_ref or self.default_branch}", "repo": self.repo_json()},
        }
        self.state.pulls[number] = pr
        self.state.comments.setdefault(number, [])
        return pr

    def set_labels(self, number: int, *names: str) -> None:
        self.state.pulls[number]["labels"] = [{"id": 100 + i, "name": n, "color": "ededed"}
                                              for i, n in enumerate(names)]

    def pull_request_event(self, number: int, action: str = "synchronize") -> dict[str, Any]:
        """The webhook payload a runner writes to GITHUB_EVENT_PATH for ``pull_request``."""
        pr = self.state.pulls[number]
        return {"action": action, "number": number, "pull_request": pr, "repository": self.repo_json(),
                "sender": {"login": "dev", "id": 7, "type": "User"}}

    def push_event(self, after: str, branch: str | None = None) -> dict[str, Any]:
        branch = branch or self.default_branch
        return {"ref": f"refs/heads/{branch}", "before": "0" * 40, "after": after,
                "repository": {**self.repo_json(), "master_branch": self.default_branch},
                "pusher": {"name": "dev"}, "sender": {"login": "dev", "id": 7, "type": "User"},
                "head_commit": {"id": after, "message": "change"}}

    def add_comment(self, number: int, body: str, user: str = "someone") -> dict[str, Any]:
        cid = self.next_id()
        api = f"{self.base_url}/repos/{self.full_name}"
        comment = {
            "id": cid, "node_id": f"IC_{cid}", "body": body,
            "url": f"{api}/issues/comments/{cid}",
            "html_url": f"{self.host}/{self.full_name}/pull/{number}#issuecomment-{cid}",
            "issue_url": f"{api}/issues/{number}",
            "user": {"login": user, "id": 41898282, "type": "Bot" if user.endswith("[bot]") else "User"},
            "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "author_association": "NONE",
        }
        self.state.comments.setdefault(number, []).append(comment)
        return comment

    def add_artifact(self, name: str, db: str | Path | bytes, *, branch: str | None = None,
                     head_sha: str = "b" * 40, conclusion: str | None = "success", event: str = "push",
                     expired: bool = False, fork: bool = False, member: str = "usage.db",
                     run_id: int | None = None) -> dict[str, Any]:
        """An artifact holding ``db`` (a path or raw zip bytes), made by a workflow run."""
        aid = self.next_id()
        run_id = run_id or self.next_id()
        branch = branch or self.default_branch
        if isinstance(db, bytes):
            blob = db
        else:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.write(db, member)
            blob = buf.getvalue()
        api = f"{self.base_url}/repos/{self.full_name}"
        head_repo_id = 9999 if fork else self.repo_id
        art = {
            "id": aid, "node_id": f"MDg6QXJ0aWZhY3Q{aid}", "name": name, "size_in_bytes": len(blob),
            "url": f"{api}/actions/artifacts/{aid}", "archive_download_url": f"{api}/actions/artifacts/{aid}/zip",
            "expired": expired, "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "expires_at": "2025-04-01T00:00:00Z",
            "digest": None,
            "workflow_run": {"id": run_id, "repository_id": self.repo_id, "head_repository_id": head_repo_id,
                             "head_branch": branch, "head_sha": head_sha},
        }
        self.state.runs[run_id] = {
            "id": run_id, "name": "cost", "node_id": f"WFR_{run_id}", "head_branch": branch, "head_sha": head_sha,
            "path": ".github/workflows/cost.yml", "run_number": run_id % 1000, "event": event,
            "status": "completed" if conclusion else "in_progress", "conclusion": conclusion,
            "workflow_id": 77, "url": f"{api}/actions/runs/{run_id}",
            "html_url": f"{self.host}/{self.full_name}/actions/runs/{run_id}",
            "created_at": TIMESTAMP, "updated_at": TIMESTAMP,
            "repository": self.repo_json(),
            "head_repository": self.repo_json("fork/shop", 9999) if fork else self.repo_json(),
            "head_repository_id": head_repo_id,
        }
        self.state.blobs[aid] = blob
        self.state.artifacts.insert(0, art)
        return art

    # ------------------------------------------------------------------ inspection
    def requests(self, method: str | None = None, path: str | None = None) -> list[Request]:
        return [r for r in self.log if (method is None or r.method == method)
                and (path is None or re.fullmatch(path, r.path))]

    @property
    def writes(self) -> list[Request]:
        return [r for r in self.log if r.method in ("POST", "PATCH", "PUT", "DELETE")]

    def comments(self, number: int) -> list[dict[str, Any]]:
        return self.state.comments.get(number, [])

    # ------------------------------------------------------------------ HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_PATCH(self) -> None:
                self._dispatch("PATCH")

            def do_DELETE(self) -> None:
                self._dispatch("DELETE")

            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                path = parts.path
                if server.prefix and not path.startswith("/_blob/"):
                    # GHES: the API lives under /api/v3; a request outside it is a bug of the client
                    path = path[len(server.prefix):] if path.startswith(server.prefix + "/") else "/<outside>" + path
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                req = Request(method, path, parse_qs(parts.query), self.headers.get("Authorization"), body)
                with server._lock:
                    server.log.append(req)
                status, headers, payload = server._route(req)
                req.status = status
                data = (payload if isinstance(payload, bytes) else b"" if payload is None
                        else json.dumps(payload).encode())
                self.send_response(status)
                ctype = "application/zip" if isinstance(payload, bytes) else "application/json; charset=utf-8"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _authorized(self, req: Request) -> bool:
        return req.authorization in (f"token {self.token}", f"Bearer {self.token}")

    def _page(self, req: Request, items: list[dict[str, Any]], key: str | None = None
              ) -> tuple[int, dict[str, str], Any]:
        per_page = min(int(req.query.get("per_page", ["30"])[0]), 100)
        page = max(int(req.query.get("page", ["1"])[0]), 1)
        chunk = items[(page - 1) * per_page: page * per_page]
        last = max(1, -(-len(items) // per_page))
        headers = {}
        if page < last:
            query = {k: v[0] for k, v in req.query.items()}
            links = []
            for rel, n in (("next", page + 1), ("last", last)):
                links.append(f'<{self.base_url}{req.path}?{urlencode({**query, "page": n})}>; rel="{rel}"')
            headers["Link"] = ", ".join(links)
        payload: Any = chunk if key is None else {"total_count": len(items), key: chunk}
        return 200, headers, payload

    def _route(self, req: Request) -> tuple[int, dict[str, str], Any]:
        m = re.fullmatch(r"/_blob/(\d+)", req.path)
        if m and req.method == "GET":  # the "storage" the zip redirects to (pre-signed: no token needed)
            blob = self.state.blobs.get(int(m.group(1)))
            return (200, {}, blob) if blob is not None else (404, {}, {"message": "BlobNotFound"})
        if not self._authorized(req):
            return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        if req.path == "/user" and req.method == "GET":
            # what GitHub answers a workflow's GITHUB_TOKEN (an installation token, no user)
            if self.user_login is None:
                return 403, {}, FORBIDDEN
            return 200, {}, {"login": self.user_login, "id": 99, "type": "User"}
        repo = f"/repos/{self.owner}/{self.repo}"
        if not req.path.startswith(repo):
            return 404, {}, {"message": "Not Found"}
        rest = req.path[len(repo):]
        if rest == "" and req.method == "GET":
            return 200, {}, self.repo_json()
        if m := re.fullmatch(r"/pulls/(\d+)", rest):
            pr = self.state.pulls.get(int(m.group(1)))
            return (200, {}, pr) if pr and req.method == "GET" else (404, {}, {"message": "Not Found"})
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(m.group(1))
            if number not in self.state.pulls:
                return 404, {}, {"message": "Not Found"}
            if req.method == "GET":
                return self._page(req, self.comments(number))
            if req.method == "POST":
                if self.fork_mode:
                    return 403, {}, FORBIDDEN
                body = (req.body or {}).get("body")
                if not isinstance(body, str) or len(body) > 65536:
                    return 422, {}, {"message": "Validation Failed", "errors": [{"field": "body"}]}
                return 201, {}, self.add_comment(number, body, user=self.user_login or "github-actions[bot]")
        if m := re.fullmatch(r"/issues/comments/(\d+)", rest):
            cid = int(m.group(1))
            found = [c for cs in self.state.comments.values() for c in cs if c["id"] == cid]
            if not found:
                return 404, {}, {"message": "Not Found"}
            if req.method == "GET":
                return 200, {}, found[0]
            if req.method == "PATCH":
                if self.fork_mode:
                    return 403, {}, FORBIDDEN
                body = (req.body or {}).get("body")
                if not isinstance(body, str) or len(body) > 65536:
                    return 422, {}, {"message": "Validation Failed", "errors": [{"field": "body"}]}
                found[0]["body"] = body
                found[0]["updated_at"] = "2025-01-02T00:00:00Z"
                return 200, {}, found[0]
            if req.method == "DELETE":
                if self.fork_mode:
                    return 403, {}, FORBIDDEN
                for cs in self.state.comments.values():
                    cs[:] = [c for c in cs if c["id"] != cid]
                return 204, {}, None
        if rest == "/actions/artifacts" and req.method == "GET":
            if self.actions_forbidden:
                return 403, {}, {**FORBIDDEN, "documentation_url": "https://docs.github.com/rest/actions/artifacts"}
            name = req.query.get("name", [None])[0]
            items = [a for a in self.state.artifacts if name is None or a["name"] == name]
            return self._page(req, items, "artifacts")
        if (m := re.fullmatch(r"/actions/artifacts/(\d+)/zip", rest)) and req.method == "GET":
            aid = int(m.group(1))
            if aid not in self.state.blobs:
                return 404, {}, {"message": "Not Found"}
            if any(a["id"] == aid and a["expired"] for a in self.state.artifacts):
                return 410, {}, {"message": "Artifact has expired"}
            target = self.redirect_to or f"{self.host}/_blob/"
            return 302, {"Location": f"{target}{aid}?sig=presigned"}, {}
        if (m := re.fullmatch(r"/actions/runs/(\d+)", rest)) and req.method == "GET":
            run = self.state.runs.get(int(m.group(1)))
            return (200, {}, run) if run else (404, {}, {"message": "Not Found"})
        return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
