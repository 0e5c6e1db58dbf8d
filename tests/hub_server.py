"""A local Hugging Face Hub speaking the endpoints that huggingface_hub 2.4 uses to publish and list models.

- `GET  /api/whoami-v2`                              token check
- `POST /api/repos/create`                           `{name, organization, visibility, type}` → `{url}`; 409 if it exists
- `POST /api/validate-yaml`                          `{content, repoType}` → `{errors, warnings}`; 400 on bad metadata
- `POST /api/models/{repo}/preupload/{rev}`          `{files: [{path, sample, size}]}` → upload mode per file
- `POST /api/models/{repo}/commit/{rev}`             NDJSON: a header line, then `file` lines (base64 content)
- `GET  /api/models?filter=&search=&sort=&limit=&cardData=`   model listing (a JSON list, no Link header)
- `GET  /api/models/{repo}[/revision/{rev}]`        model info: `{id, sha, private, downloads, siblings}`
- `GET  /{repo}/resolve/{rev}/{path}`                raw file bytes (a file added as a `Path` streams from disk)
- `GET  /api/datasets/{repo}/tree/{rev}[/{path}]`   a dataset's files and folders (`recursive=true` for all below)
- `GET  /datasets/{repo}/resolve/{rev}/{path}`       a dataset's file bytes (HEAD for its metadata)

Every file is answered `uploadMode: regular`, so uploads travel base64-encoded inside the
commit payload and the test can compare the bytes. `HubServer.repos[repo_id]` holds
`{"private", "files": {path: bytes}, "commits", "downloads"}`; `.requests` logs every call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from servers import Serving

TOKEN = "hf_test_token_0123456789"


def _front_matter(text: str) -> dict[str, Any]:
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end < 0:
        raise ValueError("the metadata block is not closed with ---")
    data = yaml.safe_load(text[4:end]) or {}
    if not isinstance(data, dict):
        raise ValueError("the metadata must be a mapping")
    return data


def _etag(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha1(data).hexdigest()
    st = data.stat()  # a large file on disk: its identity, not a hash of its bytes on every request
    return hashlib.sha1(f"{data.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()


class HubServer(Serving):
    """Run with `with HubServer() as hub:`; point `HF_ENDPOINT` at `hub.url`; use token `TOKEN`."""

    def __init__(self, user: str = "tester", tokens: tuple[str, ...] = (TOKEN,)) -> None:
        self.user, self.tokens = user, set(tokens)
        self.repos: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _go(self, method: str) -> None:
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
                query = parse_qs(parts.query, keep_blank_values=True)
                auth = self.headers.get("Authorization", "")
                token = auth[7:] if auth.startswith("Bearer ") else None
                with outer.lock:
                    outer.requests.append({"method": method, "path": unquote(parts.path), "query": query,
                                           "token": token, "size": len(raw)})
                    status, headers, body = outer.handle(method, unquote(parts.path), query, raw, token)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                path = body if isinstance(body, Path) else None
                self.send_header("Content-Length", str(path.stat().st_size if path else len(body)))
                self.end_headers()
                if method == "HEAD":
                    return
                if path is None:
                    self.wfile.write(body)
                    return
                with path.open("rb") as f:
                    while chunk := f.read(1 << 20):
                        self.wfile.write(chunk)

            def do_GET(self) -> None:
                self._go("GET")

            def do_HEAD(self) -> None:
                self._go("HEAD")

            def do_POST(self) -> None:
                self._go("POST")

        self._serve(H)
        self.url = f"http://127.0.0.1:{self.port}"

    # --- helpers for tests ------------------------------------------------------------------
    def add_model(self, repo_id: str, readme: str, *, downloads: int = 0, private: bool = False) -> None:
        """Put a model on the Hub directly (for listings)."""
        self.repos[repo_id] = {"private": private, "files": {"README.md": readme.encode()}, "commits": [],
                               "downloads": downloads}

    def add_files(self, repo_id: str, files: dict[str, bytes | Path]) -> None:
        """Put a model's files on the Hub directly; a `Path` is served from disk (for large weights)."""
        repo = self.repos.setdefault(repo_id, {"private": False, "files": {}, "commits": [], "downloads": 0})
        repo["files"].update(files)

    def paths(self, method: str | None = None) -> list[str]:
        return [r["path"] for r in self.requests if method is None or r["method"] == method]

    # --- protocol ---------------------------------------------------------------------------
    @staticmethod
    def _json(obj: Any, status: int = 200, error_code: str | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if error_code:
            headers["X-Error-Code"] = error_code
        return status, headers, json.dumps(obj).encode()

    def _unauthorized(self) -> tuple[int, dict[str, str], bytes]:
        return self._json({"error": "Invalid credentials in Authorization header"}, 401)

    def handle(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
               token: str | None) -> tuple[int, dict[str, str], bytes | Path]:
        authed = token in self.tokens
        dataset = self._dataset_files(method, path, query, authed)
        if dataset is not None:
            return dataset
        if path == "/api/whoami-v2":
            if not authed:
                return self._unauthorized()
            return self._json({"type": "user", "id": "u1", "name": self.user, "fullname": "Test User",
                               "email": None, "orgs": [], "isPro": False,
                               "auth": {"type": "access_token",
                                        "accessToken": {"displayName": "tests", "role": "write"}}})
        if path == "/api/validate-yaml" and method == "POST":
            body = json.loads(raw)
            try:
                meta = _front_matter(body["content"])
            except (ValueError, yaml.YAMLError) as e:
                return self._json({"errors": [{"message": f"Invalid YAML: {e}"}]}, 400)
            errors = []
            if "license" in meta and not isinstance(meta["license"], str):
                errors.append({"message": '"license" must be a string'})
            if "tags" in meta and not (isinstance(meta["tags"], list) and all(isinstance(t, str) for t in meta["tags"])):
                errors.append({"message": '"tags" must be an array of strings'})
            if errors:
                return self._json({"errors": errors}, 400)
            warnings = [] if meta else [{"message": "empty or missing yaml metadata in repo card"}]
            return self._json({"errors": [], "warnings": warnings})
        if path == "/api/repos/create" and method == "POST":
            if not authed:
                return self._unauthorized()
            body = json.loads(raw)
            repo_id = f"{body.get('organization') or self.user}/{body['name']}"
            if repo_id in self.repos:
                return self._json({"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"},
                                  409)
            self.repos[repo_id] = {"private": body.get("visibility") == "private", "files": {}, "commits": [],
                                   "downloads": 0}
            return self._json({"url": f"{self.url}/{repo_id}", "name": repo_id, "id": hashlib.sha1(
                repo_id.encode()).hexdigest()[:24]})
        m = re.fullmatch(r"/api/(?:models|datasets)/([^/]+/[^/]+)/(preupload|commit)/(.+)", path)
        if m and method == "POST":
            repo_id, what = m.group(1), m.group(2)
            if not authed:
                return self._unauthorized()
            if repo_id not in self.repos:
                return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
            if what == "preupload":
                files = json.loads(raw)["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                              "oid": None} for f in files], "commitOid": "0" * 40})
            return self._commit(repo_id, raw)
        if path == "/api/models" and method == "GET":
            return self._list(query, authed)
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?", path)
        if m and method == "GET":
            repo = self.repos.get(m.group(1))
            if repo is None or (repo["private"] and not authed):
                return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
            return self._json({"id": m.group(1), "modelId": m.group(1), "sha": "1" * 40, "private": repo["private"],
                               "downloads": repo["downloads"], "tags": [],
                               "siblings": [{"rfilename": f} for f in sorted(repo["files"])]})
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and method in ("GET", "HEAD"):
            repo = self.repos.get(m.group(1))
            if repo is None or (repo["private"] and not authed):
                return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
            data = repo["files"].get(m.group(3))
            if data is None:
                return self._json({"error": "Entry not found"}, 404, "EntryNotFound")
            etag = _etag(data)
            return 200, {"Content-Type": "application/octet-stream", "ETag": f'"{etag}"',
                         "X-Repo-Commit": "1" * 40}, data
        return self._json({"error": f"no route for {method} {path}"}, 404)

    def _dataset_files(self, method: str, path: str, query: dict[str, list[str]],
                       authed: bool) -> tuple[int, dict[str, str], bytes | Path] | None:
        """A dataset's tree listing and file downloads (what `list_repo_tree` and `hf_hub_download` ask); None: not one."""
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/([^/]+)(?:/(.+))?", path)
        r = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not ((m and method == "GET") or (r and method in ("GET", "HEAD"))):
            return None
        repo = self.repos.get((m or r).group(1))
        if repo is None or (repo["private"] and not authed):
            return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
        if r:
            data = repo["files"].get(r.group(3))
            if data is None:
                return self._json({"error": "Entry not found"}, 404, "EntryNotFound")
            return 200, {"Content-Type": "application/octet-stream", "ETag": f'"{_etag(data)}"',
                         "X-Repo-Commit": "1" * 40}, data
        base = (m.group(3) or "").strip("/")
        prefix = f"{base}/" if base else ""
        recursive = (query.get("recursive") or ["false"])[0] == "true"
        entries: dict[str, dict[str, Any]] = {}
        for name, data in repo["files"].items():
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            for depth in range(1, len(parts)):  # the folders on the way
                if depth == 1 or recursive:
                    folder = prefix + "/".join(parts[:depth])
                    entries[folder] = {"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(),
                                       "size": 0, "path": folder}
            if len(parts) == 1 or recursive:
                size = data.stat().st_size if isinstance(data, Path) else len(data)
                entries[name] = {"type": "file", "oid": _etag(data), "size": size, "path": name}
        if base and not entries:
            return self._json({"error": f"{base} does not exist on main"}, 404, "EntryNotFound")
        return self._json([entries[k] for k in sorted(entries)])

    def _commit(self, repo_id: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        lines = [json.loads(x) for x in raw.decode().splitlines() if x.strip()]
        if not lines or lines[0].get("key") != "header":
            return self._json({"error": "the first line must be the header"}, 400)
        repo = self.repos[repo_id]
        added = []
        for item in lines[1:]:
            if item["key"] == "file":
                value = item["value"]
                if value.get("encoding") != "base64":
                    return self._json({"error": "only base64 file content is supported"}, 400)
                repo["files"][value["path"]] = base64.b64decode(value["content"])
                added.append(value["path"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                repo["files"].pop(item["value"]["path"], None)
            else:
                return self._json({"error": f"unexpected commit line {item['key']!r} (all files are regular)"}, 400)
        oid = hashlib.sha1(raw).hexdigest()
        repo["commits"].append({"summary": lines[0]["value"].get("summary"), "files": added, "oid": oid})
        return self._json({"success": True, "commitOid": oid, "commitUrl": f"{self.url}/{repo_id}/commit/{oid}",
                           "pullRequestUrl": None})

    def _list(self, query: dict[str, list[str]], authed: bool) -> tuple[int, dict[str, str], bytes]:
        filters = query.get("filter", [])
        search = (query.get("search") or [""])[0].lower()
        out = []
        for repo_id, repo in self.repos.items():
            if repo["private"] and not authed:
                continue
            readme = repo["files"].get("README.md", b"").decode()
            try:
                meta = _front_matter(readme)
            except (ValueError, yaml.YAMLError):
                meta = {}
            tags = list(meta.get("tags") or [])
            for key in ("library_name", "license"):
                if meta.get(key):
                    tags.append(meta[key] if key == "library_name" else f"license:{meta[key]}")
            if any(f not in tags for f in filters) or (search and search not in repo_id.lower()):
                continue
            item = {"_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
                    "author": repo_id.split("/")[0], "downloads": repo["downloads"], "likes": 0,
                    "private": repo["private"], "tags": tags, "library_name": meta.get("library_name")}
            if query.get("cardData"):
                item["cardData"] = meta
            out.append(item)
        if (query.get("sort") or [""])[0] == "downloads":
            out.sort(key=lambda x: -x["downloads"])
        limit = int((query.get("limit") or ["1000"])[0])
        return self._json(out[:limit])
