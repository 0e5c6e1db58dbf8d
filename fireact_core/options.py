"""Agent options shared by `fireact run` and `eval`, generated from `AgentSpec`'s fields, and the
`AgentSpec` they describe (`spec_from_args`, `spec_from_options`), and back (`spec_argv`).

Options are for people (the CLI, a recipe's `eval_args`, a config file): they are parsed once, where they
come in, and code passes the `AgentSpec` (or a `dataclasses.replace` of it) from there on.

Each option is a field of the record (`fireact_core.spec`, `fireact_core.noise`): its flag, help text,
choices and default come from the field and its metadata (the way TRL's `HfArgumentParser` reads its
dataclasses), so a new field is a new option and a default is written once.

`--adapter` applies to local models (`smollm2`, `gemma3`, `local:…`; `fake` accepts and ignores it):
`default` is the project's fine-tuned adapter for that base (`data/adapters/default/` for SmolLM2,
`data/adapters/gemma3/` for Gemma 3), `none` a prompted
agent. With an adapter the agent runs in fine-tuned mode (the question alone, no
exemplars); `--finetuned` forces that mode for a remote fine-tuned model.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from fireact_core.errors import ConfigError
from fireact_core.known_adapters import resolve_format
from fireact_core.noise import NoiseConfig
from fireact_core.spec import ADAPTER_KINDS, FIELD_ORDER, AgentSpec

if TYPE_CHECKING:
    from fireact_core.agent import Agent



def _probability(value: str) -> float:
    try:
        p = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number within [0, 1], got {value!r}") from None
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number within [0, 1], got {value}")
    return p


def _int_at_least(minimum: int, what: str) -> Any:
    """An argparse type: an integer >= `minimum`, described as `what` in the error."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {n}")
        return n

    return parse


_positive = _int_at_least(1, "a positive integer")
_nonneg = _int_at_least(0, "an integer >= 0")
_AT_LEAST = {1: _positive, 0: _nonneg}


def _option_fields() -> Iterator[tuple[dataclasses.Field[Any], str]]:
    """(field, its flag) for each option, the noise's own fields in place of `noise`."""
    by_name = {f.name: f for f in dataclasses.fields(AgentSpec)}
    for name in FIELD_ORDER:
        if not by_name[name].metadata.get("cli", True):  # the arena's `role`
            continue
        for f in dataclasses.fields(NoiseConfig) if name == "noise" else [by_name[name]]:
            yield f, f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_agent_args(parser: argparse.ArgumentParser) -> None:
    """Add the agent options, one per field of `AgentSpec`, to a subcommand's parser."""
    g = parser.add_argument_group("agent")
    for f, flag in _option_fields():
        meta = f.metadata
        default = meta.get("cli_default", f.default)
        if isinstance(default, bool):
            g.add_argument(flag, action="store_true", help=meta["help"])
            continue
        kw: dict[str, Any] = {"default": default}
        if "choices" in meta:
            kw["choices"] = meta["choices"]
        elif meta.get("probability"):
            kw["type"] = _probability
        elif "minimum" in meta:
            kw["type"] = _AT_LEAST[meta["minimum"]]
        elif isinstance(default, int):
            kw["type"] = int
        note = f" (default: {default})" if default is not None else ""
        g.add_argument(flag, help=meta["help"] + note, **kw)


def spec_from_args(args: argparse.Namespace) -> AgentSpec:
    """The `AgentSpec` the options describe: the one record of the agent that runs and that its trajectories
    carry, its prompt format resolved (`auto`: an adapter's own)."""
    model = _model(args)
    adapter = _adapter(args, model)
    noise_fields = dataclasses.fields(NoiseConfig)
    given = {f.name: getattr(args, _dest(flag)) for f, flag in _option_fields() if hasattr(args, _dest(flag))}
    noise = NoiseConfig(**{f.name: given.pop(f.name) for f in noise_fields if f.name in given})
    kw: dict[str, Any] = given
    kw.update(model=model, adapter=adapter, tools=(args.tools or "none").strip(), noise=noise,
              finetuned=bool(args.finetuned or adapter is not None), prompt_format=kw.get("prompt_format") or "auto")
    # Extractive decoding is a kind of constrained decoding: it implies it.
    kw["constrained"] = bool(kw.get("extractive")) or bool(kw.get("constrained"))
    spec = AgentSpec(**kw)
    if spec.prompt_format == "auto":
        spec.prompt_format = resolve_format(spec)[0]
    return spec


def spec_from_options(options: Sequence[str], **defaults: Any) -> AgentSpec:
    """An `AgentSpec` from `fireact run`/`eval` agent options (e.g. a recipe's `eval_args`), over `defaults`
    (option names: `model`, `adapter`, `tools`, ...). A bad option raises `ConfigError`."""

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # type: ignore[override]
            raise ConfigError(f"agent options {' '.join(options)!r}: {message}")

    parser = Parser(prog="agent options", add_help=False)
    add_agent_args(parser)
    parser.set_defaults(**defaults)
    return spec_from_args(parser.parse_args(list(options)))


def spec_argv(spec: AgentSpec) -> list[str]:
    """The `fireact run`/`eval` options that rebuild `spec` (`spec_from_options(spec_argv(s)) == s`): the model,
    the adapter, and a flag for each other field that differs from its default. For commands a person reruns."""
    argv = ["--model", spec.model, "--adapter", spec.adapter or "none"]
    for f, flag in _option_fields():
        if f.name in ("model", "adapter"):
            continue
        owner: Any = spec.noise if f in dataclasses.fields(NoiseConfig) else spec
        value = getattr(owner, f.name)
        if value == f.default:
            continue
        argv += [flag] if isinstance(value, bool) else [flag, str(value)]
    return argv


def format_notice(args: argparse.Namespace, spec: AgentSpec) -> str | None:
    """What to tell the user when a fine-tuned agent's format was not given and its adapter does not say it."""
    if getattr(args, "prompt_format", None) not in (None, "auto") or not spec.finetuned or not spec.adapter:
        return None
    fmt, why = resolve_format(spec)
    if "base's format" not in why:
        return None
    return (f"note: adapter {spec.adapter}: {why} ({fmt}); if it was trained in another format, choose it with "
            "--prompt-format alpaca|chat|text")


def _model(args: argparse.Namespace) -> str:
    """`--model`, or when it is not given the base an `--adapter` folder was trained on (default: smollm2)."""
    from fireact_core.build import adapter_base_id, base_model_spec
    from fireact_core.known_adapters import known

    if args.model:
        return args.model
    base = adapter_base_id(args.adapter) if args.adapter and args.adapter not in ("none", "default") else None
    entry = known(args.adapter)  # a published adapter: the base its authors trained it on
    base = base or (entry.base if entry else None)
    return base_model_spec(base) if base else AgentSpec.model


def _adapter(args: argparse.Namespace, model: str) -> str | None:
    adapter = (args.adapter or "none").strip()
    kind = model.partition(":")[0]
    if kind not in ADAPTER_KINDS:
        if adapter not in ("none", "default"):
            raise ConfigError(f"--adapter applies to local models ({', '.join(ADAPTER_KINDS)}), not {model!r}; "
                              "use --finetuned for a fine-tuned remote model")
        return None
    return None if adapter.lower() == "none" else adapter


def agent_factory(spec: AgentSpec | argparse.Namespace, model: Any = None) -> Callable[[int], Agent]:
    """`fireact_core.build.agent_factory`, also for parsed options."""
    from fireact_core.build import agent_factory as factory

    return factory(spec_from_args(spec) if isinstance(spec, argparse.Namespace) else spec, model)
