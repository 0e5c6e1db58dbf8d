"""The arena's default prompted agent is a real agent: SmolLM2 prompted in a scratchpad with
constrained decoding searches, where the plain chat format made it guess in one step.

Floors measured on the first HANDFUL dev questions with the committed prompts (see MEASURED), with
one trajectory of slack for numerical differences across CPUs. docs/results.md has the full run.
"""

from __future__ import annotations

from fireact_core.agent import Agent
from fireact_core.factory import load_model, load_tools
from fireact_core.spec import AgentSpec
from fireact_core.tasks import load_task

HANDFUL = 6
MEASURED = {"searched": 6, "valid": 6}  # of HANDFUL, measured on this commit


def test_prompted_smollm2_searches_and_writes_valid_actions_when_constrained():
    model = load_model("smollm2")
    spec = AgentSpec(model="smollm2", method="react", prompt_format="scratchpad", constrained=True, max_steps=4)
    searched = valid = 0
    for ex in list(load_task("world", "dev"))[:HANDFUL]:
        traj = Agent(model, load_tools("corpus"), spec).solve(ex.question, gold=ex.answer, task="world")
        searched += any(s.action == "search" for s in traj.steps)
        valid += all(not s.observation.startswith("Invalid action") for s in traj.steps)
    print(f"searched {searched}, all actions valid {valid} of {HANDFUL}")
    assert searched >= MEASURED["searched"] - 1 and valid >= MEASURED["valid"] - 1, (searched, valid)
