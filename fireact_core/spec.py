"""Which agent ran: `AgentSpec`, the one typed description every part of FireAct passes around.

The CLI builds it from its options (`fireact_core.commands._agent_opts.spec_from_args`), the
teacher from its model and tools, the arena for each side of a battle, the trainer's evaluation
from its recipe. `build_agent(spec)` turns it into an `Agent`; the agent records it on each
`Trajectory` (`trajectory.agent`); the store reads its columns and its leaderboard `key` from it;
and an old record (a plain dict in one of the shapes earlier versions wrote) upgrades through
`AgentSpec.from_dict`.

    spec = AgentSpec(model="smollm2", adapter="data/adapters/default", finetuned=True)
    traj = build_agent(spec).solve("Which country is the director of Tovarin Sels from?")
    traj.agent.key        # 'smollm2 + default · fine-tuned'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fireact_core.errors import ConfigError, FormatError
from fireact_core.methods import METHODS
from fireact_core.tools.noisy import NoiseConfig

if TYPE_CHECKING:
    from fireact_core.agent import Agent
    from fireact_core.backends.base import Model
    from fireact_core.methods import Prompts
    from fireact_core.tools.base import Tools

PROMPT_FORMATS = ("chat", "alpaca", "text", "scratchpad")  # fireact_core.prompt_formats, where they are rendered
KEYLESS_TOOLS = ("corpus", "")  # tools the leaderboard key leaves unsaid: the default offline world, and unknown
LOCAL_KINDS = ("smollm2", "gemma3", "local")  # model kinds that run on this machine's weights (and take an adapter)


@dataclass
class AgentConfig:
    """The agent loop's knobs: the method, prompted or fine-tuned, and its limits."""

    method: str = "react"  # io | cot | react | reflexion
    finetuned: bool = False  # no instruction, no exemplars: the question alone
    max_steps: int = 11  # the paper's limit
    max_tokens: int = 200  # per model call
    trials: int = 3  # Reflexion
    exemplars: int = 2
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    # How the model sees the trajectory (fireact_core.prompt_formats): `chat` (each Observation a user
    # turn), `scratchpad` (prompted agents: one assistant turn that grows, Observations inline), `alpaca`
    # (the paper's raw Alpaca text, its fine-tuned Llamas' format) or `text` (a raw prompt as it is, the
    # paper's prompted baselines). `auto`: an adapter's own format (its fireact.json, or the known
    # adapters' table), a raw prompts file's `text`, else `chat`. A fine-tuned agent given `scratchpad` runs `chat`.
    prompt_format: str = "auto"
    constrained: bool = False  # format-constrained decoding of the Action line (local models only)
    # On top of it: each argument copied from the question or the Observations (finish: also yes,
    # no or a number), so a small model answers with what it read, not with an exemplar's answer.
    extractive: bool = False
    prompts: str = "default"  # the prompts file: a name in fireact_core/prompts/ (`default`, `world`) or a path

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.prompt_format not in (*PROMPT_FORMATS, "auto"):
            raise ConfigError(f"unknown prompt format {self.prompt_format!r}; choose one of {', '.join(PROMPT_FORMATS)} "
                              "or auto")
        if self.extractive and not self.constrained:
            raise ConfigError("extractive decoding is a kind of constrained decoding: set constrained too")
        if self.max_steps < 1 or self.trials < 1:
            raise ConfigError("max_steps and trials must be at least 1")


