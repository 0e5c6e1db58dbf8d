"""Which agent ran: `AgentSpec`, the one typed description every part of FireAct passes around.

The record layer: this module imports nothing of the project but the other records (`errors`, `noise`).
The CLI builds a spec from its options (`fireact_core.options`, whose flags are generated
from the fields here), the teacher from its model and tools, the arena for each side of a battle, the
trainer's evaluation from its recipe. `fireact_core.build.build_agent(spec)` turns it into an `Agent`;
the agent records it on each `Trajectory` (`trajectory.agent`); the store reads its columns and its
leaderboard `key` from it; and an old record (a plain dict in one of the shapes earlier versions wrote)
upgrades through `AgentSpec.from_dict`.

    spec = AgentSpec(model="smollm2", adapter="data/adapters/default", finetuned=True)
    traj = build_agent(spec).solve("Which country is the director of Tovarin Sels from?")
    traj.agent.key        # 'smollm2 + default · fine-tuned'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError, FormatError
from fireact_core.noise import NoiseConfig

METHODS = ("io", "cot", "react", "reflexion")  # fireact_core.methods, where their prompts are
PROMPT_FORMATS = ("chat", "alpaca", "text", "scratchpad")  # fireact_core.prompt_formats, where they are rendered
AUTO = "auto"  # a prompt format resolved when the agent is built (an adapter's own format needs its manifest)
KEYLESS_TOOLS = ("corpus", "")  # tools the leaderboard key leaves unsaid: the default offline world, and unknown


@dataclass(frozen=True)
class ModelKind:
    """What a model spec's kind (its prefix: `smollm2`, `local:…`, `openai:…`) is."""

    runs: str  # its concurrency class: local (this machine's weights), openai, fake
    adapter: bool  # takes a LoRA adapter (`fake` accepts and ignores one)
    grammar: bool  # decodes under a grammar (constrained decoding; the app's fakes accept one)
    loader: str  # "module:function" that loads it (`fireact_core.factory.load_model`), imported only when used


# The one list of model kinds.
MODEL_KINDS: dict[str, ModelKind] = {
    "smollm2": ModelKind("local", adapter=True, grammar=True, loader="fireact_core.backends.local:load"),
    "gemma3": ModelKind("local", adapter=True, grammar=True, loader="fireact_core.backends.local:load_gemma3"),
    "local": ModelKind("local", adapter=True, grammar=True, loader="fireact_core.backends.local:load"),
    "openai": ModelKind("openai", adapter=False, grammar=False, loader="fireact_core.backends.openai_backend:load"),
    "fake": ModelKind("fake", adapter=True, grammar=True, loader="fireact_core.backends.fake:load"),
}
LOCAL_KINDS = tuple(k for k, m in MODEL_KINDS.items() if m.runs == "local")  # run on this machine's weights
ADAPTER_KINDS = tuple(k for k, m in MODEL_KINDS.items() if m.adapter)  # take an adapter
CONSTRAINABLE_KINDS = tuple(dict.fromkeys(m.runs for m in MODEL_KINDS.values() if m.grammar))  # `AgentSpec.kind`s


def _opt(help: str, **cli: Any) -> dict[str, Any]:
    """A field's CLI option: its help text and how argparse reads it (`choices`, `minimum`, `cli_default`, ...)."""
    return {"help": help, **cli}


