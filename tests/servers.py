"""Local stand-ins for services we cannot reach from tests, speaking their real wire formats.

- `FakeWikipedia`: the MediaWiki Action API (`/w/api.php`, `formatversion=2`): `list=search`
  and `prop=extracts&explaintext` with redirects, missing pages and API errors.
- `FakeSerpAPI`: SerpAPI's Google engine (`/search.json`): answer boxes, organic results,
  the "no results" reply and the invalid-key reply.
- `ScriptedOpenAI`: `/v1/chat/completions` replying from a script: 429s with `Retry-After`,
  500s, malformed JSON, broken streams, or a real answer (streamed or not).

Each runs a `ThreadingHTTPServer` on 127.0.0.1 on a free port in a daemon thread; use them
as context managers. Every request is recorded in `.requests` (path, query, JSON body).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.app import free_port as free_port  # re-exported for the tests: a loopback port nothing listens on

Reply = tuple[int, dict[str, str], bytes | Iterable[bytes]]


class Serving:
    """A `ThreadingHTTPServer` on 127.0.0.1 (a free port) in a daemon thread; a context manager."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Any:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class LocalServer(Serving):
    """Base: subclasses implement `handle(method, path, query, body) -> (status, headers, body)`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a: Any) -> None:
                pass

            def _go(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw
                outer.requests.append({"method": method, "path": parts.path, "query": query, "body": body,
                                       "headers": dict(self.headers)})
                status, headers, payload = outer.handle(method, parts.path, query, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if isinstance(payload, bytes):
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.end_headers()
                try:
                    for piece in payload:
                        self.wfile.write(piece)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._go("GET")

            def do_POST(self) -> None:
                self._go("POST")

        self._serve(H)

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        raise NotImplementedError


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(obj).encode()


# --- Wikipedia ---------------------------------------------------------------------------------
class FakeWikipedia(LocalServer):
    """MediaWiki API over `pages` (title → plain text). `redirects` maps alias → title.

    `fault` makes every reply fail: "malformed" (a 200 whose body is not JSON), "status"
    (HTTP 503), "apierror" (MediaWiki's error object).
    """

    def __init__(self, pages: dict[str, str], redirects: dict[str, str] | None = None, fault: str | None = None) -> None:
        super().__init__()
        self.pages, self.redirects, self.fault = pages, redirects or {}, fault
        self.url = f"http://127.0.0.1:{self.port}/w/api.php"

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        if path != "/w/api.php":
            return 404, {"Content-Type": "text/html"}, b"<html>Not Found</html>"
        if self.fault == "malformed":
            return 200, {"Content-Type": "application/json"}, b'{"batchcomplete": true, "query": {"pages": [{"title'
        if self.fault == "status":
            return 503, {"Content-Type": "text/html", "Retry-After": "0"}, b"<html><body>Wikimedia Error: 503</body></html>"
        if self.fault == "apierror" or query.get("action") != "query" or query.get("format") != "json":
            return _json({"error": {"code": "badvalue", "info": f'Unrecognized value for parameter "action": {query.get("action")}.',
                                    "docref": "See https://en.wikipedia.org/w/api.php for API usage."},
                          "servedby": "mw-api-ext.eqiad.main-5d8f"})
        if query.get("list") == "search":
            return self._search(query)
        if query.get("prop") == "extracts":
            return self._extracts(query)
        return _json({"batchcomplete": True})

    def _search(self, q: dict[str, str]) -> Reply:
        term = q.get("srsearch", "").lower()
        words = [w for w in term.split() if w]
        hits = [t for t, text in self.pages.items() if words and any(w in (t + " " + text).lower() for w in words)]
        hits.sort(key=lambda t: -sum(w in (t + " " + self.pages[t]).lower() for w in words))
        limit = int(q.get("srlimit", 10))
        results = [{"ns": 0, "title": t, "pageid": 1000 + i, "size": len(self.pages[t]),
                    "wordcount": len(self.pages[t].split()),
                    "snippet": self.pages[t][:80].replace(words[0], f'<span class="searchmatch">{words[0]}</span>'),
                    "timestamp": "2024-05-01T12:00:00Z"} for i, t in enumerate(hits[:limit])]
        out: dict[str, Any] = {"batchcomplete": True, "query": {"searchinfo": {"totalhits": len(hits)}, "search": results}}
        if len(hits) > limit:
            out["continue"] = {"sroffset": limit, "continue": "-||"}
        return _json(out)

    def _extracts(self, q: dict[str, str]) -> Reply:
        asked = q.get("titles", "")
        title = asked[:1].upper() + asked[1:]  # MediaWiki normalises the first letter only
        query: dict[str, Any] = {}
        if title != asked:
            query["normalized"] = [{"fromencoded": False, "from": asked, "to": title}]
        if q.get("redirects") is not None and title in self.redirects:
            query["redirects"] = [{"from": title, "to": self.redirects[title]}]
            title = self.redirects[title]
        if title in self.pages:
            query["pages"] = [{"pageid": 1000 + list(self.pages).index(title), "ns": 0, "title": title,
                               "extract": self.pages[title]}]
        else:
            query["pages"] = [{"ns": 0, "title": title, "missing": True}]
        return _json({"batchcomplete": True, "query": query})


# --- SerpAPI -------------------------------------------------------------------------------------
class FakeSerpAPI(LocalServer):
    """SerpAPI's `/search.json?engine=google&q=…&api_key=…` over `results` (query → response fields), and its
    `/account.json` (`fault="exhausted"`: no searches left)."""

    def __init__(self, results: dict[str, dict[str, Any]], api_key: str = "serp-test-key", fault: str | None = None) -> None:
        super().__init__()
        self.results, self.api_key, self.fault = results, api_key, fault
        self.url = f"http://127.0.0.1:{self.port}"

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        if path not in ("/search.json", "/search", "/account.json", "/account"):
            return 404, {"Content-Type": "text/html"}, b"Not Found"
        if query.get("api_key") != self.api_key:
            return _json({"error": "Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"}, 401)
        if path.startswith("/account"):  # the free Account API: the plan and what is left of it
            left = 0 if self.fault == "exhausted" else 4_985
            return _json({"account_id": "6650c0ffee", "api_key": self.api_key, "account_email": "owner@example.com",
                          "plan_id": "developer", "plan_name": "Developer", "searches_per_month": 5_000,
                          "plan_searches_left": left, "extra_credits": 0, "total_searches_left": left,
                          "this_month_usage": 5_000 - left, "this_hour_searches": 1, "last_hour_searches": 0,
                          "account_rate_limit_per_hour": 1_000})
        if self.fault == "malformed":
            return 200, {"Content-Type": "application/json"}, b"<!DOCTYPE html><html>Bad gateway</html>"
        if self.fault == "429":
            return _json({"error": "Your account has run out of searches."}, 429, {"Retry-After": "0"})
        q = query.get("q", "")
        meta = {"id": "6650c0ffee", "status": "Success", "json_endpoint": f"https://serpapi.com/searches/x/{len(self.requests)}.json",
                "created_at": "2024-05-24 10:00:00 UTC", "processed_at": "2024-05-24 10:00:00 UTC",
                "google_url": f"https://www.google.com/search?q={q}", "total_time_taken": 0.9}
        params = {k: v for k, v in query.items() if k != "api_key"}
        if q not in self.results:
            return _json({"search_metadata": meta, "search_parameters": params,
                          "search_information": {"organic_results_state": "Fully empty"},
                          "error": "Google hasn't returned any results for this query."})
        return _json({"search_metadata": meta, "search_parameters": params,
                      "search_information": {"organic_results_state": "Results for exact spelling"}, **self.results[q]})


# --- OpenAI-compatible, scripted ------------------------------------------------------------------
class ScriptedOpenAI(LocalServer):
    """Replies to each `/v1/chat/completions` request with the next script item:

    "429" (rate limited, `retry-after-ms: 10`), "500", "malformed" (a 200 that is not JSON),
    "badstream" (an SSE stream whose second event is not JSON), "error-event" (an SSE error
    object mid-stream), "401" (echoing the key it got), "slow" (1.5 s before answering), or any other string: a normal reply with that text. When the script
    runs out it repeats its last item.
    """

    def __init__(self, script: list[str]) -> None:
        super().__init__()
        self.script = list(script)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        if path == "/v1/models":
            return _json({"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "t"}]})
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        stream = isinstance(body, dict) and body.get("stream")
        if item == "429":
            return _json({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                    "param": None, "code": "rate_limit_exceeded"}}, 429, {"retry-after-ms": "10"})
        if item == "500":
            return _json({"error": {"message": "The server had an error while processing your request.",
                                    "type": "server_error", "param": None, "code": None}}, 500, {"retry-after-ms": "10"})
        if item == "401":
            # A careless server that echoes the whole key: the client must not repeat it.
            headers = {k.lower(): v for k, v in self.requests[-1]["headers"].items()}
            key = headers.get("authorization", "").removeprefix("Bearer ")
            return _json({"error": {"message": f"Incorrect API key provided: {key}.",
                                    "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}, 401)
        if item == "slow":
            time.sleep(1.5)
            item = "too late"
        if item == "malformed":
            ctype = "text/event-stream" if stream else "application/json"
            return 200, {"Content-Type": ctype}, b'{"id": "chatcmpl-1", "choices": [{"index": 0, "mess'
        created = int(time.time())
        if not stream:
            return _json({"id": "chatcmpl-1", "object": "chat.completion", "created": created, "model": body["model"],
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": item},
                                       "logprobs": None, "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})

        def chunk(delta: dict[str, str], finish: str | None) -> bytes:
            return b"data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created,
                                           "model": body["model"], "choices": [{"index": 0, "delta": delta,
                                                                                "finish_reason": finish}]}).encode() + b"\n\n"

        def events() -> Iterable[bytes]:
            yield chunk({"role": "assistant", "content": ""}, None)
            if item == "badstream":
                yield b'data: {"id": "chatcmpl-1", "choices": [{"delta": \n\n'
                return
            if item == "error-event":
                yield b'data: {"error": {"message": "upstream model crashed", "type": "server_error"}}\n\n'
                return
            for i, w in enumerate(item.split(" ")):
                yield chunk({"content": w if i == 0 else " " + w}, None)
            yield chunk({}, "stop")
            usage = {"prompt_tokens": 11, "completion_tokens": len(item.split()), "total_tokens": 11 + len(item.split())}
            yield b"data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created,
                                          "model": body["model"], "choices": [], "usage": usage}).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return 200, {"Content-Type": "text/event-stream"}, events()
