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

Spaces, and the LFS way binaries travel (what `fireact space deploy` uses):

- `POST /api/repos/create` with `type: space` creates `spaces/{repo}` with the `.gitattributes` the Hub writes
- `POST /api/{models,datasets,spaces}/{repo}/preupload/{rev}`: with `HubServer(lfs=True)`, `lfs` for a
  binary sample (a NUL byte or not UTF-8), 10 MB or more, or a `filter=lfs` pattern in the repo's
  `.gitattributes`, as the real Hub answers; `regular` otherwise
- `POST /[spaces/|datasets/]{repo}.git/info/lfs/objects/batch`   git-lfs batch API, `basic` transfer only
- `PUT  /lfs-objects/{oid}`                           the upload action (sha256 and size checked)
- `POST /[spaces/|datasets/]{repo}.git/info/lfs/objects/verify`  `{oid, size}`: 404 if not stored
- commit `lfsFile` lines `{path, algo, oid, size}` point at an uploaded object (422 if it is not there)
- `GET  /api/{type}s/{repo}/tree/{rev}`               the files (`list_repo_files`), LFS ones with `lfs`
- `GET  /api/{type}s/{repo}/xet-write-token/{rev}`    501: the stand-in does not speak Xet (set
  `HF_HUB_DISABLE_XET=1`, as huggingface_hub uploads through Xet whenever `hf_xet` is installed)
- `POST /api/spaces/{repo}/variables|secrets`         `{key, value, description}`; `GET` lists them
  (secrets without their values); `POST .../hardware` `{flavor}`; `GET .../runtime`
- `GET  /.well-known/openid-configuration`           the OpenID metadata a Space's login (`OPENID_PROVIDER_URL`) reads

