"""The trainer's commands on the `fireact` command line: `train`, `train-openai` and `loop`.

The core CLI does not know the trainer: each command here is a `make_parser(subparsers)`
function (TRL's pattern) registered as an entry point of the `fireact.commands` group in
`pyproject.toml`, and `fireact_core.cli` loads one only when its command is asked for (or for
`--help`). So `fireact run` never imports `train`.

    fireact train --recipe R [--data FILE[:WEIGHT]] [--set key=value] [--push-to-hub user/name]
    fireact train --list | --hub
    fireact train-openai --data chat.jsonl --model M
    fireact loop --db app.duckdb --recipe R
"""

from __future__ import annotations

import argparse
import os

from fireact_core.errors import ConfigError


def refuse_on_zero_gpu() -> None:
    """Raise `ConfigError` on ZeroGPU hardware (`SPACES_ZERO_GPU`): it lends a GPU per visitor call, for seconds."""
    if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true"):
        raise ConfigError("training is refused on ZeroGPU hardware (SPACES_ZERO_GPU is set): ZeroGPU lends a GPU "
                          "only inside one visitor's call, for seconds. Train on a machine with a GPU and push the "
                          "adapter to the Hub (--push-to-hub), or use dedicated GPU hardware.")


def make_train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`fireact train`: fine-tune a LoRA / 4-bit QLoRA adapter on agent trajectories."""
    from train.sft import add_arguments

    p = sub.add_parser("train", help="fine-tune an adapter on trajectories (LoRA / 4-bit QLoRA)",
                       description="Fine-tune a base model on agent trajectories with TRL; the loss covers only "
                                   "the agent's Thought/Action tokens. Writes a PEFT adapter folder with a model "
                                   "card and a fireact.json manifest. Multi-GPU: "
                                   "`accelerate launch -m train.sft --recipe …`.")
    add_arguments(p)
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("--hub", action="store_true", help="list adapters tagged 'fireact' on the Hub and exit")
    p.set_defaults(func=run_train)
    return p


def run_train(args: argparse.Namespace) -> int:
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
    refuse_on_zero_gpu()
    result = main(cfg)
    return 1 if "hub_error" in result else 0


def make_openai_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`fireact train-openai`: fine-tune an OpenAI model on trajectories (the paper's GPT-3.5 FireAct)."""
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
    p.set_defaults(func=run_openai)
    return p


def run_openai(args: argparse.Namespace) -> int:
    from train.openai_ft import client, follow, start

    api = client(args.base_url)
    job = start(args.data, model=args.model, api=api, suffix=args.suffix, epochs=args.epochs,
                val_size=args.val_size, seed=args.seed)
    if args.no_follow:
        return 0
    job = follow(api, job.id, poll_s=args.poll, timeout_s=args.timeout)
    return 0 if job.status in ("succeeded", "running", "queued", "validating_files") else 1


def make_loop_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`fireact loop`: the arena's ratings → a new adapter, compared with its predecessor and offered by the app."""
    from fireact_core.training_rule import KEEP_MODES

    p = sub.add_parser("loop", help="train a new adapter on the app's ratings and register it",
                       description="The closed loop (train/loop.py): export the rated set from the app's DuckDB "
                                   "file, train an adapter on it, evaluate it against its predecessor on held-out "
                                   "world questions, write the card with the battles and ratings it learned from, "
                                   "and register it in the app's adapters folder (a running app offers it on the "
                                   "next page load). The app must not hold the database: stop it, or use its "
                                   "admin button, which runs the same loop.")
    p.add_argument("--db", required=True, help="the app's DuckDB file")
    p.add_argument("--recipe", required=True, help="training recipe (name or YAML file); its data is trained on too")
    p.add_argument("--set", action="append", dest="overrides", default=[], metavar="KEY=VALUE",
                   help="override a recipe key (repeatable)")
    p.add_argument("--keep", choices=KEEP_MODES, default="rated_or_em",
                   help="which stored trajectories to train on (default: rated_or_em)")
    p.add_argument("--name", help="the adapter's folder name (default: loop-<time>)")
    p.add_argument("--adapters-dir", default=None, help="where adapters go (default: data/adapters, the app's)")
    p.add_argument("--predecessor", help="adapter to compare with (default: the newest earlier loop adapter, "
                                         "else the bundled default)")
    p.add_argument("--eval-questions", type=int, default=20, help="held-out world questions per adapter (0: skip)")
    p.add_argument("--eval-options", default="--max-steps 8", help="agent options for the comparison")
    p.add_argument("--push-to-hub", metavar="USER/NAME", help="also upload the adapter (tagged fireact)")
    p.set_defaults(func=run_loop_command)
    return p


def run_loop_command(args: argparse.Namespace) -> int:
    from fireact_core.store import Store
    from train.loop import ADAPTERS_DIR, LoopConfig, run_loop

    refuse_on_zero_gpu()
    cfg = LoopConfig(recipe=args.recipe, overrides=list(args.overrides), keep=args.keep, name=args.name,
                     adapters_dir=args.adapters_dir or ADAPTERS_DIR, predecessor=args.predecessor,
                     eval_questions=args.eval_questions, eval_options=args.eval_options,
                     push_to_hub=args.push_to_hub)
    store = Store.open(args.db)
    try:
        print(run_loop(store, cfg).format())
    finally:
        store.close()
    return 0
