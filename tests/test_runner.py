"""The battle runner: both sides of a battle run at once, also when both are the local model."""

from __future__ import annotations

import time

from fireact_core.spec import AgentSpec
from fireact_core.tools.noisy import NoiseConfig
from space.config import AppConfig
from space.fakes import fake_loader, fake_tools
from space.render import SideView
from space.runner import Battle, ModelPool, run_battle


def _spans(limits: dict[str, int]) -> list[tuple[float, float]]:
    """(first seen running, ended) of each side, both sides on the local model (a slow scripted stand-in)."""
    pool = ModelPool(lambda model, adapter: fake_loader("fake:slow", adapter), limits)
    specs = [AgentSpec(role="prompted", model="smollm2", method="react", exemplars=2),
             AgentSpec(role="finetuned", model="smollm2", adapter="data/adapters/default", method="react", exemplars=0, finetuned=True)]
    views = [SideView("Agent A"), SideView("Agent B")]
    battle = Battle("What is the capital of France?", gold="Paris", noise=NoiseConfig("off", 0.0, 0))
    t0 = time.perf_counter()
    started: dict[int, float] = {}
    ended: dict[int, float] = {}
    for vs in run_battle(battle, specs, views, pool=pool, make_tools=fake_tools, tick_s=0.02):
        now = time.perf_counter() - t0
        for i, v in enumerate(vs):
            if v.status == "running":
                started.setdefault(i, now)
            elif v.status not in ("queued", "running"):
                ended.setdefault(i, now)
    assert [v.status for v in views] == ["done", "done"], [v.message for v in views]
    return [(started[i], ended[i]) for i in range(2)]


def test_the_two_local_sides_of_a_battle_run_at_once():
    (a0, a1), (b0, b1) = _spans(AppConfig().model_limits)
    assert a0 < b1 and b0 < a1, f"side A ran {a0:.2f}-{a1:.2f} s, side B {b0:.2f}-{b1:.2f} s: one waited for the other"


def test_a_limit_of_one_local_slot_would_make_them_take_turns():
    (_, a1), (b0, _) = sorted(_spans({"local": 1}))
    assert b0 >= a1 - 0.05, "with one slot the second side starts when the first has ended"
