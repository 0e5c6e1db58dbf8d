"""`fireact`: the command line. Each core subcommand is one module in `fireact_core.commands`
with `register(subparsers)`; heavy imports happen inside the command, not at start-up.

Other packages add commands without the core knowing them: an entry point in the
`fireact.commands` group names a `make_parser(subparsers)` function (TRL's pattern; the
trainer's commands live in `train/commands.py`). A plugin is imported
only when its command runs, or for `--help`, so `fireact run` imports none of them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Any

from fireact_core import __version__
from fireact_core.errors import FireActError

PLUGIN_GROUP = "fireact.commands"


# The extra (pyproject.toml) that installs what a plugin package's commands need.
PLUGIN_EXTRAS: dict[str, str] = {"train": "train", "space": "app", "worldgen": "all"}


def plugin_commands() -> dict[str, Any]:
    """The commands other packages register (name -> entry point), read from package metadata without importing them."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The parser with every core command and, of the plugins, `command`'s (`"*"`: all; None: none)."""
    parser = argparse.ArgumentParser(prog="fireact", description="FireAct: language agents fine-tuned on trajectories.")
    parser.add_argument("--version", action="version", version=f"fireact {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import fireact_core.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"fireact_core.commands.{info.name}")
        module.register(sub)
    for name, ep in sorted(plugin_commands().items()):
        if command == "*" or command == name:
            ep.load()(sub)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    plugins = plugin_commands()
    first = next((a for a in argv if not a.startswith("-")), None)
    core = {m.name for m in pkgutil.iter_modules(importlib.import_module("fireact_core.commands").__path__)}
    parser = build_parser(first if first in plugins else None if first in core else "*")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FireActError as e:
        print(f"fireact {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # a package of an extra this command needs (pyproject.toml)
        if (e.name or "").split(".")[0] in ("", "fireact_core", *PLUGIN_EXTRAS):
            raise
        ep = plugins.get(args.command)
        extra = PLUGIN_EXTRAS.get(ep.value.split(".")[0] if ep else "", "all")
        print(f"fireact {args.command}: error: the package {e.name!r} is not installed: "
              f"pip install 'fireact[{extra}]'", file=sys.stderr)
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
