"""`fireact serve`: a small OpenAI-compatible HTTP server over any `Model`, for local use.

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (non-streaming, and streaming as
server-sent events with an optional final usage chunk, `stream_options.include_usage`),
`GET /health`. Each served name maps to one `Model` (the base model, and one name per
adapter). A local model is not thread-safe, so calls to one model are serialized with a
lock; the HTTP server itself is threaded, so `/v1/models` answers while a model works.

It follows vLLM where OpenAI has no equivalent: a message list that ends with an assistant
turn continues that turn (`continue_final_message`), which is what every `Model` does.
No authentication: it binds 127.0.0.1 by default and is not meant to face a network.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fireact_core.backends.base import BackendError, Completion, Model

MAX_BODY = 8 * 1024 * 1024
DEFAULT_MAX_TOKENS = 256


class ServedModels:
    """Served name → model, each with one long-lived session and a lock around it.

    Requests to one name are served one at a time through that name's session, so a local
    model reuses the keys/values of the previous request's prompt: an agent loop's next step,
    or the next question under the same instruction and exemplars, prefills only what is new.
    """

    def __init__(self, models: Mapping[str, Model]) -> None:
        if not models:
            raise ValueError("serve needs at least one model")
        self.models = dict(models)
        self.sessions = {name: m.session() for name, m in self.models.items()}
        self.locks = {name: threading.Lock() for name in self.models}
        self.created = int(time.time())

    def get(self, name: str) -> Model | None:
        return self.models.get(name)

    def engine(self, name: str) -> str | None:
        """What decodes `name`'s tokens, in words (a local model says; an API model does not)."""
        engine = getattr(self.models.get(name), "engine", None)
        return engine if isinstance(engine, str) and engine else None


class _ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _parse_request(body: Any, served: ServedModels) -> tuple[str, Model, list[dict[str, str]], list[str], int, bool, bool]:
    if not isinstance(body, dict):
        raise _ApiError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise _ApiError(HTTPStatus.BAD_REQUEST, "'model' is required", param="model")
    model = served.get(name)
    if model is None:
        raise _ApiError(HTTPStatus.NOT_FOUND, f"model {name!r} is not served here; served: {', '.join(served.models)}",
                        param="model", code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _ApiError(HTTPStatus.BAD_REQUEST, "'messages' must be a non-empty list", param="messages")
    clean: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise _ApiError(HTTPStatus.BAD_REQUEST, f"messages[{i}] needs a role: system, user or assistant",
                            param=f"messages[{i}]")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise _ApiError(HTTPStatus.BAD_REQUEST, f"messages[{i}].content must be a string", param=f"messages[{i}]")
        clean.append({"role": m["role"], "content": content})
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _ApiError(HTTPStatus.BAD_REQUEST, "'stop' must be a string or a list of strings", param="stop")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise _ApiError(HTTPStatus.BAD_REQUEST, "'max_tokens' must be a positive integer", param="max_tokens")
    stream = bool(body.get("stream"))
    opts = body.get("stream_options") or {}
    include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
    return name, model, clean, stop, max_tokens, stream, include_usage


def _usage(done: Completion) -> dict[str, int]:
    return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens}


def _finish_reason(done: Completion) -> str:
    return "length" if done.finish_reason == "length" else "stop"


