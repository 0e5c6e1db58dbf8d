"""`fireact generate`: a teacher solves a task split with several methods; the right
trajectories become fine-tuning data (Alpaca JSON, chat JSONL, trajectory JSONL, manifest)."""

from __future__ import annotations

import argparse
import sys

from fireact_core.options import _positive, _probability


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate fine-tuning trajectories with a teacher",
                       description="A teacher (any model spec, e.g. openai:gpt-4, or 'scripted' for the offline "
                                   "world) solves a task split with each method; trajectories whose answer is right "
                                   "(exact match) are written as Alpaca JSON, chat JSONL and trajectory JSONL with a "
                                   "manifest. Rerunning with the same --out resumes: done questions are skipped, "
                                   "failed ones retried.")
    p.add_argument("--teacher", required=True, help="teacher: a model spec (openai:<model>, smollm2, local:<path>, "
                                                    "fake) or scripted[:...]")
    p.add_argument("--task", required=True, help="task: hotpotqa, bamboogle, strategyqa, mmlu, world")
    p.add_argument("--split", default=None, help="split (default: the task's first)")
    p.add_argument("--methods", default="react", help="comma-separated: react,cot,reflexion (default: react)")
    p.add_argument("--limit", type=_positive, default=None, help="the first N questions (default: all)")
    p.add_argument("--offset", type=int, default=0, help="skip the first N questions (default: 0)")
    p.add_argument("--out", required=True, help="output folder (created; reused to resume)")
    p.add_argument("--data-dir", default=None, help="folder with the task files (default: $FIREACT_DATA, "
                                                    "../shared/data/fireact, data/)")
    p.add_argument("--tools", default=None, help="tool spec for a model teacher: google (the paper's, default), "
                                                 "wikipedia, corpus (default for the world task), none")
    p.add_argument("--concurrency", type=_positive, default=1, help="trajectories at once (default: 1)")
    p.add_argument("--rpm", type=float, default=None, help="at most this many model requests a minute (default: no limit)")
    p.add_argument("--noise", choices=("off", "none", "random"), default="off", help="noisy search tool (default: off)")
    p.add_argument("--p", type=_probability, default=0.5, help="noise probability (default: 0.5)")
    p.add_argument("--seed", type=int, default=0, help="noise / teacher seed (default: 0)")
    p.add_argument("--max-steps", type=_positive, default=11, help="step limit (default: 11)")
    p.add_argument("--max-tokens", type=_positive, default=200, help="tokens per model call (default: 200)")
    p.add_argument("--trials", type=_positive, default=3, help="Reflexion trials (default: 3)")
    p.add_argument("--quiet", action="store_true", help="no per-trajectory progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fireact_core.errors import ConfigError
    from fireact_core.generate import generate, load_teacher, parse_methods
    from fireact_core.tasks import load_task
    from fireact_core.tools.noisy import NoiseConfig

    methods = parse_methods(args.methods)
    if args.rpm is not None and args.rpm <= 0:
        raise ConfigError("--rpm must be a positive number of requests a minute")
    if args.offset < 0:
        raise ConfigError("--offset must be >= 0")
    noise = NoiseConfig(mode=args.noise, p=args.p, seed=args.seed)
    task = load_task(args.task, args.split, data_dir=args.data_dir)
    end = None if args.limit is None else args.offset + args.limit
    examples = task.examples[args.offset:end]
    tools = args.tools or ("corpus" if task.name == "world" else "google")
    # Loading the teacher checks keys (OPENAI_API_KEY, SERPAPI_API_KEY) before any work starts.
    teacher = load_teacher(args.teacher, tools=tools, seed=args.seed, rpm=args.rpm, max_steps=args.max_steps,
                           max_tokens=args.max_tokens, trials=args.trials)
    info = {"task": task.name, "split": task.split, "methods": methods, "tools": tools,
            "noise": {"mode": noise.mode, "p": noise.p, "seed": noise.seed}}
    result = generate(teacher, examples, methods, args.out, concurrency=args.concurrency, noise=noise,
                      progress=not args.quiet, info=info)
    m = result.manifest
    failed = result.count("failed")
    print(f"fireact generate: this run {len(result.new)} new ({result.count('kept')} kept, {result.count('rejected')} "
          f"rejected, {failed} failed), {result.skipped} skipped, ${result.cost_usd:.4f}; folder total "
          f"{m['totals']['kept']} kept / {m['totals']['rejected']} rejected / {m['totals']['failed']} failed, "
          f"{m['tokens_in']:,} + {m['tokens_out']:,} tokens, ${m['cost_usd']:.4f}", file=sys.stderr)
    print(result.out / "manifest.json")
    if failed:
        print(f"fireact generate: {failed} trajectories failed (see rejected.jsonl for the reasons); "
              "run the same command again to retry them", file=sys.stderr)
        return 1
    return 0
