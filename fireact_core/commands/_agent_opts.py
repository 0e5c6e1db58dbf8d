"""Agent options shared by `fireact run`, `eval` and `generate`: one place to add them and to
build an agent from them.

`--adapter` applies to local models (`smollm2`, `local:…`; `fake` accepts and ignores it):
`default` is the project's fine-tuned adapter (`data/adapters/default/`), `none` a prompted
agent. With an adapter the agent runs in fine-tuned mode (the question alone, no
exemplars); `--finetuned` forces that mode for a remote fine-tuned model.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fireact_core.errors import ConfigError

ADAPTER_KINDS = ("smollm2", "local", "fake")  # model kinds that take --adapter


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


def add_agent_args(parser: argparse.ArgumentParser) -> None:
    """Add the agent options to a subcommand's parser."""
    from fireact_core.methods import METHODS
    from fireact_core.tools.noisy import NOISE_MODES

    g = parser.add_argument_group("agent")
    g.add_argument("--model", default="smollm2",
                   help="model spec: smollm2 (default, bundled) · local:<path or hub id> · openai:<model> · fake[:answer]")
    g.add_argument("--adapter", default="default",
                   help="LoRA adapter for a local model: 'default' (the bundled fine-tuned adapter), "
                        "'none' (a prompted agent), or a folder / hub id")
    g.add_argument("--finetuned", action="store_true",
                   help="fine-tuned mode (the question alone) for a model without --adapter, e.g. a fine-tuned API model")
    g.add_argument("--method", choices=METHODS, default="react", help="agent method (default: react)")
    g.add_argument("--tools", default="corpus",
                   help="tool spec: corpus[:PATH] (default, offline) · wikipedia · google · none; comma-separated")
    g.add_argument("--noise", choices=NOISE_MODES, default="off",
                   help="noisy search: off (default), none (observation → 'None'), random (→ an earlier observation)")
    g.add_argument("--p", type=_probability, default=0.5, help="noise probability (default: 0.5)")
    g.add_argument("--seed", type=int, default=0, help="noise seed; the same seed replays a run (default: 0)")
    g.add_argument("--max-steps", type=_positive, default=11, help="step limit (default: 11, the paper's)")
    g.add_argument("--trials", type=_positive, default=3, help="Reflexion trials (default: 3)")
    g.add_argument("--max-tokens", type=_positive, default=200, help="tokens per model call (default: 200)")


def agent_config(args: argparse.Namespace) -> Any:
    """The `AgentConfig` the options describe."""
    from fireact_core.agent import AgentConfig
    from fireact_core.tools.noisy import NoiseConfig

    return AgentConfig(method=args.method, finetuned=_finetuned(args), max_steps=args.max_steps,
                       trials=args.trials, max_tokens=args.max_tokens,
                       noise=NoiseConfig(mode=args.noise, p=args.p, seed=args.seed))


def _adapter(args: argparse.Namespace) -> str | None:
    adapter = (args.adapter or "none").strip()
    kind = args.model.partition(":")[0]
    if kind not in ADAPTER_KINDS:
        if adapter not in ("none", "default"):
            raise ConfigError(f"--adapter applies to local models ({', '.join(ADAPTER_KINDS)}), not {args.model!r}; "
                              "use --finetuned for a fine-tuned remote model")
        return None
    return None if adapter.lower() == "none" else adapter


def _finetuned(args: argparse.Namespace) -> bool:
    return bool(args.finetuned or _adapter(args) is not None)


def load_agent_model(args: argparse.Namespace) -> Any:
    """The model the options name, with its adapter if any."""
    from fireact_core.factory import load_model

    adapter = _adapter(args)
    return load_model(args.model, adapter=adapter) if adapter is not None else load_model(args.model)


def agent_factory(args: argparse.Namespace, model: Any = None) -> Callable[[int], Any]:
    """Load the model once (or reuse `model`, loaded by `load_agent_model`); return `make(i)`,
    a fresh agent (own tools, noise seed `seed + i`)."""
    from fireact_core.agent import Agent
    from fireact_core.factory import load_tools

    config = agent_config(args)
    tools_spec = (args.tools or "none").strip()
    no_tools = tools_spec.lower() == "none"
    if not no_tools:
        load_tools(tools_spec)  # fail now, before loading the model, on a bad spec or a missing corpus
    if model is None:
        model = load_agent_model(args)

    def make(i: int = 0) -> Agent:
        tools = None if no_tools else load_tools(tools_spec)
        cfg = replace(config, noise=replace(config.noise, seed=config.noise.seed + i))
        return Agent(model, tools, cfg)

    return make


def build_agent(args: argparse.Namespace) -> Any:
    """One agent from the options (noise seed = `--seed`)."""
    return agent_factory(args)(0)


def agent_description(args: argparse.Namespace) -> dict[str, Any]:
    """What the options chose, for trajectories' `agent` field and for printing."""
    return {"model": args.model, "adapter": _adapter(args), "tools": args.tools, "method": args.method,
            "finetuned": _finetuned(args), "noise": args.noise, "p": args.p, "seed": args.seed}
