"""`fireact`: the command line. Each subcommand is one module in `fireact_core.commands`
with `register(subparsers)`; heavy imports happen inside the command, not at start-up."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from fireact_core import __version__
from fireact_core.errors import FireActError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fireact", description="FireAct: language agents fine-tuned on trajectories.")
    parser.add_argument("--version", action="version", version=f"fireact {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import fireact_core.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"fireact_core.commands.{info.name}")
        module.register(sub)
    return parser


def _quiet_libraries() -> None:
    """Library chatter that is not the user's business: bitsandbytes announcing a CPU kernel it
    could not fetch (we never need it to run an agent), and deprecation notices."""
    import logging
    import warnings

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FireActError as e:
        print(f"fireact {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fireact convert ... | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