@dataclass
class AgentSpec(AgentConfig):
    """One agent in full: its model (and adapter), tools and role, plus the loop's knobs (`AgentConfig`).

    `model` is a model spec (`smollm2`, `gemma3`, `local:<path or hub id>`, `openai:<model>`,
    `fake:<answer>`); `adapter` a LoRA folder or Hub repo for a local model; `tools` a tool spec
    (`corpus`, `wikipedia`, `google`, `none`); `role` the arena's side (`prompted`, `finetuned`).
    """

    model: str = "smollm2"
    adapter: str | None = None
    tools: str = "corpus"
    role: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompt_format == "auto":
            self.prompt_format = resolve_format(self)[0]

    # --- derived ----------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """The leaderboard's unit: a readable label of the configuration."""
        name = self.model + (f" + {adapter_label(self.adapter)}" if self.adapter else "")
        # The search tool last, and only when it is not the offline world (or unknown, an old record):
        # the keys of every run made before the tool was a choice stay as they were (store migration 5).
        tool = self.tools.strip()
        tool = f" · {tool}" if tool not in KEYLESS_TOOLS else ""
        if self.finetuned:  # a format other than chat is part of the agent (the paper's adapters run in alpaca)
            fmt = f" · {self.prompt_format}" if self.prompt_format not in ("chat", "scratchpad") else ""
            return f"{name} · fine-tuned{fmt}{tool}"
        extras = "".join(f" · {x}" for x in (self.prompts if self.prompts != "default" else "",
                                              self.prompt_format if self.prompt_format != "chat" else "",
                                              "constrained" if self.constrained else "",
                                              "extractive" if self.extractive else "") if x)
        return f"{name} · {self.method} {self.exemplars}-shot{extras}{tool}"

    @property
    def kind(self) -> str:
        """The concurrency class of its model: local, openai, fake, ..."""
        k = self.model.split(":", 1)[0]
        return "local" if k in LOCAL_KINDS else k

    @property
    def name(self) -> str:
        """How the UI names it (the key)."""
        return self.key

    @property
    def config(self) -> AgentConfig:
        """The loop's knobs alone."""
        return AgentConfig(**{f.name: getattr(self, f.name) for f in fields(AgentConfig)})

    def with_seed_offset(self, i: int) -> AgentSpec:
        """The same agent with noise seed `seed + i` (the i-th example of an evaluation)."""
        return replace(self, noise=replace(self.noise, seed=self.noise.seed + i)) if i else self

    # --- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _ORDER}
        d["noise"] = asdict(self.noise)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | AgentSpec | None, *, method: str | None = None) -> AgentSpec:
        """A spec from its JSON, or from an older record's `agent` dict (upgraded).

        Older records wrote the noise as a dict (`{mode, p, seed}`, the agent loop) or as a mode
        string with `p` and `seed` beside it (`fireact run/eval`), and carried extra keys (`key`,
        `p`, `seed`) that are derived or folded in here. `method` is the trajectory's, used when
        the record does not say.
        """
        if isinstance(d, AgentSpec):
            return d
        d = dict(d or {})
        kw: dict[str, Any] = {k: d[k] for k in _ORDER if k in d and d[k] is not None and k != "noise"}
        kw["model"] = str(d.get("model") or "unknown")
        kw.setdefault("tools", "")  # an old record that does not say: unknown, not the default
        if "method" not in kw and method:
            kw["method"] = method
        if kw.get("method") not in METHODS:
            kw.pop("method", None)
        kw["noise"] = _noise(d)
        kw.setdefault("prompt_format", "chat")  # a record from before formats were resolved ran in chat
        kw["finetuned"] = bool(d.get("finetuned", False))
        kw["constrained"] = bool(d.get("constrained", False))
        kw["extractive"] = bool(d.get("extractive", False))
        for name in ("max_steps", "max_tokens", "trials", "exemplars"):
            if name in kw:
                try:
                    kw[name] = int(kw[name])
                except (TypeError, ValueError):
                    raise FormatError(f"agent.{name} must be an integer, not {kw[name]!r}") from None
        try:
            return cls(**kw)
        except ConfigError as e:
            raise FormatError(f"agent: {e}") from None

    # --- the old dict record's reading and writing ------------------------------------------
    # Code written against `Trajectory.agent` as a dict keeps working: `agent["noise"]` is the
    # noise's dict, `agent["method"] = "cot"` sets the field, `agent.update(...)` upgrades and
    # merges. New code reads the attributes.
    def __getitem__(self, name: str) -> Any:
        if name == "key":
            return self.key
        if name not in _ORDER:
            raise KeyError(name)
        return self.to_dict()[name]

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def update(self, other: Mapping[str, Any] | None = None, **kw: Any) -> None:
        """Merge fields from a dict (in any shape `from_dict` reads) into this spec."""
        given = {**(other or {}), **kw}
        if isinstance(given.get("noise"), str):
            given.setdefault("p", self.noise.p)
            given.setdefault("seed", self.noise.seed)
        merged = AgentSpec.from_dict({**self.to_dict(), **given}, method=self.method)
        for name in _ORDER:
            if name in given or (name == "noise" and {"p", "seed"} & set(given)):
                setattr(self, name, getattr(merged, name))


_ORDER = ("model", "adapter", "method", "finetuned", "exemplars", "max_steps", "max_tokens", "trials", "tools",
          "noise", "prompts", "prompt_format", "constrained", "extractive",
          "role")