Without `lfs=True` every file is answered `uploadMode: regular`, so uploads travel base64-encoded
inside the commit payload and the test can compare the bytes. `HubServer.repos[repo_id]` (a Space:
`repos["spaces/" + repo_id]`) holds `{"private", "files": {path: bytes}, "commits", "downloads"}`,
a Space also `"variables"`, `"secrets"`, `"hardware"` and `"sdk"`; `.lfs_objects` maps each
uploaded oid to its bytes, `.lfs_paths` the `(repo key, path)` committed through LFS; `.requests`
logs every call.
"""

from __future__ import annotations

import base64
import fnmatch
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
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub stores files from 10 MB up in LFS, text or not
# what the Hub writes into a new Space's .gitattributes (abridged): these go through LFS
SPACE_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.gguf", "*.gz", "*.h5", "*.joblib", "*.model", "*.npy", "*.npz",
    "*.onnx", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.safetensors", "*.tar", "*.tflite",
    "*.zip", "*.zst", "*tfevents*"))
_PREFIX = {"models": "", "datasets": "", "spaces": "spaces/"}  # `repos` keys: models and datasets by bare id


def _binary(sample: bytes) -> bool:
    """What the Hub calls binary: a NUL byte, or bytes that are not UTF-8 (a cut last character aside)."""
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(sample) - 3
    return False


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

    def __init__(self, user: str = "tester", tokens: tuple[str, ...] = (TOKEN,), *, lfs: bool = False) -> None:
        self.user, self.tokens, self.lfs = user, set(tokens), lfs
        self.repos: dict[str, dict[str, Any]] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.lfs_paths: set[tuple[str, str]] = set()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _go(self, method: str) -> None:
                parts = urlsplit(self.path)
                raw = self._body() if method in ("POST", "PUT", "DELETE") else b""
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

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                out = bytearray()
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    out += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return bytes(out)

            def do_GET(self) -> None:
                self._go("GET")

            def do_PUT(self) -> None:
                self._go("PUT")

            def do_HEAD(self) -> None:
                self._go("HEAD")

            def do_POST(self) -> None:
                self._go("POST")

            def do_DELETE(self) -> None:
                self._go("DELETE")

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

    def space(self, repo_id: str) -> dict[str, Any]:
        """A Space's record (`repos["spaces/" + repo_id]`)."""
        return self.repos[f"spaces/{repo_id}"]

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
        if path == "/.well-known/openid-configuration":  # a Space's login (OPENID_PROVIDER_URL) starts here
            return self._json({"issuer": self.url, "authorization_endpoint": f"{self.url}/oauth/authorize",
                               "token_endpoint": f"{self.url}/oauth/token", "jwks_uri": f"{self.url}/oauth/jwks",
                               "userinfo_endpoint": f"{self.url}/oauth/userinfo", "response_types_supported": ["code"],
                               "scopes_supported": ["openid", "profile"]})
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
            kind = body.get("type") or "model"
            key = f"spaces/{repo_id}" if kind == "space" else repo_id
            if key in self.repos:
                return self._json({"error": f"You already created this {kind} repo",
                                   "url": f"{self.url}/{key}"}, 409)
            self.repos[key] = {"private": body.get("visibility") == "private", "files": {}, "commits": [],
                               "downloads": 0}
            if kind == "space":
                if body.get("sdk") not in ("gradio", "docker", "static"):
                    self.repos.pop(key)
                    return self._json({"error": f"Invalid sdk {body.get('sdk')!r}"}, 400)
                self.repos[key].update(sdk=body["sdk"], hardware=body.get("hardware"), variables={}, secrets={},
                                       files={".gitattributes": SPACE_GITATTRIBUTES.encode()})
                for item in body.get("variables") or []:
                    self.repos[key]["variables"][item["key"]] = item["value"]
                for item in body.get("secrets") or []:
                    self.repos[key]["secrets"][item["key"]] = item["value"]
            return self._json({"url": f"{self.url}/{key}", "name": repo_id, "id": hashlib.sha1(
                key.encode()).hexdigest()[:24]})
        m = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit|tree|xet-write-token)/(.+)",
                         path)
        if m and method in ("POST", "GET"):
            key, what = _PREFIX[m.group(1)] + m.group(2), m.group(3)
            if not authed:
                return self._unauthorized()
            if key not in self.repos:
                return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
            if what == "xet-write-token":
                return self._json({"error": "this Hub stand-in speaks git-lfs, not Xet: set HF_HUB_DISABLE_XET=1"},
                                  501)
            if what == "tree":
                return self._tree(key)
            if what == "preupload":
                files = json.loads(raw)["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": self._mode(key, f),
                                              "shouldIgnore": False, "oid": None} for f in files],
                                   "commitOid": "0" * 40})
            return self._commit(key, raw)
        m = re.fullmatch(r"/(spaces/|datasets/)?([^/]+/[^/]+)\.git/info/lfs/objects/(batch|verify)", path)
        if m and method == "POST":
            return self._lfs(m.group(1) or "", m.group(2), m.group(3), json.loads(raw), authed)
        m = re.fullmatch(r"/lfs-objects/([0-9a-f]{64})", path)
        if m and method == "PUT":
            if hashlib.sha256(raw).hexdigest() != m.group(1):
                return self._json({"error": "the uploaded bytes do not match the oid"}, 400)
            self.lfs_objects[m.group(1)] = raw
            return 200, {"ETag": f'"{m.group(1)}"'}, b""
        m = re.fullmatch(r"/api/spaces/([^/]+/[^/]+)/(variables|secrets|hardware|runtime)", path)
        if m:
            if not authed:
                return self._unauthorized()
            space = self.repos.get(f"spaces/{m.group(1)}")
            if space is None:
                return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
            return self._space_settings(space, m.group(2), method, json.loads(raw) if raw else {})
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
            elif item["key"] == "lfsFile":
                value = item["value"]
                data = self.lfs_objects.get(value["oid"])
                if data is None or value.get("algo") != "sha256":
                    return self._json({"error": f"LFS object {value['oid']} of {value['path']} was not uploaded"}, 422)
                repo["files"][value["path"]] = data
                self.lfs_paths.add((repo_id, value["path"]))
                added.append(value["path"])
            elif item["key"] == "deletedFile":
                repo["files"].pop(item["value"]["path"], None)
            elif item["key"] == "deletedFolder":
                folder = item["value"]["path"].rstrip("/") + "/"
                for name in [f for f in repo["files"] if f.startswith(folder)]:
                    del repo["files"][name]
            else:
                return self._json({"error": f"unexpected commit line {item['key']!r}"}, 400)
        oid = hashlib.sha1(raw).hexdigest()
        repo["commits"].append({"summary": lines[0]["value"].get("summary"), "files": added, "oid": oid})
        return self._json({"success": True, "commitOid": oid, "commitUrl": f"{self.url}/{repo_id}/commit/{oid}",
                           "pullRequestUrl": None})

    def _mode(self, key: str, f: dict[str, Any]) -> str:
        """`lfs` or `regular` for a preupload entry, as the Hub decides (only with `lfs=True`)."""
        if not self.lfs or f["size"] == 0:
            return "regular"
        attributes = self.repos[key]["files"].get(".gitattributes", b"").decode(errors="replace")
        patterns = [line.split()[0] for line in attributes.splitlines() if "filter=lfs" in line]
        name = f["path"].rsplit("/", 1)[-1]
        if any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(f["path"], p) for p in patterns):
            return "lfs"
        return "lfs" if f["size"] >= LFS_MIN_SIZE or _binary(base64.b64decode(f["sample"])) else "regular"

    def _lfs(self, prefix: str, repo_id: str, what: str, body: dict[str, Any],
             authed: bool) -> tuple[int, dict[str, str], bytes]:
        """The git-lfs batch API (`basic` transfer: one PUT per object, then verify) and its verify call."""
        if not authed:
            return self._unauthorized()
        if (f"spaces/{repo_id}" if prefix == "spaces/" else repo_id) not in self.repos:
            return self._json({"message": "Repository not found"}, 404)
        if what == "verify":
            stored = self.lfs_objects.get(body.get("oid", ""))
            if stored is None or len(stored) != body.get("size"):
                return self._json({"message": "object not found"}, 404)
            return self._json({"success": True})
        if body.get("operation") != "upload" or "basic" not in (body.get("transfers") or ["basic"]):
            return self._json({"message": "only uploads through the basic transfer are supported"}, 422)
        objects = []
        for obj in body["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_objects:
                verify = f"{self.url}/{prefix}{repo_id}.git/info/lfs/objects/verify"
                item["actions"] = {"upload": {"href": f"{self.url}/lfs-objects/{obj['oid']}", "expires_in": 3600},
                                   "verify": {"href": verify, "expires_in": 3600}}
            objects.append(item)
        status, headers, out = self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})
        return status, {**headers, "Content-Type": "application/vnd.git-lfs+json"}, out

    def _tree(self, key: str) -> tuple[int, dict[str, str], bytes]:
        entries = []
        for name, data in sorted(self.repos[key]["files"].items()):
            raw = data if isinstance(data, bytes) else data.read_bytes()
            entry = {"type": "file", "path": name, "size": len(raw), "oid": hashlib.sha1(raw).hexdigest()}
            if (key, name) in self.lfs_paths:
                entry["lfs"] = {"oid": hashlib.sha256(raw).hexdigest(), "size": len(raw), "pointerSize": 134}
            entries.append(entry)
        return self._json(entries)

    def _space_settings(self, space: dict[str, Any], what: str, method: str,
                        body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if what in ("variables", "secrets"):
            store = space[what]
            if method == "POST":
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(body.get("key", ""))):
                    return self._json({"error": f"invalid key {body.get('key')!r}"}, 400)
                store[body["key"]] = body.get("value", "")
            elif method == "DELETE":
                store.pop(body.get("key"), None)
            if what == "secrets":  # a secret's value is never read back
                return self._json({k: {"updatedAt": "2026-01-01T00:00:00.000Z"} for k in store})
            return self._json({k: {"value": v, "updatedAt": "2026-01-01T00:00:00.000Z"} for k, v in store.items()})
        if what == "hardware" and method == "POST":
            space["hardware"] = body["flavor"]
        return self._json({"stage": "BUILDING", "hardware": {"current": None, "requested": space["hardware"]},
                           "gcTimeout": None, "storage": None})

    def _list(self, query: dict[str, list[str]], authed: bool) -> tuple[int, dict[str, str], bytes]:
        filters = query.get("filter", [])
        search = (query.get("search") or [""])[0].lower()
        out = []
        for repo_id, repo in self.repos.items():
            if (repo["private"] and not authed) or repo_id.startswith("spaces/"):
                continue
            card = repo["files"].get("README.md", b"")
            readme = (card.read_bytes() if isinstance(card, Path) else card).decode()
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
