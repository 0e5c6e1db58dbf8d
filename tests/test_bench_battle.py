"""bench/battle.py times the battle a fresh arena page runs: its sides are the page's default values."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fireact_core.models import DEFAULT_ADAPTER
from space.config import AppConfig
from space.defaults import DefaultSources
from space.sides import side_specs

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_battle", ROOT / "bench" / "battle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _page_defaults(demo) -> dict[str, object]:
    """The arena form's default values, by label, as the page is served."""
    return {c["props"].get("label"): c["props"].get("value") for c in demo.config["components"]
            if c.get("props", {}).get("label")}


def test_the_bench_runs_the_sides_and_settings_of_a_fresh_arena_page(tmp_path):
    from app import create_app

    cfg = AppConfig(db_path=tmp_path / "app.duckdb", hub_choices=lambda: [], more_questions=None,
                    defaults=DefaultSources(str(DEFAULT_ADAPTER), probe=lambda: False))
    demo = create_app(cfg)
    try:
        page = _page_defaults(demo)
        prompted, tuned, _ = side_specs(page["Model"], page["Method"], page["Few-shot exemplars"],
                                        page["Adapter or fine-tuned model"], page["Prompting"])
        on_page = [cfg.defaults.resolve(prompted).key, cfg.defaults.resolve(tuned).key]
        benched = [s.key for s in _bench().default_specs(cfg)]
    finally:
        demo.fireact_runtime.store.close()
    assert benched == on_page
    assert "smollm2" in on_page[0] and tuned.adapter == str(DEFAULT_ADAPTER)
