"""`openai:<model>`: a chat model behind an OpenAI-compatible API (OpenAI, vLLM, TGI, `fireact serve`).

Base URL and key come from options or the environment (`OPENAI_BASE_URL`, `OPENAI_API_KEY`).
A key is required for OpenAI itself; with a custom base URL it is optional (a local server
needs none). Fine-tuned OpenAI models (`ft:gpt-4o-mini-2024-07-18:org::id`) are just names.

Calls stream by default and ask for token usage (`stream_options.include_usage`); the cost
comes from `fireact_core.pricing`. Timeouts and retries are the SDK's: 408/409/429/5xx and
connection errors are retried with exponential backoff, honouring `Retry-After`. Whatever
still fails becomes a `BackendError` with a reason a user can act on, which the agent loop
turns into a failed trajectory. The key never appears in a message: replies are scrubbed.

A message list that ends with an assistant turn asks to continue that turn. Servers that
support it (vLLM, `fireact serve`) get `continue_final_message` in the request body; OpenAI
itself does not, so there the reply is a fresh turn and a repeated prefix is trimmed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fireact_core.backends.base import BackendError, Completion, Message, cut_at_stop, held_back
from fireact_core.errors import ConfigError
from fireact_core.pricing import Price, cost_usd, load_price_file

OPENAI_URL = "https://api.openai.com/v1"
MAX_STOP = 4  # OpenAI accepts at most four stop strings
_REASONING_RE = re.compile(r"^(o\d|gpt-5)")
_SECRET_RE = re.compile(r"\b(sk-[A-Za-z0-9_*\-]{4,}|Bearer\s+\S+)")


class OpenAIModel:
    """One model on one endpoint. Thread-safe: the SDK client may be shared across threads."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 5, temperature: float = 0.0,
                 streaming: bool = True, continue_final: bool | None = None,
                 prices: Mapping[str, Price] | None = None, name: str | None = None) -> None:
        import openai  # heavy: imported when a model is built

        self.model = model
        self.name = name or f"openai:{model}"
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.temperature = temperature
        self.streaming = streaming
        # vLLM and `fireact serve` continue a final assistant message; OpenAI would reject the field.
        self.continue_final = continue_final if continue_final is not None else "api.openai.com" not in self.base_url
        self.prices = dict(prices or {})
        self._secret = api_key or ""
        self.client = openai.OpenAI(api_key=api_key or "EMPTY", base_url=self.base_url, timeout=timeout,
                                    max_retries=max_retries)

    def session(self) -> OpenAIModel:
        return self

    # --- one call ------------------------------------------------------------------------
    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256) -> Iterator[str | Completion]:
        """Yield text deltas as they arrive, then one `Completion` with usage and cost."""
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        continuing = bool(msgs) and msgs[-1]["role"] == "assistant"
        # OpenAI itself wants max_completion_tokens (max_tokens is deprecated there); compatible servers
        # (vLLM, TGI, fireact serve) all read max_tokens. Reasoning models take neither stop nor temperature:
        # for them stop strings are applied here, on the text as it arrives.
        openai_itself = "api.openai.com" in self.base_url
        kw: dict[str, Any] = {"model": self.model, "messages": msgs,
                              ("max_completion_tokens" if openai_itself else "max_tokens"): max_tokens}
        if not _REASONING_RE.match(self.model.removeprefix("ft:")):
            kw["temperature"] = self.temperature
            if stop:
                kw["stop"] = list(stop)[:MAX_STOP]
        if continuing and self.continue_final:
            kw["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
        prefix = msgs[-1]["content"] if continuing and not self.continue_final else ""
        with self._errors():
            if self.streaming:
                yield from self._stream(kw, stop, msgs, prefix)
            else:
                yield from self._complete(kw, stop, msgs, prefix)

    def _complete(self, kw: dict[str, Any], stop: Sequence[str], msgs: list[Message], prefix: str) -> Iterator[str | Completion]:
        resp = self.client.chat.completions.create(**kw)
        try:
            choice = resp.choices[0]
            content, finish = choice.message.content or "", choice.finish_reason
        except (AttributeError, TypeError, IndexError) as e:
            raise BackendError(f"{self.name} at {self.base_url}: malformed reply: no choices[0].message ({e})") from None
        text = _trim_prefix(content, prefix)
        text, stopped = cut_at_stop(text, stop)
        if text:
            yield text
        yield self._completion(text, msgs, getattr(resp, "usage", None), "stop" if stopped else finish)

    def _stream(self, kw: dict[str, Any], stop: Sequence[str], msgs: list[Message], prefix: str) -> Iterator[str | Completion]:
        kw = {**kw, "stream": True, "stream_options": {"include_usage": True}}
        text, sent, usage, finish, chunks = "", 0, None, "stop", 0
        trimming = bool(prefix)
        stream = self.client.chat.completions.create(**kw)
        try:
            for chunk in stream:
                chunks += 1
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                try:
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    finish = choice.finish_reason or finish
                    text += (choice.delta.content or "") if choice.delta else ""
                except (AttributeError, TypeError, IndexError) as e:
                    raise BackendError(f"{self.name} at {self.base_url}: malformed stream chunk ({e})") from None
                if trimming:  # wait until we can tell whether the reply repeats the prefix
                    head = text.lstrip()
                    if any(c.startswith(head) and len(head) < len(c) for c in _restatements(prefix)):
                        continue
                    text, trimming = _trim_prefix(text, prefix), False
                cut, stopped = cut_at_stop(text, stop)
                safe = len(cut) if stopped else len(cut) - held_back(cut, stop)
                if safe > sent:
                    yield cut[sent:safe]
                    sent = safe
                if stopped:  # a server that ignored `stop`: we stop reading
                    text, finish = cut, "stop"
                    break
        finally:
            stream.close()
        if chunks == 0:
            raise BackendError(f"{self.name} at {self.base_url}: malformed reply: the stream held no events")
        text = _trim_prefix(text, prefix) if trimming else text
        text, _ = cut_at_stop(text, stop)
        if len(text) > sent:
            yield text[sent:]
        yield self._completion(text, msgs, usage, finish)

    def _completion(self, text: str, msgs: list[Message], usage: Any, finish: str | None) -> Completion:
        if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
            p, c = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
        else:  # a server that reports no usage: about four characters a token
            p = sum(len(m["content"]) for m in msgs) // 4 + 4 * len(msgs)
            c = max(1, len(text) // 4) if text else 0
        return Completion(text=text, prompt_tokens=p, completion_tokens=c, prefill_tokens=p,
                          cost_usd=cost_usd(self.model, p, c, self.prices),
                          finish_reason="length" if finish == "length" else "stop")

    # --- errors --------------------------------------------------------------------------
    def _errors(self) -> _ErrorMap:
        return _ErrorMap(self)

    def redact(self, text: str) -> str:
        """Remove the key (and anything key-shaped) from a message."""
        if self._secret:
            text = text.replace(self._secret, "***")
        return _SECRET_RE.sub("***", text)


class _ErrorMap:
    """Turns SDK and decoding exceptions into a `BackendError` with a clear, key-free reason."""

    def __init__(self, model: OpenAIModel) -> None:
        self.m = model

    def __enter__(self) -> None:
        return None

    def __exit__(self, tp: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, BackendError | GeneratorExit):
            return False
        import openai

        m = self.m
        where = f"{m.name} at {m.base_url}"
        retried = f" (after {m.max_retries} retries)" if m.max_retries else ""
        if isinstance(exc, openai.APITimeoutError):
            reason = f"{where}: no reply within {m.timeout:g} s{retried}"
        elif isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            reason = f"{where}: cannot connect{retried}: {cause}"
        elif isinstance(exc, openai.AuthenticationError):
            reason = f"{where}: authentication failed (HTTP 401); check OPENAI_API_KEY: {_api_message(exc)}"
        elif isinstance(exc, openai.RateLimitError):
            reason = f"{where}: rate limited (HTTP 429){retried}: {_api_message(exc)}"
        elif isinstance(exc, openai.NotFoundError):
            reason = f"{where}: not found (HTTP 404), is the model name right? {_api_message(exc)}"
        elif isinstance(exc, openai.APIStatusError):
            reason = f"{where}: HTTP {exc.status_code}: {_api_message(exc)}"
        elif isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError):
            reason = f"{where}: malformed reply: {type(exc).__name__}: {exc}"
        elif isinstance(exc, openai.APIError):  # an error event inside a stream
            reason = f"{where}: API error: {exc.message}"
        else:
            return False  # a bug: let it propagate
        raise BackendError(m.redact(reason)) from None


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return str(getattr(exc, "message", exc))


def _restatements(prefix: str) -> list[str]:
    """How a fresh reply may restate the turn it should continue: all of it, or its last line."""
    p = prefix.strip()
    return [c for c in (p, p.splitlines()[-1].strip() if p else "") if c]


def _trim_prefix(text: str, prefix: str) -> str:
    """A fresh reply that restates the turn being continued: keep only what comes after."""
    t = text.lstrip()
    for c in _restatements(prefix):
        if t.startswith(c):
            return t[len(c):]
    return text


def load(spec: str = "", **opts: Any) -> OpenAIModel:
    """`openai:<model>`. Options: base_url, api_key, timeout, max_retries, temperature, streaming,
    continue_final, prices; the environment supplies OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_TIMEOUT
    and OPENAI_MAX_RETRIES."""
    model = spec.strip()
    if not model:
        raise ConfigError("the openai backend needs a model name: openai:<model>, e.g. openai:gpt-4o-mini")
    base_url = opts.pop("base_url", None) or os.environ.get("OPENAI_BASE_URL") or None
    api_key = opts.pop("api_key", None) or os.environ.get("OPENAI_API_KEY") or None
    if api_key is None and (base_url is None or "api.openai.com" in base_url):
        raise ConfigError(f"openai:{model} needs an API key: set OPENAI_API_KEY (or OPENAI_BASE_URL "
                          "for a compatible server that needs none)")
    prices = {**load_price_file(), **(opts.pop("prices", None) or {})}
    for var, opt, kind in (("OPENAI_TIMEOUT", "timeout", float), ("OPENAI_MAX_RETRIES", "max_retries", int)):
        if opt not in opts and os.environ.get(var):
            try:
                opts[opt] = kind(os.environ[var])
            except ValueError:
                raise ConfigError(f"{var} must be a number, got {os.environ[var]!r}") from None
    known = {"timeout", "max_retries", "temperature", "streaming", "continue_final", "name"}
    unknown = set(opts) - known
    if unknown:
        raise ConfigError(f"unknown openai option(s): {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}")
    return OpenAIModel(model, base_url=base_url, api_key=api_key, prices=prices, **opts)
