"""Agent options shared by `fireact run` and `eval`: one place to add them, and to turn them
into the `AgentSpec` they describe (`spec_from_args`).

`--adapter` applies to local models (`smollm2`, `gemma3`, `local:…`; `fake` accepts and ignores it):
`default` is the project's fine-tuned adapter for that base (`data/adapters/default/` for SmolLM2,
`data/adapters/gemma3/` for Gemma 3), `none` a prompted
agent. With an adapter the agent runs in fine-tuned mode (the question alone, no
exemplars); `--finetuned` forces that mode for a remote fine-tuned model.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fireact_core.errors import ConfigError

if TYPE_CHECKING:
    from fireact_core.spec import AgentSpec

ADAPTER_KINDS = ("smollm2", "gemma3", "local", "fake")  # model kinds that take --adapter


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
    g.add_argument("--model", default=None,
                   help="model spec: smollm2 (default, bundled; with an --adapter folder, the base its "
                        "adapter_config.json names) · gemma3 (bundled Gemma 3 270M) · "
                        "local:<path or hub id> · openai:<model> · fake[:answer]")
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
    g.add_argument("--prompt-format", choices=("chat", "scratchpad", "alpaca", "text", "auto"), default=None,
                   help="how the model sees the trajectory: chat (each Observation a user turn), scratchpad (prompted: one "
                        "growing assistant turn, Observations inline), alpaca (the paper's Alpaca text, its fine-tuned "
                        "Llamas' format) or text (a raw prompt as it is). Default (auto): an adapter's own format (its "
                        "fireact.json, or the known table for the paper's adapters), text for --prompts paper, else chat")
    g.add_argument("--prompts", default="default",
                   help="prompted agents' instructions and exemplars: default (written for this project), world "
                        "(the world's own teacher trajectories as exemplars; use with --exemplars 6), nearest (each "
                        "question's exemplars drawn from the world's teacher trajectories worded most like it), paper "
                        "(the FireAct paper's ReAct prompt verbatim, as raw text, from its data folder) or a YAML path")
    g.add_argument("--exemplars", type=_nonneg, default=2, help="few-shot exemplars for prompted agents (default: 2)")
    g.add_argument("--constrained", action="store_true",
                   help="prompted local models: constrain decoding to one Thought line and an Action "
                        "search[...]/lookup[...]/finish[...] (reported as its own configuration)")
    g.add_argument("--extractive", action="store_true",
                   help="with constrained decoding (implies --constrained): each argument is copied from the question or "
                        "the Observations; finish may also say yes, no or a number")


def spec_from_args(args: argparse.Namespace) -> AgentSpec:
    """The `AgentSpec` the options describe: the one record of the agent that runs and that its trajectories carry."""
    from fireact_core.spec import AgentSpec
    from fireact_core.tools.noisy import NoiseConfig

    model = _model(args)
    adapter = _adapter(args, model)
    extractive = bool(getattr(args, "extractive", False))  # a kind of constrained decoding: it implies it
    return AgentSpec(model=model, adapter=adapter, tools=(args.tools or "none").strip(), method=args.method,
                     finetuned=bool(args.finetuned or adapter is not None), max_steps=args.max_steps,
                     trials=args.trials, max_tokens=args.max_tokens,
                     noise=NoiseConfig(mode=args.noise, p=args.p, seed=args.seed),
                     prompt_format=getattr(args, "prompt_format", None) or "auto", extractive=extractive,
                     constrained=extractive or bool(getattr(args, "constrained", False)),
                     prompts=getattr(args, "prompts", "default"), exemplars=getattr(args, "exemplars", 2))


def format_notice(args: argparse.Namespace, spec: AgentSpec) -> str | None:
    """What to tell the user when a fine-tuned agent's format was not given and its adapter does not say it."""
    from fireact_core.spec import resolve_format

    if getattr(args, "prompt_format", None) not in (None, "auto") or not spec.finetuned or not spec.adapter:
        return None
    fmt, why = resolve_format(spec)
    if "base's format" not in why:
        return None
    return (f"note: adapter {spec.adapter}: {why} ({fmt}); if it was trained in another format, choose it with "
            "--prompt-format alpaca|chat|text")


def _model(args: argparse.Namespace) -> str:
    """`--model`, or when it is not given the base an `--adapter` folder was trained on (default: smollm2)."""
    from fireact_core.spec import adapter_base_id, base_model_spec

    if args.model:
        return args.model
    from fireact_core.known_adapters import known

    base = adapter_base_id(args.adapter) if args.adapter and args.adapter not in ("none", "default") else None
    entry = known(args.adapter)  # a published adapter: the base its authors trained it on
    base = base or (entry.base if entry else None)
    return base_model_spec(base) if base else "smollm2"


def _adapter(args: argparse.Namespace, model: str) -> str | None:
    adapter = (args.adapter or "none").strip()
    kind = model.partition(":")[0]
    if kind not in ADAPTER_KINDS:
        if adapter not in ("none", "default"):
            raise ConfigError(f"--adapter applies to local models ({', '.join(ADAPTER_KINDS)}), not {model!r}; "
                              "use --finetuned for a fine-tuned remote model")
        return None
    return None if adapter.lower() == "none" else adapter


def agent_factory(spec: AgentSpec | argparse.Namespace, model: Any = None) -> Callable[[int], Any]:
    """`fireact_core.spec.agent_factory`, also for parsed options."""
    from fireact_core.spec import agent_factory as factory

    return factory(spec_from_args(spec) if isinstance(spec, argparse.Namespace) else spec, model)
