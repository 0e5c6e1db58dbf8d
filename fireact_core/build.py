"""Building agents from their records: an `AgentSpec` in, a loaded model and an `Agent` out.

The layer above the agent loop (`fireact_core.agent`), beside the model and tool loaders
(`fireact_core.factory`); the record (`fireact_core.spec`) knows nothing of it.

    spec = AgentSpec(model="smollm2", adapter="data/adapters/default", finetuned=True)
    traj = build_agent(spec).solve("Which country is the director of Tovarin Sels from?")
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from fireact_core.agent import Agent
from fireact_core.backends.base import Model
from fireact_core.factory import load_model, load_tools
from fireact_core.methods import Prompts
from fireact_core.spec import AgentSpec
from fireact_core.tools.base import Tools


def adapter_base_id(adapter: str) -> str | None:
    """The Hub id of the base a local adapter folder's `adapter_config.json` names (None: not a folder, no base)."""
    try:
        conf = json.loads((Path(adapter).expanduser() / "adapter_config.json").read_text(encoding="utf-8"))
        base = conf.get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    if not base:
        return None
    from fireact_core.models import canonical_base

    return canonical_base(base)


def base_model_spec(base: str) -> str:
    """The model spec of a base (Hub id, alias or folder): a bundled base by its name, else `local:<base>`."""
    from fireact_core.models import bundled_name

    return bundled_name(base) or f"local:{base}"


def load_spec_model(spec: AgentSpec) -> Model:
    """The model a spec names, with its adapter if any."""
    return load_model(spec.model, adapter=spec.adapter) if spec.adapter is not None else load_model(spec.model)


def build_agent(spec: AgentSpec, model: Model | None = None, *, tools: Tools | str | None = "spec",
                prompts: Prompts | None = None, noise_pool: Sequence[str] | None = None) -> Agent:
    """The `Agent` a spec describes: `model` (loaded from the spec when None), fresh tools from
    `spec.tools` (or the `tools` given), and the spec as its configuration and record."""
    if isinstance(tools, str):
        spec_tools = (spec.tools or "none").strip()
        tools = None if spec_tools.lower() in ("none", "") else load_tools(spec_tools)
    return Agent(load_spec_model(spec) if model is None else model, tools, spec, prompts=prompts,
                 noise_pool=noise_pool)


def agent_factory(spec: AgentSpec, model: Model | None = None) -> Callable[[int], Agent]:
    """Load the model once (or reuse `model`); return `make(i)`, a fresh agent (own tools, noise seed `seed + i`).

    A bad tool spec or a missing corpus fails before the model loads.
    """
    if spec.tools.lower() not in ("none", ""):
        load_tools(spec.tools)
    loaded = load_spec_model(spec) if model is None else model

    def make(i: int = 0) -> Agent:
        return build_agent(spec.with_seed_offset(i), loaded)

    return make
