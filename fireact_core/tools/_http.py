"""One small JSON-over-HTTP GET for the web tools (standard library only).

Failures become a `ToolError` with a reason the agent (and a user reading the trajectory)
can understand: HTTP status with the service's own error message, timeout, unreachable
host, a body that is not JSON. 429 and 5xx are retried a couple of times with backoff,
honouring `Retry-After`. Secrets passed in `secrets` are scrubbed from every message.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from fireact_core.tools.base import ToolError

USER_AGENT = "fireact/0.1 (FireAct language-agent research; https://github.com/anchen1011/FireAct)"
RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER_S = 10.0


def get_json(url: str, params: Mapping[str, Any], *, service: str, timeout: float = 10.0, retries: int = 2,
             backoff_s: float = 0.5, secrets: Sequence[str] = (), headers: Mapping[str, str] | None = None) -> Any:
    """GET `url?params` and return the decoded JSON, or raise `ToolError`."""
    full = f"{url}?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(full, headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})})
    attempt = 0
    while True:
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
            break
        except urllib.error.HTTPError as e:
            body = e.read()
            if e.code in RETRY_STATUS and attempt < retries:
                time.sleep(_retry_after(e.headers.get("Retry-After"), backoff_s * 2**attempt))
                attempt += 1
                continue
            raise ToolError(_scrub(f"{service} returned HTTP {e.code}{_error_detail(body)}", secrets)) from None
        except TimeoutError:
            raise ToolError(f"{service} did not answer within {timeout:g} s") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError | socket.timeout):
                raise ToolError(f"{service} did not answer within {timeout:g} s") from None
            raise ToolError(_scrub(f"cannot reach {service}: {e.reason}", secrets)) from None
        except (ConnectionError, OSError) as e:
            raise ToolError(_scrub(f"connection to {service} failed: {e}", secrets)) from None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        start = raw[:60].decode("utf-8", "replace").replace("\n", " ")
        raise ToolError(_scrub(f"{service} returned malformed JSON ({e}); the reply starts {start!r}", secrets)) from None


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S) if value else default
    except ValueError:
        return default


def _error_detail(body: bytes) -> str:
    """The service's own error message from a JSON error body, if any."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, str):
        return f": {err}"
    if isinstance(err, dict):
        msg = err.get("info") or err.get("message")
        return f": {msg}" if msg else ""
    return ""


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***").replace(urllib.parse.quote(s), "***")
    return text