def _noise(d: Mapping[str, Any]) -> NoiseConfig:
    noise = d.get("noise")
    if isinstance(noise, NoiseConfig):
        return noise
    if isinstance(noise, str):  # `fireact run/eval` before format 2: the mode, with p and seed beside it
        noise = {"mode": noise, "p": d.get("p"), "seed": d.get("seed")}
    if not isinstance(noise, Mapping):
        return NoiseConfig()
    values = {k: noise[k] for k in ("mode", "p", "seed") if noise.get(k) is not None}
    try:
        return NoiseConfig(str(values.get("mode", "off")), float(values.get("p", 0.5)), int(values.get("seed", 0)))
    except (ConfigError, TypeError, ValueError) as e:
        raise FormatError(f"agent.noise: {e}") from None


def resolve_format(spec: AgentConfig) -> tuple[str, str]:
    """(format, why) for `prompt_format: auto`: a fine-tuned agent's adapter's own format (its `fireact.json`, or
    the known adapters' table for the paper's published ones), a `paper` prompts file's `text`, else `chat`."""
    from fireact_core.known_adapters import adapter_format

    if spec.finetuned:
        adapter = getattr(spec, "adapter", None)
        model = str(getattr(spec, "model", ""))
        if adapter is None and model.startswith("local:"):  # a merged fine-tuned model, e.g. forestai/fireact_llama_2_7b
            adapter = model.split(":", 1)[1]
        fmt, why = adapter_format(adapter, model.split(":", 1)[-1] if ":" in model else model)
        return (fmt, why) if fmt else ("chat", f"{why}: the base's format")
    return ("text", "raw prompts") if spec.prompts == "paper" else ("chat", "the default")


def adapter_base_id(adapter: str) -> str | None:
    """The Hub id of the base a local adapter folder's `adapter_config.json` names (None: not a folder, no base)."""
    import json

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


def adapter_label(adapter: str | None) -> str | None:
    """How an adapter is named on the leaderboard: a local folder by its name (the same on every
    machine: `data/adapters/default` → `default`), a Hub repo by its id."""
    if not adapter:
        return None
    p = Path(adapter).expanduser()
    return p.name if p.is_absolute() or p.is_dir() else adapter


def spec_from_options(options: Sequence[str], **defaults: Any) -> AgentSpec:
    """An `AgentSpec` from `fireact run`/`eval` agent options (e.g. a recipe's `eval_args`), over `defaults`
    (option names: `model`, `adapter`, `tools`, ...). A bad option raises `ConfigError`."""
    import argparse

    from fireact_core.commands._agent_opts import add_agent_args, spec_from_args

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # type: ignore[override]
            raise ConfigError(f"agent options {' '.join(options)!r}: {message}")

    parser = Parser(prog="agent options", add_help=False)
    add_agent_args(parser)
    parser.set_defaults(**defaults)
    return spec_from_args(parser.parse_args(list(options)))


def load_spec_model(spec: AgentSpec) -> Model:
    """The model a spec names, with its adapter if any."""
    from fireact_core.factory import load_model

    return load_model(spec.model, adapter=spec.adapter) if spec.adapter is not None else load_model(spec.model)


def build_agent(spec: AgentSpec, model: Model | None = None, *, tools: Tools | str | None = "spec",
                prompts: Prompts | None = None, noise_pool: Sequence[str] | None = None) -> Agent:
    """The `Agent` a spec describes: `model` (loaded from the spec when None), fresh tools from
    `spec.tools` (or the `tools` given), and the spec as its configuration and record."""
    from fireact_core.agent import Agent
    from fireact_core.factory import load_tools

    if isinstance(tools, str):
        spec_tools = (spec.tools or "none").strip()
        tools = None if spec_tools.lower() in ("none", "") else load_tools(spec_tools)
    return Agent(load_spec_model(spec) if model is None else model, tools, spec, prompts=prompts,
                 noise_pool=noise_pool)


def agent_factory(spec: AgentSpec, model: Model | None = None) -> Callable[[int], Agent]:
    """Load the model once (or reuse `model`); return `make(i)`, a fresh agent (own tools, noise seed `seed + i`).

    A bad tool spec or a missing corpus fails before the model loads.
    """
    from fireact_core.factory import load_tools

    if spec.tools.lower() not in ("none", ""):
        load_tools(spec.tools)
    loaded = load_spec_model(spec) if model is None else model

    def make(i: int = 0) -> Agent:
        return build_agent(spec.with_seed_offset(i), loaded)

    return make
