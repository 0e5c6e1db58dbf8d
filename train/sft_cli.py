"""The trainer's command line (`python -m train.sft`, `fireact train`): its options and how they become a `TrainConfig`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fireact_core.errors import FireActError
from train.config import TrainConfig, list_recipes, load_config, valid_keys


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The trainer's options (shared by `python -m train.sft` and `fireact train`)."""
    p.add_argument("--recipe", help=f"recipe name ({', '.join(list_recipes())}) or a YAML file")
    p.add_argument("--data", action="append", metavar="FILE[:WEIGHT]",
                   help="training file (Alpaca JSON, chat JSONL, trajectory JSONL, app export); repeatable; "
                        "replaces the recipe's data")
    p.add_argument("--set", action="append", dest="overrides", metavar="KEY=VALUE",
                   help=f"override a recipe key (repeatable). Keys: {', '.join(valid_keys())}")
    p.add_argument("--output-dir", help="where the adapter goes (default: the recipe's output_dir)")
    p.add_argument("--base", help="base model: Hub id or local folder (default: the recipe's)")
    p.add_argument("--no-4bit", action="store_true", help="full-precision LoRA instead of 4-bit QLoRA")
    p.add_argument("--merge", action="store_true", help="also write a merged full model to OUTPUT/merged")
    p.add_argument("--resume", nargs="?", const=True, metavar="CHECKPOINT",
                   help="resume from the latest checkpoint in the output folder, or from CHECKPOINT")
    p.add_argument("--push-to-hub", metavar="USER/NAME", help="upload the adapter folder to this Hub repo")
    p.add_argument("--private", action="store_true", help="create the Hub repo private")
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--eval-questions", type=int, metavar="N", help="agent EM on N questions after training")
    p.add_argument("--dry-run", action="store_true", help="check the data and print its summary; do not train")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = list(args.overrides or [])
    extra: dict[str, Any] = {}
    if args.data:
        extra["data"] = list(args.data)
    if args.output_dir:
        extra["output_dir"] = args.output_dir
    if args.base:
        extra["base"] = args.base
    if args.no_4bit:
        extra["load_in_4bit"] = False
    if args.merge:
        extra["merge"] = True
    if args.resume is not None:
        extra["resume_from_checkpoint"] = args.resume
    if args.push_to_hub:
        extra["push_to_hub"] = args.push_to_hub
    if args.private:
        extra["private"] = True
    if args.max_steps is not None:
        extra["max_steps"] = args.max_steps
    if args.eval_questions is not None:
        extra["eval_questions"] = args.eval_questions
    cfg = load_config(args.recipe, overrides)
    if extra:
        values = {**cfg.to_dict(), **extra}
        cfg = load_config(None, values)
    return cfg


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.sft", description="Fine-tune a base model on agent trajectories with LoRA / 4-bit QLoRA (TRL `SFTTrainer`).")
    add_arguments(p)
    return p


def cli(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from train.sft import main, summarize

    try:
        cfg = config_from_args(args)
        if args.dry_run:
            print(summarize(cfg).format())
        else:
            main(cfg)
    except FireActError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    return 0
