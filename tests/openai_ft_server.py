"""A local OpenAI API speaking the files and fine-tuning-jobs endpoints (as openai 3.x calls them).

- `POST /v1/files` (multipart: `purpose`, `file`) → a File object; chat JSONL is checked line by line
- `POST /v1/fine_tuning/jobs` `{model, training_file, validation_file?, suffix?, seed?, method?}` → a job
- `GET  /v1/fine_tuning/jobs/{id}` → the job; each read moves it one status along
  (`validating_files → queued → running → succeeded`, or `failed` when `fail=True`)
- `GET  /v1/fine_tuning/jobs/{id}/events` → `{object: list, data: [events], has_more}`, newest first

Requests need `Authorization: Bearer <key>`. Uploaded bytes are kept in `.files[id]["bytes"]`.
"""

from __future__ import annotations

import json
import threading
import time
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from servers import Serving

KEY = "sk-test-ft"
FLOW = ("validating_files", "queued", "running", "succeeded")


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    msg = BytesParser(policy=email_policy).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out[name] = (part.get_filename(), part.get_payload(decode=True))
    return out


class FineTuneServer(Serving):
    def __init__(self, key: str = KEY, fail: bool = False) -> None:
        self.key, self.fail = key, fail
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _go(self, method: str) -> None:
                path = urlsplit(self.path).path
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
                with outer.lock:
                    outer.requests.append((method, path))
                    if self.headers.get("Authorization") != f"Bearer {outer.key}":
                        status, body = 401, {"error": {"message": "Incorrect API key provided.",
                                                       "type": "invalid_request_error", "code": "invalid_api_key"}}
                    else:
                        status, body = outer.handle(method, path, raw, self.headers.get("Content-Type", ""))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._go("GET")

            def do_POST(self) -> None:
                self._go("POST")

        self._serve(H)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    @staticmethod
    def _error(status: int, message: str, param: str | None = None) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}

    def handle(self, method: str, path: str, raw: bytes, ctype: str) -> tuple[int, dict[str, Any]]:
        now = int(time.time())
        if path == "/v1/files" and method == "POST":
            parts = _multipart(ctype, raw)
            if parts.get("purpose", (None, b""))[1] != b"fine-tune":
                return self._error(400, "purpose must be fine-tune", "purpose")
            filename, data = parts["file"]
            for n, line in enumerate(data.decode().splitlines(), 1):
                try:
                    msgs = json.loads(line)["messages"]
                    assert any(m["role"] == "assistant" for m in msgs)
                except (ValueError, KeyError, TypeError, AssertionError):
                    return self._error(400, f"Invalid file format. Line {n} is not a chat example.", "file")
            fid = f"file-{len(self.files) + 1:04d}"
            self.files[fid] = {"bytes": data, "filename": filename}
            return 200, {"id": fid, "object": "file", "bytes": len(data), "created_at": now, "filename": filename,
                         "purpose": "fine-tune", "status": "processed"}
        if path == "/v1/fine_tuning/jobs" and method == "POST":
            body = json.loads(raw)
            for key in ("training_file", "validation_file"):
                if body.get(key) is not None and body[key] not in self.files:
                    return self._error(400, f"invalid {key}: {body[key]}", key)
            jid = f"ftjob-{len(self.jobs) + 1:04d}"
            suffix = body.get("suffix") or ""
            self.jobs[jid] = {"id": jid, "object": "fine_tuning.job", "created_at": now, "model": body["model"],
                              "training_file": body["training_file"], "validation_file": body.get("validation_file"),
                              "status": FLOW[0], "fine_tuned_model": None, "finished_at": None, "error": None,
                              "hyperparameters": {"n_epochs": "auto", "batch_size": "auto",
                                                  "learning_rate_multiplier": "auto"},
                              "organization_id": "org-test", "result_files": [], "seed": body.get("seed", 0),
                              "trained_tokens": None, "method": body.get("method"), "_suffix": suffix}
            self.events[jid] = [self._event(jid, 1, f"Created fine-tuning job: {jid}")]
            return 200, self._public(self.jobs[jid])
        if path.startswith("/v1/fine_tuning/jobs/") and method == "GET":
            rest = path[len("/v1/fine_tuning/jobs/"):]
            jid, _, sub = rest.partition("/")
            job = self.jobs.get(jid)
            if job is None:
                return self._error(404, f"No such fine-tuning job: {jid}")
            if sub == "events":
                data = sorted(self.events[jid], key=lambda e: -e["created_at"])
                return 200, {"object": "list", "data": data, "has_more": False}
            self._advance(job)
            return 200, self._public(job)
        return self._error(404, f"no route {method} {path}")

    @staticmethod
    def _event(jid: str, n: int, message: str) -> dict[str, Any]:
        return {"id": f"ftevent-{jid}-{n}", "object": "fine_tuning.job.event", "created_at": int(time.time()) * 100 + n,
                "level": "info", "message": message, "type": "message", "data": {}}

    def _advance(self, job: dict[str, Any]) -> None:
        if job["status"] in ("succeeded", "failed"):
            return
        jid, evs = job["id"], self.events[job["id"]]
        if self.fail and job["status"] == "running":
            job["status"] = "failed"
            job["error"] = {"code": "invalid_training_file", "message": "The job failed (scripted).", "param": None}
        else:
            job["status"] = FLOW[FLOW.index(job["status"]) + 1]
        if job["status"] == "running":
            evs.append(self._event(jid, len(evs) + 1, "Step 1/2: training loss=1.23"))
        if job["status"] == "succeeded":
            job["fine_tuned_model"] = f"ft:{job['model']}:org-test:{job['_suffix']}:{jid[-4:]}"
            job["finished_at"] = int(time.time())
            job["trained_tokens"] = sum(len(f["bytes"]) // 4 for f in self.files.values())
            evs.append(self._event(jid, len(evs) + 1, "The job has successfully completed"))
        evs.append(self._event(jid, len(evs) + 1, f"status: {job['status']}"))

    @staticmethod
    def _public(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_")}
