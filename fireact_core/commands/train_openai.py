"""`fireact train-openai --data chat.jsonl --model M`: fine-tune an OpenAI model on trajectories
(the paper's GPT-3.5 FireAct): upload the file, start the job, follow its status."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-openai", help="fine-tune an OpenAI model on trajectories",
                       description="Upload trajectories (any format the trainer reads, converted to chat JSONL), "
                                   "start an OpenAI fine-tuning job and follow it until it ends. "
                                   "Needs OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server).")
    p.add_argument("--data", action="append", required=True, metavar="FILE[:WEIGHT]", help="training file; repeatable")
    p.add_argument("--model", default="gpt-4o-mini-2024-07-18", help="base model to fine-tune")
    p.add_argument("--suffix", default="fireact", help="suffix of the fine-tuned model's name")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the API's choice)")
    p.add_argument("--val-size", type=float, default=0.0, help="validation share (< 1) or count (default: 0)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--base-url", default=None, help="API base URL (default: $OPENAI_BASE_URL or OpenAI)")
    p.add_argument("--no-follow", action="store_true", help="start the job and return")
    p.add_argument("--poll", type=float, default=10.0, help="seconds between status checks (default: 10)")
    p.add_argument("--timeout", type=float, default=None, help="stop following after this many seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from train.openai_ft import client, follow, start

    api = client(args.base_url)
    job = start(args.data, model=args.model, api=api, suffix=args.suffix, epochs=args.epochs,
                val_size=args.val_size, seed=args.seed)
    if args.no_follow:
        return 0
    job = follow(api, job.id, poll_s=args.poll, timeout_s=args.timeout)
    return 0 if job.status in ("succeeded", "running", "queued", "validating_files") else 1