@dataclass
class AgentConfig:
    """The agent loop's knobs: the method, prompted or fine-tuned, and its limits.

    Each field's metadata is its `fireact run`/`eval` option (`fireact_core.options` generates them)."""

    method: str = field(default="react", metadata=_opt("agent method", choices=METHODS))
    finetuned: bool = field(default=False, metadata=_opt(  # no instruction, no exemplars: the question alone
        "fine-tuned mode (the question alone) for a model without --adapter, e.g. a fine-tuned API model"))
    max_steps: int = field(default=11, metadata=_opt("step limit (11: the paper's)", minimum=1))
    max_tokens: int = field(default=200, metadata=_opt("tokens per model call", minimum=1))
    trials: int = field(default=3, metadata=_opt("Reflexion trials", minimum=1))
    exemplars: int = field(default=2, metadata=_opt("few-shot exemplars for prompted agents", minimum=0))
    noise: NoiseConfig = field(default_factory=NoiseConfig)  # its own fields are its options
    # How the model sees the trajectory (fireact_core.prompt_formats): `chat` (each Observation a user
    # turn), `scratchpad` (prompted agents: one assistant turn that grows, Observations inline), `alpaca`
    # (the paper's raw Alpaca text, its fine-tuned Llamas' format) or `text` (a raw prompt as it is, the
    # paper's prompted baselines). `auto`: a raw prompts file's `text`, else `chat`; for a fine-tuned agent,
    # its adapter's own format (its fireact.json, or the known adapters' table), resolved when it is built
    # (`fireact_core.known_adapters.resolve_format`). A fine-tuned agent given `scratchpad` runs `chat`.
    prompt_format: str = field(default=AUTO, metadata=_opt(
        "how the model sees the trajectory: chat (each Observation a user turn), scratchpad (prompted: one "
        "growing assistant turn, Observations inline), alpaca (the paper's Alpaca text, its fine-tuned "
        "Llamas' format) or text (a raw prompt as it is). Default (auto): an adapter's own format (its "
        "fireact.json, or the known table for the paper's adapters), text for --prompts paper, else chat",
        choices=(*PROMPT_FORMATS, AUTO), cli_default=None))
    constrained: bool = field(default=False, metadata=_opt(  # format-constrained decoding (local models only)
        "prompted local models: constrain decoding to one Thought line and an Action "
        "search[...]/lookup[...]/finish[...] (reported as its own configuration)"))
    # On top of it: each argument copied from the question or the Observations (finish: also yes,
    # no or a number), so a small model answers with what it read, not with an exemplar's answer.
    extractive: bool = field(default=False, metadata=_opt(
        "with constrained decoding (implies --constrained): each argument is copied from the question or "
        "the Observations; finish may also say yes, no or a number"))
    prompts: str = field(default="default", metadata=_opt(  # a name in fireact_core/prompts/ or a path
        "prompted agents' instructions and exemplars: default (written for this project), world "
        "(the world's own teacher trajectories as exemplars; use with --exemplars 6), nearest (each "
        "question's exemplars drawn from the world's teacher trajectories worded most like it), paper "
        "(the FireAct paper's ReAct prompt verbatim, as raw text, from its data folder) or a YAML path"))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.prompt_format not in (*PROMPT_FORMATS, AUTO):
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

    model: str = field(default="smollm2", metadata=_opt(
        "model spec: smollm2 (default, bundled; with an --adapter folder, the base its adapter_config.json "
        "names) · gemma3 (bundled Gemma 3 270M) · local:<path or hub id> · openai:<model> · fake[:answer]",
        cli_default=None))
    adapter: str | None = field(default=None, metadata=_opt(
        "LoRA adapter for a local model: 'default' (the bundled fine-tuned adapter), 'none' (a prompted agent), "
        "or a folder / hub id", cli_default="default"))
    tools: str = field(default="corpus", metadata=_opt(
        "tool spec: corpus[:PATH] (offline) · wikipedia · google · none; comma-separated"))
    role: str = field(default="", metadata={"cli": False})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompt_format == AUTO and not self.finetuned:  # what needs no adapter's manifest is known now
            self.prompt_format = "text" if self.prompts == "paper" else "chat"

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
            fmt = f" · {self.prompt_format}" if self.prompt_format not in ("chat", "scratchpad", AUTO) else ""
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
        return MODEL_KINDS[k].runs if k in MODEL_KINDS else k

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
        d = {name: getattr(self, name) for name in FIELD_ORDER}
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
        kw: dict[str, Any] = {k: d[k] for k in FIELD_ORDER if k in d and d[k] is not None and k != "noise"}
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
        if name not in FIELD_ORDER:
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
        for name in FIELD_ORDER:
            if name in given or (name == "noise" and {"p", "seed"} & set(given)):
                setattr(self, name, getattr(merged, name))


FIELD_ORDER = ("model", "adapter", "method", "finetuned", "exemplars", "max_steps", "max_tokens", "trials", "tools",
               "noise", "prompts", "prompt_format", "constrained", "extractive", "role")  # the JSON's, the CLI's


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


def adapter_label(adapter: str | None) -> str | None:
    """How an adapter is named on the leaderboard: a local folder by its name (the same on every
    machine: `data/adapters/default` → `default`), a Hub repo by its id."""
    if not adapter:
        return None
    p = Path(adapter).expanduser()
    return p.name if p.is_absolute() or p.is_dir() else adapter
