"""The arena's prompted agents are real agents: SmolLM2 prompted in a scratchpad with constrained
decoding searches, where the plain chat format made it guess in one step; the arena's default (each
question's nearest teacher exemplars, extractive decoding) searches too and writes only valid actions.

Floors measured on the first dev questions with the committed prompts (see MEASURED), with
one trajectory of slack for numerical differences across CPUs. docs/results.md has the full runs.
"""

from __future__ import annotations

from fireact_core.agent import Agent
from fireact_core.factory import load_model, load_tools
from fireact_core.spec import AgentSpec
from fireact_core.tasks import load_task

HANDFUL = 6
MEASURED = {"searched": 6, "valid": 6}  # of HANDFUL, measured on this commit
DEFAULT_HANDFUL = 10
DEFAULT_MEASURED = {"searched": 8, "valid": 10}  # of DEFAULT_HANDFUL, measured on this commit


def _run(spec: AgentSpec, n: int) -> tuple[int, int]:
    model = load_model("smollm2")
    searched = valid = 0
    for ex in list(load_task("world", "dev"))[:n]:
        traj = Agent(model, load_tools("corpus"), spec).solve(ex.question, gold=ex.answer, task="world")
        searched += any(s.action == "search" for s in traj.steps)
        valid += all(not s.observation.startswith("Invalid action") for s in traj.steps)
    print(f"searched {searched}, all actions valid {valid} of {n}")
    return searched, valid


def test_prompted_smollm2_searches_and_writes_valid_actions_when_constrained():
    spec = AgentSpec(model="smollm2", method="react", prompt_format="scratchpad", constrained=True, max_steps=4)
    searched, valid = _run(spec, HANDFUL)
    assert searched >= MEASURED["searched"] - 1 and valid >= MEASURED["valid"] - 1, (searched, valid)


def test_the_arenas_default_prompting_searches_with_each_questions_nearest_exemplars():
    from space.choices import parse_prompting

    setup = parse_prompting(None)
    assert setup.prompts == "nearest" and setup.extractive
    spec = AgentSpec(model="smollm2", method="react", exemplars=2, max_steps=4, **setup.spec_fields())
    searched, valid = _run(spec, DEFAULT_HANDFUL)
    assert searched >= DEFAULT_MEASURED["searched"] - 1 and valid >= DEFAULT_MEASURED["valid"] - 1, (searched, valid)