class Handler(BaseHTTPRequestHandler):
    """One request. `server.served` holds the models; `server.quiet` silences the access log."""

    server_version = "fireact-serve/0.1"
    protocol_version = "HTTP/1.0"  # one request per connection: responses end when it closes

    def log_message(self, format: str, *args: Any) -> None:
        if not getattr(self.server, "quiet", False):
            sys.stderr.write(f"fireact serve: {self.address_string()} {format % args}\n")

    # --- plumbing ----------------------------------------------------------------------
    def _send_json(self, status: HTTPStatus, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_json(self) -> Any:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if n > MAX_BODY:
            raise _ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request body is over {MAX_BODY} bytes")
        raw = self.rfile.read(n)
        try:
            return json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _ApiError(HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON: {e}") from None

    # --- routes ------------------------------------------------------------------------
    def do_GET(self) -> None:
        served: ServedModels = self.server.served  # type: ignore[attr-defined]
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            data = [{"id": n, "object": "model", "created": served.created, "owned_by": "fireact",
                     **({"engine": e} if (e := served.engine(n)) else {})} for n in served.models]
            self._send_json(HTTPStatus.OK, {"object": "list", "data": data})
        elif path == "/health":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        else:
            self._send_json(HTTPStatus.NOT_FOUND, _ApiError(HTTPStatus.NOT_FOUND, f"no route {self.path}").body())

    def do_POST(self) -> None:
        served: ServedModels = self.server.served  # type: ignore[attr-defined]
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(HTTPStatus.NOT_FOUND, _ApiError(HTTPStatus.NOT_FOUND, f"no route {self.path}").body())
            return
        try:
            name, _model, messages, stop, max_tokens, stream, include_usage = _parse_request(self._read_json(), served)
        except _ApiError as e:
            self._send_json(e.status, e.body())
            return
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        with served.locks[name]:
            gen = served.sessions[name].stream(messages, stop=stop, max_tokens=max_tokens)
            if stream:
                self._stream(gen, rid, name, include_usage)
            else:
                self._complete(gen, rid, name)

    def _model_failed(self, e: Exception) -> None:
        if not isinstance(e, BackendError):
            traceback.print_exc(file=sys.stderr)
        reason = str(e) if isinstance(e, BackendError) else f"{type(e).__name__}: {e}"
        self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR,
                        _ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, f"model error: {reason}", "server_error").body())

    def _complete(self, gen: Iterator[str | Completion], rid: str, name: str) -> None:
        try:
            done = next(item for item in gen if isinstance(item, Completion))
        except StopIteration:
            done = None
        except Exception as e:  # a server answers every request; the traceback goes to the log
            self._model_failed(e)
            return
        if done is None:
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, _ApiError(
                HTTPStatus.INTERNAL_SERVER_ERROR, "the model returned no completion", "server_error").body())
            return
        self._send_json(HTTPStatus.OK, {
            "id": rid, "object": "chat.completion", "created": int(time.time()), "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text},
                         "logprobs": None, "finish_reason": _finish_reason(done)}],
            "usage": _usage(done),
        })

    def _stream(self, gen: Iterator[str | Completion], rid: str, name: str, include_usage: bool) -> None:
        created = int(time.time())

        def chunk(delta: dict[str, str], finish: str | None, usage: dict | None = None) -> dict[str, Any]:
            c: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                c["usage"] = usage
            return c

        def send(obj: Any) -> None:
            self.wfile.write(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")
            self.wfile.flush()

        # Before the first item, errors are still a plain JSON error response.
        try:
            first = next(gen, None)
        except Exception as e:  # a server answers every request; the traceback goes to the log
            self._model_failed(e)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            send(chunk({"role": "assistant", "content": ""}, None))
            done: Completion | None = None
            item = first
            while item is not None:
                if isinstance(item, Completion):
                    done = item
                elif item:
                    send(chunk({"content": item}, None))
                item = next(gen, None)
            if done is None:
                raise BackendError("the model returned no completion")
            send(chunk({}, _finish_reason(done)))
            if include_usage:
                send({"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                      "choices": [], "usage": _usage(done)})
        except BackendError as e:
            # Mid-stream failure: an error event, as OpenAI and vLLM send it.
            send({"error": {"message": f"model error: {e}", "type": "server_error", "param": None, "code": None}})
        except (BrokenPipeError, ConnectionResetError):
            close = getattr(gen, "close", None)
            if close:
                close()  # the client went away: stop generating
            return
        send(b"[DONE]")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], served: ServedModels, quiet: bool = False) -> None:
        super().__init__(address, Handler)
        self.served = served
        self.quiet = quiet

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def make_server(models: Mapping[str, Model], host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> Server:
    """A server (not yet serving) for `models`; port 0 picks a free port (see `server.url`)."""
    return Server((host, port), ServedModels(models), quiet=quiet)


def start_in_thread(models: Mapping[str, Model], host: str = "127.0.0.1", port: int = 0,
                    quiet: bool = True) -> tuple[Server, threading.Thread]:
    """Start a server in a daemon thread (tests, notebooks). Stop it with `server.shutdown()`."""
    server = make_server(models, host, port, quiet=quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fireact-serve", daemon=True)
    thread.start()
    return server, thread


def load_served_models(spec: str, adapters: Mapping[str, str] | None = None, *,
                       name: str | None = None, **options: Any) -> dict[str, Model]:
    """Served name → model: the base model under `name` (default: the spec), one name per adapter.

    A local model loads each adapter onto its one base (`load_adapter`); other backends load
    the model again with `adapter=`. `options` go to the backend (e.g. `quantize=False`).
    """
    from fireact_core.factory import load_model

    base = load_model(spec, **options)
    models: dict[str, Model] = {name or spec: base}
    for adapter_name, path in (adapters or {}).items():
        attach = getattr(base, "load_adapter", None)
        models[adapter_name] = attach(path, name=adapter_name) if attach else load_model(spec, adapter=path, **options)
    return models
