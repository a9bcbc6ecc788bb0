"""A local stand-in for the Hugging Face Hub, for tests: an in-memory Hub on 127.0.0.1 speaking the endpoints that
huggingface_hub 2.4's client calls to publish and to download.

- `POST /api/repos/create`, `POST /api/validate-yaml`;
- `POST /api/{type}s/{repo}/preupload/{revision}`: every file is "regular", so the client sends it inline (base64)
  in the commit, safetensors included (no LFS, no Xet);
- `POST /api/{type}s/{repo}/commit/{revision}` (ndjson), `POST /api/{type}s/{repo}/branch/{branch}`,
  `POST /api/spaces/{repo}/variables`;
- `GET /api/{type}s/{repo}[/revision/{revision}]` (repo info);
- `HEAD` and `GET /[{type}s/]{repo}/resolve/{revision}/{file}` with the headers `hf_hub_download` needs (`ETag`,
  `X-Repo-Commit`, `Content-Length`; `X-Error-Code` on a 404).

Writes need `Authorization: Bearer <token>` with the server's token. Anything else answers 404 and is recorded in
`unhandled`, so a test sees when the client starts calling something new. `fail_commits = N` makes the next N
commits answer 500: a push that fails halfway (the repo exists, nothing is committed).
"""

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

TYPE_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_oid(content: bytes) -> str:
    """The git-sha1 of a file, as the Hub reports it for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    sdk: str | None = None
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)

    def add_commit(self, parent: Commit | None, message: str, files: dict[str, bytes], branch: str) -> Commit:
        digest = hashlib.sha1((parent.oid if parent else "").encode() + message.encode())
        for path in sorted(files):
            digest.update(path.encode() + git_blob_oid(files[path]).encode())
        commit = Commit(digest.hexdigest(), message, files)
        self.commits[commit.oid] = commit
        self.branches[branch] = commit.oid
        return commit


class LocalHub:
    """
    An in-memory Hub on `http://127.0.0.1:<free port>` (`url`), serving until `stop()` (or the end of a `with`).

    Args:
        token (`str`): the only token accepted for writes and private reads.
    """

    def __init__(self, token: str):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.unhandled: list[tuple[str, str]] = []
        self.authorizations: set[str] = set()  # Authorization headers received
        self.fail_commits = 0  # the next commits to refuse with a 500
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)

    def start(self) -> "LocalHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        return self.repo(repo_id, repo_type).resolve(revision).files


def _handler_for(hub: LocalHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # keep test output quiet
            pass

        def do_GET(self):
            self._dispatch("GET")

        def do_HEAD(self):
            self._dispatch("HEAD")

        def do_POST(self):
            self._dispatch("POST")

        # -- plumbing --------------------------------------------------------------------------------------------

        def _dispatch(self, method: str):
            path = urlsplit(self.path).path
            body = self._read_body()
            authorization = self.headers.get("Authorization")
            with hub._lock:
                hub.requests.append((method, path))
                if authorization:
                    hub.authorizations.add(authorization)
                try:
                    self._route(method, path, body)
                except _Reply as reply:
                    self._send(reply.status, reply.payload, reply.headers, head=method == "HEAD")

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, payload, headers: dict | None = None, head: bool = False):
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            content_type = "application/octet-stream" if isinstance(payload, bytes) else "application/json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _authorized(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {hub.token}"

        def _require_write(self):
            if not self._authorized():
                raise _Reply(
                    401,
                    {"error": "Invalid credentials in Authorization header"},
                    {"X-Error-Message": "Invalid credentials in Authorization header"},
                )

        def _find_repo(self, repo_type: str, repo_id: str) -> Repo:
            repo = hub.repos.get((repo_type, repo_id))
            if repo is None or (repo.private and not self._authorized()):
                raise _Reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            return repo

        # -- routes ----------------------------------------------------------------------------------------------

        def _route(self, method: str, path: str, body: bytes):
            parts = [unquote(part) for part in path.strip("/").split("/")]
            if method == "POST" and parts == ["api", "repos", "create"]:
                return self._create_repo(json.loads(body))
            if method == "POST" and parts == ["api", "validate-yaml"]:
                raise _Reply(200, {"errors": [], "warnings": []})
            if len(parts) >= 4 and parts[0] == "api" and parts[1] in ("models", "datasets", "spaces"):
                repo_type, repo_id, rest = parts[1][:-1], "/".join(parts[2:4]), parts[4:]
                if method == "GET" and (not rest or (len(rest) == 2 and rest[0] == "revision")):
                    return self._repo_info(repo_type, repo_id, rest[1] if rest else "main")
                if method == "POST" and len(rest) >= 2 and rest[0] in ("preupload", "commit", "branch"):
                    revision = "/".join(rest[1:])
                    action = {"preupload": self._preupload, "commit": self._commit, "branch": self._branch}[rest[0]]
                    return action(repo_type, repo_id, revision, body)
                if method == "POST" and repo_type == "space" and rest == ["variables"]:
                    return self._set_variable(repo_id, json.loads(body))
            if method in ("GET", "HEAD") and "resolve" in parts:
                index = parts.index("resolve")
                head = parts[:index]
                repo_type = "model"
                if len(head) == 3 and head[0] in ("datasets", "spaces"):
                    repo_type, head = head[0][:-1], head[1:]
                if len(head) == 2 and len(parts) > index + 2:
                    return self._resolve(repo_type, "/".join(head), parts[index + 1], "/".join(parts[index + 2 :]))
            hub.unhandled.append((method, path))
            raise _Reply(404, {"error": f"not implemented by the local test hub: {method} {path}"})

        def _create_repo(self, payload: dict):
            self._require_write()
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            url = f"{hub.url}/{TYPE_PREFIXES[repo_type]}{repo_id}"
            if (repo_type, repo_id) in hub.repos:
                raise _Reply(409, {"error": f"You already created this {repo_type} repo", "url": url})
            repo = Repo(repo_type, repo_id, private=payload.get("visibility") == "private", sdk=payload.get("sdk"))
            # As on the Hub, a new repo starts with one commit holding .gitattributes.
            repo.add_commit(None, "initial commit", {".gitattributes": b"*.safetensors filter=lfs diff=lfs\n"}, "main")
            hub.repos[(repo_type, repo_id)] = repo
            raise _Reply(200, {"url": url, "name": repo_id})

        def _repo_info(self, repo_type: str, repo_id: str, revision: str):
            repo = self._find_repo(repo_type, repo_id)
            commit = self._commit_at(repo, revision)
            info = {
                "id": repo_id,
                "sha": commit.oid,
                "private": repo.private,
                "siblings": [{"rfilename": name} for name in sorted(commit.files)],
            }
            if repo.sdk:
                info["sdk"] = repo.sdk
            raise _Reply(200, info)

        def _preupload(self, repo_type: str, repo_id: str, revision: str, body: bytes):
            self._require_write()
            commit = self._commit_at(self._find_repo(repo_type, repo_id), revision)
            files = [
                {
                    "path": item["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_oid(commit.files[item["path"]]) if item["path"] in commit.files else None,
                }
                for item in json.loads(body)["files"]
            ]
            raise _Reply(200, {"files": files})

        def _commit(self, repo_type: str, repo_id: str, revision: str, body: bytes):
            self._require_write()
            repo = self._find_repo(repo_type, repo_id)
            if revision not in repo.branches:
                raise _Reply(404, {"error": f"Invalid rev id: {revision}"}, {"X-Error-Code": "RevisionNotFound"})
            if hub.fail_commits > 0:
                hub.fail_commits -= 1
                raise _Reply(500, {"error": "Internal Error: the local test hub refuses this commit"})
            parent = repo.resolve(revision)
            files, message = dict(parent.files), ""
            for line in body.splitlines():
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    message = value["summary"]
                elif key == "file" and value.get("encoding") == "base64":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    files = {p: c for p, c in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                else:
                    raise _Reply(422, {"error": f"the local test hub takes only inline regular files, got {key}"})
            commit = repo.add_commit(parent, message, files, revision)
            url = f"{hub.url}/{TYPE_PREFIXES[repo_type]}{repo_id}/commit/{commit.oid}"
            raise _Reply(200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

        def _branch(self, repo_type: str, repo_id: str, branch: str, body: bytes):
            self._require_write()
            repo = self._find_repo(repo_type, repo_id)
            if branch in repo.branches:
                raise _Reply(409, {"error": f"Branch {branch} already exists"})
            start = json.loads(body or b"{}").get("startingPoint") or "main"
            repo.branches[branch] = self._commit_at(repo, start).oid
            raise _Reply(200, {})

        def _set_variable(self, repo_id: str, payload: dict):
            self._require_write()
            repo = self._find_repo("space", repo_id)
            repo.variables[payload["key"]] = {"value": payload["value"], "description": payload.get("description")}
            raise _Reply(200, repo.variables)

        def _resolve(self, repo_type: str, repo_id: str, revision: str, filename: str):
            repo = self._find_repo(repo_type, repo_id)
            commit = self._commit_at(repo, revision)
            if filename not in commit.files:
                raise _Reply(
                    404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit.oid}
                )
            content = commit.files[filename]
            raise _Reply(200, content, {"ETag": f'"{git_blob_oid(content)}"', "X-Repo-Commit": commit.oid})

        def _commit_at(self, repo: Repo, revision: str) -> Commit:
            commit = repo.resolve(revision)
            if commit is None:
                raise _Reply(404, {"error": f"Invalid rev id: {revision}"}, {"X-Error-Code": "RevisionNotFound"})
            return commit

    return Handler


class _Reply(Exception):
    """Ends a route with this response."""

    def __init__(self, status: int, payload, headers: dict | None = None):
        super().__init__(status)
        self.status, self.payload, self.headers = status, payload, headers
