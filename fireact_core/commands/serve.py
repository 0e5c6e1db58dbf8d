"""`fireact serve`: serve a model and its adapters over an OpenAI-compatible HTTP API."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from fireact_core.errors import ConfigError


def _adapter(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {value!r}")
    return name.strip(), path.strip()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible API (local use)",
                       description="A small OpenAI-compatible server (/v1/models, /v1/chat/completions with "
                                   "streaming) over a model and its adapters, one model name per adapter. "
                                   "For local use: no authentication.")
    p.add_argument("--model", default="smollm2", help="model spec (default: smollm2; e.g. local:<path>, fake)")
    p.add_argument("--name", default=None, help="the name the base model is served under (default: the spec)")
    p.add_argument("--adapter", action="append", type=_adapter, default=[], metavar="NAME=PATH",
                   help="also serve the model with this adapter as NAME (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--quiet", action="store_true", help="no access log")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fireact_core.serve import load_served_models, make_server

    names = [n for n, _ in args.adapter]
    if len(set(names)) != len(names) or (args.name or args.model) in names:
        raise ConfigError("each --adapter needs its own NAME, different from the base model's name")
    models = load_served_models(args.model, dict(args.adapter), name=args.name)
    try:
        server = make_server(models, args.host, args.port, quiet=args.quiet)
    except OSError as e:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"fireact serve: warning: listening on {args.host} without authentication; "
              "anyone who can reach it can use the model", file=sys.stderr)
    # The URL line is what scripts (and the tests) wait for.
    served = ", ".join(n + (f" ({e})" if (e := server.served.engine(n)) else "") for n in models)
    print(f"fireact serve: listening on {server.url} serving {served}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
