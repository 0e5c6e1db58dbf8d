"""`fireact eval --task T --split S`: run an agent over a task split and print EM, F1, steps,
time and tokens per trial; write the trajectories as JSONL."""

from __future__ import annotations

import argparse
import sys

from fireact_core.options import _nonneg, add_agent_args, agent_factory, format_notice, spec_from_args


def register(sub: argparse._SubParsersAction) -> None:
    from fireact_core.tasks import TASKS

    valid = ", ".join(f"{n} ({'/'.join(c.splits)})" for n, c in TASKS.items())
    p = sub.add_parser("eval", help="evaluate an agent on a task split",
                       description="Run an agent over a task split, print EM, F1, mean steps, time/trial and "
                                   f"tokens/trial, and write the trajectories as JSONL. Tasks (splits): {valid}.")
    p.add_argument("--task", required=True, help=f"task: {', '.join(TASKS)}")
    p.add_argument("--split", default=None, help="split (default: the task's first, e.g. dev)")
    p.add_argument("--limit", type=_nonneg, default=None, help="evaluate the first N examples (default: all)")
    p.add_argument("--offset", type=_nonneg, default=0, help="skip the first N examples (default: 0)")
    p.add_argument("--data-dir", default=None, help="folder with the task files (default: $FIREACT_DATA, "
                                                    "../shared/data/fireact, data/)")
    p.add_argument("--order", choices=("file", "paper"), default="file",
                   help="file: the split as it is (default) · paper: the FireAct paper's subset, the split shuffled with "
                        "random.Random(233) and its first 500 (e.g. --task hotpotqa --order paper: the paper's 500 dev "
                        "questions in its order); --offset and --limit then apply to that list")
    p.add_argument("--out", default=None, help="trajectories JSONL to write (default: runs/<task>-<split>.jsonl)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_agent_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fireact_core.evaluate import evaluate
    from fireact_core.tasks import load_task, paper_order

    task = load_task(args.task, args.split, data_dir=args.data_dir)  # before loading the model
    end = None if args.limit is None else args.offset + args.limit
    pool = paper_order(task) if getattr(args, "order", "file") == "paper" else task.examples
    examples = pool[args.offset:end]
    paper = "-paper" if pool is not task.examples else ""
    out = args.out or f"runs/{task.name}-{task.split}{paper}.jsonl"
    spec = spec_from_args(args)
    notice = format_notice(args, spec)
    if notice:
        print(notice, file=sys.stderr)
    make = agent_factory(spec)
    print(f"fireact eval: {task.name} {task.split}{' (the paper order)' if paper else ''}, {len(examples)} of "
          f"{len(task)} examples, model {spec.model}, method {args.method}, noise {args.noise}, prompt format "
          f"{spec.prompt_format}", file=sys.stderr)
    summary = evaluate(lambda i: make(args.offset + i), examples, out=out, progress=not args.no_progress)
    print(summary.format())
    return 0
