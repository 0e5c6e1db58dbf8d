"""Format-constrained decoding: the ReAct turn grammar, and the scratchpad prompt format."""

from __future__ import annotations

import pytest

from fireact_core.agent import Agent
from fireact_core.backends.fake import FakeModel
from fireact_core.backends.grammar import BAD, DONE, OK, ActionGrammar
from fireact_core.errors import ConfigError
from fireact_core.spec import AgentConfig, AgentSpec
from fireact_core.tools.base import Toolbox

G = ActionGrammar.for_tools(["search", "lookup"])


@pytest.mark.parametrize("text, want", [
    ("", OK), ("Tho", OK), ("Thought:", OK), ("Thought: I need the architect", OK),
    ("Thought: x\n", OK), ("Thought: x\nAct", OK), ("Thought: x\nAction: se", OK), ("Thought: x\nAction: finish[", OK),
    ("Thought: x\nAction: search[Velmora Li", OK), ("Thought: x\nAction: search[Velmora Library]", DONE),
    ("Thought: x\nAction: finish[1978] and more", DONE),
    ("Answer: 12", BAD), ("Thought: x\nObservation:", BAD), ("Thought: x\nAction: google[", BAD),
    ("Thought: x\nAction: search[a\nb]", BAD), ("Thought: x\n\nAction:", BAD), (" Thought:", BAD),
])
def test_the_grammar_accepts_exactly_one_thought_line_and_one_action(text, want):
    assert G.check(text) == want


def test_prefix_cut_and_forced_continuations():
    g = ActionGrammar.for_tools(["search"], prefix="Thought: I know it\nAction:")
    assert g.check(" finish[Tessary]") == DONE and g.check(" lookup[") == BAD  # lookup is not a tool here
    assert g.cut(" finish[Tessary] trailing") == " finish[Tessary]"
    assert G.cut("Thought: a]b\nAction: search[q] x") == "Thought: a]b\nAction: search[q]"
    assert G.forced("") == "Thought:" and G.forced("Thought: x") == "\nAction: "
    assert G.forced("Thought: x\nAction: f") == "inish[" and G.forced("Thought: x\nAction: search[q") == "]"
    for generated in ("", "Thought: x", "Thought: x\nAction: f", "Thought: x\nAction: search[q"):
        assert G.check(generated + G.forced(generated)) in (OK, DONE)


def encyclopedia(query: str) -> str:
    """Look something up."""
    return f"Article about {query}."


def test_scratchpad_keeps_the_trial_in_one_growing_assistant_turn():
    model = FakeModel([" I should search.\nAction: search[Velmora Library]", " Found it.\nAction: finish[Idris Kallum]"])
    spec = AgentSpec(model="fake", method="react", prompt_format="scratchpad")
    t = Agent(model, Toolbox({"search": encyclopedia}), spec).solve("Who designed the Velmora Library?", gold="Idris Kallum")
    assert t.em == 1.0 and [s.action for s in t.steps] == ["search", "finish"]
    assert t.steps[0].thought == "I should search." and t.steps[1].thought == "Found it."
    first, second = model.calls
    assert first[-1] == {"role": "assistant", "content": "Thought:"}
    assert [m["role"] for m in second] == ["user", "assistant"]  # no Observation user turn
    assert second[-1]["content"] == ("Thought: I should search.\nAction: search[Velmora Library]\n"
                                     "Observation: Article about Velmora Library.\nThought:")
    assert t.agent.prompt_format == "scratchpad" and "scratchpad" in t.agent.key
    assert AgentSpec.from_dict(t.agent.to_dict()).prompt_format == "scratchpad"


def test_fine_tuned_agents_ignore_the_scratchpad_and_bad_formats_are_refused():
    model = FakeModel(["Thought: x\nAction: finish[y]"])
    Agent(model, None, AgentConfig(finetuned=True, prompt_format="scratchpad")).solve("q?")
    assert model.calls[0] == [{"role": "user", "content": "q?"}]
    with pytest.raises(ConfigError, match="prompt format"):
        AgentConfig(prompt_format="xml")


def test_constrained_decoding_is_refused_for_a_model_that_cannot_do_it():
    with pytest.raises(ConfigError, match="constrained decoding needs a local model"):
        Agent(FakeModel([]), None, AgentConfig(constrained=True)).solve("q?")
    assert "constrained" in AgentSpec(model="smollm2", constrained=True).key
    assert "constrained" not in AgentSpec(model="smollm2").key


def test_a_reply_that_repeats_the_scratchpads_thought_key_is_read_once():
    """Chat APIs answer a final assistant turn with a fresh reply, often opening with its own `Thought:`."""
    model = FakeModel(["Thought: I know it.\nAction: finish[Idris Kallum]"])
    t = Agent(model, None, AgentConfig(method="react", prompt_format="scratchpad")).solve("Who?", gold="Idris Kallum")
    assert t.steps[0].thought == "I know it." and t.em == 1.0


def test_the_record_counts_the_exemplars_the_prompt_really_holds():
    asked = AgentSpec(model="fake", method="react", exemplars=6)  # the default set has 2 ReAct exemplars
    t = Agent(FakeModel([]), None, asked).solve("q?")
    assert t.agent.exemplars == 2 and "react 2-shot" in t.agent.key
    world = Agent(FakeModel([]), None, AgentSpec(model="fake", method="react", exemplars=6, prompts="world")).solve("q?")
    assert world.agent.exemplars == 6
