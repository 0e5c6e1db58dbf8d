"""`fireact train --recipe R [--data FILE[:WEIGHT]] [--set key=value] [--push-to-hub user/name]`:
fine-tune a LoRA / 4-bit QLoRA adapter on agent trajectories (see `train/`).

`fireact train --list` shows the recipes; `fireact train --hub` lists adapters tagged `fireact`
on the Hugging Face Hub."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from train.sft import add_arguments

    p = sub.add_parser("train", help="fine-tune an adapter on trajectories (LoRA / 4-bit QLoRA)",
                       description="Fine-tune a base model on agent trajectories with TRL; the loss covers only "
                                   "the agent's Thought/Action tokens. Writes a PEFT adapter folder with a model "
                                   "card and a fireact.json manifest. Multi-GPU: "
                                   "`accelerate launch -m train.sft --recipe …`.")
    add_arguments(p)
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("--hub", action="store_true", help="list adapters tagged 'fireact' on the Hub and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        from train.config import list_recipes, recipe_path

        for name in list_recipes():
            first = recipe_path(name).read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
            print(f"{name:32} {first}")
        return 0
    if args.hub:
        from train.hub import discover

        found = discover()
        for a in found:
            print(a.format())
        if not found:
            print("no models tagged 'fireact' found")
        return 0
    from train.sft import config_from_args, main, summarize

    cfg = config_from_args(args)
    if args.dry_run:
        print(summarize(cfg).format())
        return 0
    result = main(cfg)
    return 1 if "hub_error" in result else 0
