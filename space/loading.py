"""How the app loads models and tools: each local base once, every adapter onto it; API models as they come;
the search tools by name, with which of them work here (`SearchTools`)."""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fireact_core.backends.base import Model
from fireact_core.errors import ConfigError, InputError
from fireact_core.redact import redact
from fireact_core.spec import LOCAL_KINDS
from fireact_core.tools.base import Tools
from space.choices import DEFAULT_TOOL, TOOL_CHOICES, Choice

log = logging.getLogger("fireact.app")


class CachedLoader:
    """`factory.load_model`, with each local base loaded once and adapters loaded onto it.

    The local backend keeps every adapter on one shared base (`LocalModel.load_adapter`), so
    the prompted side (the plain base) and any number of fine-tuned sides cost one base in
    memory. API models are cheap to build and are not cached.
    """

    def __init__(self) -> None:
        self._bases: dict[str, Model] = {}
        self._views: dict[tuple[str, str | None], Model] = {}
        self._lock = threading.Lock()

    def __call__(self, spec: str, adapter: str | None = None) -> Model:
        from fireact_core import factory

        if spec.split(":", 1)[0] not in LOCAL_KINDS:
            return _load(factory.load_model, spec, adapter=adapter) if adapter else _load(factory.load_model, spec)
        with self._lock:
            key = (spec, adapter)
            if key not in self._views:
                if spec not in self._bases:
                    self._bases[spec] = _load(factory.load_model, spec)
                base = self._bases[spec]
                if adapter is None:
                    self._views[key] = base
                elif hasattr(base, "load_adapter"):
                    self._views[key] = base.load_adapter(adapter, name=re.sub(r"\W+", "_", adapter).strip("_"))
                else:
                    self._views[key] = _load(factory.load_model, spec, adapter=adapter)
            return self._views[key]


def _load(fn: Callable[..., Model], spec: str, **kw: Any) -> Model:
    try:
        return fn(spec, **kw)
    except ImportError as e:
        raise ConfigError(f"the model backend for {spec!r} is not available here ({e})") from None


def default_tools(name: str = DEFAULT_TOOL) -> Tools | None:
    """A fresh toolbox of the named search tool (`corpus`, `wikipedia`, `google`)."""
    from fireact_core import factory

    try:
        return factory.load_tools(name)
    except ImportError as e:
        raise ConfigError(f"the search tool is not available here ({e})") from None


def serpapi_key() -> str | None:
    """Why Google cannot be offered (None: it can): it needs a SerpAPI key."""
    return None if os.environ.get("SERPAPI_API_KEY") else "needs SERPAPI_API_KEY"


def probe_wikipedia(timeout_s: float = 5.0) -> None:
    """One cheap query (the site's name) to the Wikipedia API the tool uses (`$WIKIPEDIA_API_URL` or
    en.wikipedia.org); raises `ToolError` with the reason when it does not answer."""
    from fireact_core.tools.wikipedia import Wikipedia, load

    wiki = load(timeout=timeout_s)["search"].__self__
    assert isinstance(wiki, Wikipedia)
    wiki._query(meta="siteinfo", siprop="general")


