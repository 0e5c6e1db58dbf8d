"""How the app loads models and tools: each local base once, every adapter onto it; API models as they come."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from fireact_core.backends.base import Model
from fireact_core.errors import ConfigError
from fireact_core.spec import LOCAL_KINDS
from fireact_core.tools.base import Tools


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


def default_tools() -> Tools | None:
    from fireact_core import factory

    try:
        return factory.load_tools("corpus")
    except ImportError as e:
        raise ConfigError(f"the search tool is not available here ({e})") from None
