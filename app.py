"""FireAct Arena: prompted vs fine-tuned agents side by side, crowd ratings, a leaderboard.

    python app.py                # the embedded default: SmolLM2, the offline world, the bundled adapter
    python app.py --fake         # scripted fake models (no weights): a UI demo, the browser tests, bench/app.py

`create_app(config)` builds the Blocks without launching them: one module per tab under
`space/` (arena, annotate, leaderboard), each built as its own Blocks and `.render()`ed here.
On a Hugging Face Space (SPACE_ID set) the app listens on 0.0.0.0, shows the HF login
button (README front matter: `hf_oauth: true`) and defaults to blind mode. The live database stays on
local disk (FIREACT_DB, or the cache folder); durable copies go to a mounted storage bucket and the
FIREACT_HUB_DATASET dataset, and an empty disk is restored from the newest of them at start
(`fireact_core/store/durable.py`). While the Hub answers, the
default base and adapter load from it (`space/defaults.py`); otherwise from the bundled files.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio's queue rebuilds its monitoring summary (a pandas DataFrame over the last 10,000 events)
# after every event by default; once every 1,000 events keeps that off the vote's path.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")

import gradio as gr

from fireact_core.errors import FireActError
from fireact_core.models import cache_root
from fireact_core.store import redact
from fireact_core.store.backups import Durability
from space import annotate, arena, leaderboard
from space.config import AppConfig
from space.runtime import Runtime

log = logging.getLogger("fireact.app")
HEADER = """# 🔥 FireAct Arena
Prompted vs fine-tuned language agents, step by step, with a noisy search tool one click away
([FireAct, Chen et al. 2023](https://arxiv.org/abs/2310.05915))."""


class RedactSecrets(logging.Filter):
    """Scrub environment secrets (API keys, tokens) from log records, tracebacks included."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def create_app(config: AppConfig | None = None) -> gr.Blocks:
    """The app's Blocks (not launched). Raises `StoreLockedError` if another process holds the database."""
    cfg = config or AppConfig.from_env()
    rt = Runtime(cfg)
    # Tabs are built as separate Blocks first, then rendered into the page's tabs.
    arena_tab = arena.build(rt)
    annotate_tab = annotate.build(rt)
    board = leaderboard.build(rt)
    with gr.Blocks(title=cfg.title, analytics_enabled=False) as demo:
        with gr.Row():
            gr.Markdown(HEADER)
            if cfg.space:  # LoginButton needs the Space's OAuth setup; elsewhere it fails to build
                gr.LoginButton(scale=0, min_width=220)
        db_warning = cfg.db_location()[1]
        if db_warning:
            gr.Markdown(f"⚠️ {db_warning}", elem_id="fa-db-warning")
        if cfg.start_state and cfg.start_state.notes:  # restored from a durable copy, or why copies are held
            gr.Markdown("\n\n".join(cfg.start_state.notes), elem_id="fa-db-durable")
        with gr.Tabs():
            with gr.Tab("Arena", id="arena"):
                arena_tab.blocks.render()
            with gr.Tab("Annotate", id="annotate"):
                annotate_tab.blocks.render()
            with gr.Tab("Leaderboard", id="leaderboard") as board_tab:
                board.blocks.render()
        board_tab.select(board.refresh, None, board.outputs, api_visibility="private")
        demo.load(None, None, None, js="() => {" + annotate.KEYS_JS + "}")  # keyboard shortcuts, every tab
    demo.queue(default_concurrency_limit=8)
    demo.fireact_runtime = rt  # tests and benchmarks read the store through it
    return demo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="FireAct Arena")
    p.add_argument("--fake", action="store_true", help="scripted fake models and search (no weights)")
    p.add_argument("--db", help="DuckDB file (default: $FIREACT_DB or ~/.cache/fireact/app.duckdb)")
    p.add_argument("--host", default=None, help="default 127.0.0.1; 0.0.0.0 on a Space")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--blind", action=argparse.BooleanOptionalAction, default=None, help="blind mode by default")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets())
    if args.fake:
        from space.fakes import fake_config

        db = args.db or os.environ.get("FIREACT_DB") or str(cache_root() / "fake-app.duckdb")
        cfg = fake_config(db, blind_default=args.blind)
    else:
        cfg = AppConfig.from_env()
        if args.db:
            cfg.db_path = args.db
        cfg.blind_default = args.blind
    host = args.host or ("0.0.0.0" if cfg.space else "127.0.0.1")
    cfg.loopback = host in ("127.0.0.1", "localhost", "::1")
    try:
        demo = create_app(cfg)
    except FireActError as e:
        print(f"fireact app: {e}", file=sys.stderr)
        return 2
    rt: Runtime = demo.fireact_runtime
    targets = cfg.durable_targets()
    durable = Durability(rt.store, targets, cfg.start_state).start() if targets.any else None
    if durable:
        log.info("durable copies of %s: %s", rt.store.path, ", ".join(
            f"{name} every {every:g} s" for name, every in durable.targets_on()))
    # A Space stops a container with SIGTERM: end the server as Ctrl-C would, so the last copies are written.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo.launch(server_name=host, server_port=args.port, show_error=False, max_threads=100)
    finally:
        if durable:
            durable.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
