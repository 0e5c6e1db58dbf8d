"""Build models and tools from short specs, as the CLI and the app name them.

Model specs:  `smollm2` (the bundled default) · `gemma3` (bundled Gemma 3 270M) · `local:<path or hub id>`
(`local:<…>:4bit`: in 4-bit NF4 on CUDA) · `openai:<model>` · `fake`. Tool specs: `corpus[:path]` (the offline default, the world's encyclopedia) ·
`wikipedia` · `google`. Backends and tools register here by dotted path, so each one is a
module of its own imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from fireact_core.backends.base import Model
from fireact_core.errors import ConfigError
from fireact_core.spec import MODEL_KINDS
from fireact_core.tools.base import Toolbox

# name -> "module:function"; the function takes (rest_of_spec, **options) and returns the object.
MODEL_LOADERS: dict[str, str] = {kind: m.loader for kind, m in MODEL_KINDS.items()}  # the record's one list
TOOL_LOADERS: dict[str, str] = {
    "corpus": "fireact_core.tools.corpus:load",
    "wikipedia": "fireact_core.tools.wikipedia:load",
    "google": "fireact_core.tools.serpapi:load",
}
DEFAULT_MODEL = "smollm2"
DEFAULT_TOOLS = "corpus"


def _resolve(table: dict[str, str], spec: str, what: str) -> tuple[Callable[..., Any], str]:
    kind, _, rest = spec.partition(":")
    if kind not in table:
        raise ConfigError(f"unknown {what} {spec!r}; valid kinds: {', '.join(table)}")
    module, _, fn = table[kind].partition(":")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as e:  # an extra's package (pyproject.toml): say which install adds it
        if (e.name or "").split(".")[0] in ("fireact_core", ""):
            raise
        raise ConfigError(f"the {what} {kind!r} needs the package {e.name!r}, which is not installed: "
                          "pip install 'fireact[local]' (the local backend; `fireact[all]` for everything)") from None
    return getattr(loaded, fn), rest


def load_model(spec: str = DEFAULT_MODEL, **options: Any) -> Model:
    """A model from a spec like `smollm2`, `local:HuggingFaceTB/SmolLM2-360M-Instruct`, `openai:gpt-4o-mini`.

    Options are passed to the backend (e.g. `adapter=` for local models, `base_url=` for openai).
    """
    loader, rest = _resolve(MODEL_LOADERS, spec, "model")
    return loader(rest, **options)


def load_tools(spec: str = DEFAULT_TOOLS, timeout_s: float = 30.0, **options: Any) -> Toolbox:
    """A toolbox from a comma-separated spec like `corpus`, `corpus:data/world/corpus.jsonl`, `wikipedia`."""
    tools: dict[str, Any] = {}
    for part in filter(None, (s.strip() for s in spec.split(","))):
        loader, rest = _resolve(TOOL_LOADERS, part, "tool set")
        tools.update(loader(rest, **options))
    return Toolbox(tools, timeout_s=timeout_s)