def probe_serpapi(timeout_s: float = 5.0) -> None:
    """SerpAPI's account endpoint (free: it costs no search) with the key the tool uses; raises `ToolError` when it
    does not answer, refuses the key, or says the account has no searches left."""
    from fireact_core.tools._http import get_json
    from fireact_core.tools.base import ToolError
    from fireact_core.tools.serpapi import DEFAULT_BASE_URL

    key = os.environ.get("SERPAPI_API_KEY", "")
    base = (os.environ.get("SERPAPI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    account = get_json(f"{base}/account.json", {"api_key": key}, service="SerpAPI", timeout=timeout_s, retries=0,
                       secrets=[key])
    if isinstance(account, dict) and account.get("total_searches_left") == 0:
        raise ToolError("the SerpAPI account has no searches left this month")


UNREACHABLE = ("cannot reach", "did not answer", "connection to")  # how `_http.get_json` words a network failure


@dataclass(frozen=True)
class ToolState:
    """Whether a search tool is offered as working, and what its label adds (`note`) or a refusal says (`reason`)."""

    ready: bool
    note: str = ""
    reason: str = ""


class SearchTools:
    """The arena's search tools by name: `tools(name)` builds a fresh toolbox (Wikipedia's keep the page a
    trajectory is on), `state(name)` says whether it works here, `check(name)` refuses one that does not.

    A tool is offered as working unless its instant check fails (Google without `SERPAPI_API_KEY`) or its
    network probe failed (Wikipedia unreachable; SerpAPI unreachable, refusing the key or out of searches,
    asked through its free account endpoint). Probes run in the background, never on a battle's path:
    the first when a state is first asked for, again `retry_s` after a failure (10 × after a success), so
    a server that comes online offers Wikipedia without a restart. Whether the Hub is offline
    (`HF_HUB_OFFLINE`) says nothing about Wikipedia, so only the probe decides. The default is
    `default`, else `$FIREACT_TOOLS`, else the offline world.
    """

    def __init__(self, default: str | None = None, *, loaders: Mapping[str, Callable[[], Tools | None]] | None = None,
                 checks: Mapping[str, Callable[[], str | None]] | None = None,
                 probes: Mapping[str, Callable[[], None]] | None = None, retry_s: float = 60.0) -> None:
        names = [v for _, v in TOOL_CHOICES]
        self.loaders = dict(loaders) if loaders is not None else {n: functools.partial(default_tools, n) for n in names}
        self.checks = dict(checks) if checks is not None else {"google": serpapi_key}
        self.probes = dict(probes) if probes is not None else {"wikipedia": probe_wikipedia, "google": probe_serpapi}
        self.retry_s = retry_s
        chosen = (default or os.environ.get("FIREACT_TOOLS") or DEFAULT_TOOL).strip()
        if chosen not in self.loaders:
            raise ConfigError(f"FIREACT_TOOLS must be one of {', '.join(self.loaders)}, not {chosen[:40]!r}")
        self.default = chosen
        self._probed: dict[str, tuple[float, str | None]] = {}  # name → (when, the failure or None)
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, name: str = DEFAULT_TOOL) -> Tools | None:
        if name not in self.loaders:
            raise ConfigError(f"unknown search tool {name!r}; this app offers {', '.join(self.loaders)}")
        return self.loaders[name]()

    def state(self, name: str) -> ToolState:
        """Whether `name` works here now (starting its probe when it is due)."""
        if name not in self.loaders:
            return ToolState(False, "not offered here", "is not offered by this app")
        check = self.checks.get(name)
        missing = check() if check is not None else None
        if missing:
            return ToolState(False, missing, missing)
        if name not in self.probes:
            return ToolState(True)
        self._probe_when_due(name)
        with self._lock:
            last = self._probed.get(name)
        if last is None:
            return ToolState(True, "checking…")
        if last[1] is None:
            return ToolState(True)
        if any(w in last[1] for w in UNREACHABLE):
            return ToolState(False, "unreachable", f"cannot be reached ({last[1]})")
        return ToolState(False, "not working", f"does not work here ({last[1]})")

    def _probe_when_due(self, name: str) -> None:
        with self._lock:
            last = self._probed.get(name)
            due = last is None or time.monotonic() - last[0] >= self.retry_s * (10 if last[1] is None else 1)
            if not due or name in self._running:
                return
            self._running.add(name)
        threading.Thread(target=self._probe, args=(name,), name=f"fireact-probe-{name}", daemon=True).start()

    def _probe(self, name: str) -> None:
        error: str | None = None
        try:
            self.probes[name]()
        except Exception as e:  # an outside service: any failure means "not reachable now"
            error = redact(str(e))[:200] or type(e).__name__
            log.warning("the %s search tool cannot be reached: %s", name, error)
        with self._lock:
            self._probed[name] = (time.monotonic(), error)
            self._running.discard(name)

    def wait_probes(self, timeout_s: float = 10.0) -> None:
        """Block until no probe is running (tests, and a start that wants the labels settled)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return
            time.sleep(0.02)

    def choices(self) -> list[Choice]:
        """(label, name) of each tool, the label saying when it does not work here or is being checked."""
        out = []
        for label, name in TOOL_CHOICES:
            if name in self.loaders:
                st = self.state(name)
                out.append((f"{label} — {st.note}" if st.note else label, name))
        return out

    def initial(self) -> str:
        """The tool a new page starts on: the default while it works, else the first that does."""
        if self.state(self.default).ready:
            return self.default
        return next((n for _, n in TOOL_CHOICES if n in self.loaders and self.state(n).ready), self.default)

    def check(self, name: str | None) -> str:
        """The tool a battle uses (None or empty: the default); `InputError` for one that does not work here."""
        chosen = (name or "").strip() or self.default
        label = dict((v, k) for k, v in TOOL_CHOICES).get(chosen)
        if label is None or chosen not in self.loaders:
            shown = chosen if len(chosen) <= 40 else chosen[:40] + "…"
            raise InputError(f"Unknown search tool {shown!r}: choose one of {', '.join(self.loaders)}.")
        st = self.state(chosen)
        if not st.ready:
            raise InputError(f"The search tool {label} {st.reason}; pick another search tool.")
        return chosen


def tool_menu(make_tools: Callable[..., Tools | None]) -> SearchTools:
    """The `SearchTools` behind an `AppConfig.make_tools` (a plain callable: every tool name goes to it, all offered)."""
    if isinstance(make_tools, SearchTools):
        return make_tools
    return SearchTools(loaders={v: functools.partial(make_tools, v) for _, v in TOOL_CHOICES}, checks={}, probes={})
