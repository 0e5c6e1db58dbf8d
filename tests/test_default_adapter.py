"""The committed default adapter: its folder, its card, and floors on a fixed handful of dev questions.

The floors were measured, not guessed. The adapter as committed (stage 1: 1,302 world
trajectories, two epochs; stage 2: one more epoch with every 3-hop bridge trajectory, 70% of the
2-hop ones and a third of the rest; docs/results.md), on the first HANDFUL dev questions,
greedy: solved 5 (three 2-hop bridges and both arithmetic questions),
searched on 6 (every non-arithmetic question), finished 8, and wrote a valid action at every
step. The floors below are those numbers with one trajectory of slack on each count, for
numerical differences across CPUs (its decode runs on a quantised copy of the base).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fireact_core.agent import Agent, AgentConfig
from fireact_core.factory import load_model, load_tools
from fireact_core.tasks import load_task

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = ROOT / "data" / "adapters" / "default"
HANDFUL = 8  # the first dev questions of the shipped world
FLOOR_SOLVED = 4
FLOOR_SEARCHED = 5
FLOOR_FINISHED = 7


def test_adapter_folder_card_and_manifest():
    assert (ADAPTER / "adapter_config.json").is_file(), "the default adapter is missing"
    size = sum(f.stat().st_size for f in ADAPTER.rglob("*") if f.is_file())
    assert size < 20 * 2**20, f"the adapter folder is {size / 2**20:.1f} MB; keep it under 20 MB"
    cfg = json.loads((ADAPTER / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    card = (ADAPTER / "README.md").read_text()
    assert card.startswith("---") and "library_name: peft" in card and "fireact" in card
    manifest = json.loads((ADAPTER / "fireact.json").read_text())
    assert manifest["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    # two stages: the recipe that made it, and the stage-1 adapter it continued
    assert manifest["training"]["recipe"] == "smollm2-135m-world-3hop"
    assert manifest["training"]["continued_from"]["recipe"] == "smollm2-135m-world"


def test_default_adapter_solves_a_handful_of_dev_questions():
    model = load_model("smollm2", adapter="default")
    examples = list(load_task("world", "dev"))[:HANDFUL]
    solved, searched, finished = [], [], []
    for ex in examples:
        agent = Agent(model, load_tools("corpus"), AgentConfig(finetuned=True))
        traj = agent.solve(ex.question, gold=ex.answer, task="world")
        assert traj.status in ("finished", "step_limit"), (traj.status, traj.reason)
        assert all(s.error is None for s in traj.steps), [s.error for s in traj.steps]
        solved.append(bool(traj.em))
        searched.append(any(s.action == "search" for s in traj.steps))
        finished.append(traj.status == "finished")
    assert sum(solved) >= FLOOR_SOLVED, f"solved {sum(solved)}/{HANDFUL}: {solved}"
    assert sum(searched) >= FLOOR_SEARCHED, f"searched in {sum(searched)}/{HANDFUL}"
    assert sum(finished) >= FLOOR_FINISHED, f"finished {sum(finished)}/{HANDFUL}"


# Measured on 2 shared cores (load average 4-6, one torch thread): the first 4 of these dev
# questions took 352 s after a 28 s load, 28 s on the fine-tuned side and 324 s on the prompted
# one, which ran one question to its step limit (11 steps, 306 s) and wrote a one-step answer to
# the rest. Scaled to 20 + 20 questions that is about 1,800 s; the limit is twice that.
SLOW_DEV_LIMIT_S = 3600


@pytest.mark.slow
@pytest.mark.timeout(SLOW_DEV_LIMIT_S)
def test_default_adapter_beats_the_prompted_base_on_dev():
    examples = list(load_task("world", "dev"))[:20]
    model = load_model("smollm2", adapter="default")
    base = load_model("smollm2")
    ft = sum(bool(Agent(model, load_tools("corpus"), AgentConfig(finetuned=True)).solve(
        e.question, gold=e.answer, task="world").em) for e in examples)
    pr = sum(bool(Agent(base, load_tools("corpus"), AgentConfig(method="react")).solve(
        e.question, gold=e.answer, task="world").em) for e in examples)
    assert ft > pr
