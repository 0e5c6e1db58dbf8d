"""`fireact convert IN OUT --to {alpaca,chat,trajectories}`: convert trajectory files between
the paper's Alpaca JSON, OpenAI chat JSONL and our trajectory JSONL, validating both sides."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from fireact_core.formats import FORMATS

    p = sub.add_parser("convert", help="convert trajectories between Alpaca, chat and trajectory files",
                       description="Read an Alpaca JSON, chat JSONL or trajectory JSONL file (the format is "
                                   "detected per record), validate every record, write it in another format, read "
                                   "the result back to check it, and print counts by task and method.")
    p.add_argument("input", help="file to read")
    p.add_argument("output", help="file to write")
    p.add_argument("--to", required=True, choices=FORMATS, help="output format")
    p.set_defaults(func=run)


def count_table(trajs: list) -> str:
    """A task × method table of counts."""
    counts = Counter((t.task or "?", t.method or "?") for t in trajs)
    tasks = sorted({k[0] for k in counts})
    methods = sorted({k[1] for k in counts})
    width = max([len(t) for t in tasks] + [5])
    head = "task".ljust(width) + "".join(f"{m:>11}" for m in methods) + f"{'total':>9}"
    rows = [head]
    for task in tasks:
        cells = "".join(f"{counts[(task, m)]:>11}" for m in methods)
        rows.append(task.ljust(width) + cells + f"{sum(counts[(task, m)] for m in methods):>9}")
    rows.append("total".ljust(width) + "".join(f"{sum(counts[(t, m)] for t in tasks):>11}" for m in methods)
                + f"{len(trajs):>9}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from fireact_core.errors import FireActError
    from fireact_core.formats import read_trajectories, to_alpaca, to_chat, write_trajectories

    src, dst = Path(args.input), Path(args.output)
    if src.resolve() == dst.resolve():
        raise FireActError("the output must be a different file from the input")
    trajs = list(read_trajectories(src))
    n = write_trajectories(trajs, dst, args.to)
    back = list(read_trajectories(dst))
    if len(back) != n:
        raise FireActError(f"{dst}: wrote {n} trajectories but read back {len(back)}")
    render = {"alpaca": to_alpaca, "chat": to_chat, "trajectories": lambda t: t.to_dict()}[args.to]
    for i, (a, b) in enumerate(zip(trajs, back)):
        if render(a) != render(b):
            raise FireActError(f"{dst}: trajectory {i + 1} does not read back as written")
    print(f"converted {n} trajectories: {src} -> {dst} ({args.to})")
    print(count_table(trajs))
    return 0
