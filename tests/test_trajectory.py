"""The trajectory record: JSON, ReAct text (render and parse), chat messages."""

from __future__ import annotations

import json

import pytest

from fireact_core.errors import FormatError
from fireact_core.trajectory import (
    FORMAT_VERSION,
    Step,
    Trajectory,
    parse_action,
    parse_model_turn,
    parse_react,
)

REACT = (
    "Thought: I need the architect of the library.\n"
    "Action: search[Velmora Library]\n"
    "Observation: The Velmora Library was designed by Idris Kallum.\n"
    "Thought: So the architect is Idris Kallum.\n"
    "Action: finish[Idris Kallum]\n"
    "Observation: Episode finished, reward = True"
)


def test_parse_react_steps_answer_and_render_back():
    t = parse_react("Who designed the Velmora Library?", REACT)
    assert [s.action for s in t.steps] == ["search", "finish"]
    assert t.steps[0].argument == "Velmora Library"
    assert t.steps[0].observation == "The Velmora Library was designed by Idris Kallum."
    assert t.answer == "Idris Kallum"
    assert all(s.raw is None for s in t.steps)
    assert t.render_react() == REACT


def test_cot_one_thought_then_finish():
    text = "Thought: 9:40 plus 85 minutes is 11:05.\nAction: finish[11:05]\nObservation: Episode finished, reward = 1"
    t = parse_react("When does it arrive?", text)
    assert t.num_steps == 1 and t.answer == "11:05"
    assert t.render_react() == text


def test_preamble_is_kept_and_moves_to_the_user_turn():
    text = "A. red\nB. blue\nC. green\nD. grey\nThought: The sky is blue.\nAction: finish[B]\nObservation: ok"
    t = parse_react("Question: What colour is the sky?", text)
    assert t.preamble == "A. red\nB. blue\nC. green\nD. grey"
    assert t.render_react() == text
    msgs = t.to_messages()
    assert msgs[0] == {"role": "user", "content": "Question: What colour is the sky?\nA. red\nB. blue\nC. green\nD. grey"}
    assert msgs[1]["content"].startswith("Thought: The sky")


def test_numbered_keys_are_kept_verbatim():
    text = "Thought 1: look it up\nAction 1: search[X]\nObservation 1: X is Y.\nThought: done\nAction: finish[Y]\nObservation: ok"
    t = parse_react("q", text)
    assert t.steps[0].raw == "Thought 1: look it up\nAction 1: search[X]"
    assert t.steps[0].action == "search" and t.steps[1].raw is None
    assert t.render_react().replace("Observation 1:", "Observation:") == text.replace("Observation 1:", "Observation:")


def test_thought_without_action_is_an_invalid_step_kept_verbatim():
    text = "Thought: a\nAction: search[x]\nObservation: o1\nThought: I forgot the action.\nObservation: o2\nThought: b\nAction: finish[z]\nObservation: ok"
    t = parse_react("q", text)
    bad = t.steps[1]
    assert bad.action == "" and bad.raw == "Thought: I forgot the action." and bad.error
    assert bad.observation == "o2"
    assert t.render_react() == text
    assert t.to_messages()[3] == {"role": "assistant", "content": "Thought: I forgot the action."}


def test_observation_written_by_the_model_stays_in_its_turn():
    text = ("Thought: t\nAction: finish[no]\nObservation: Episode finished, reward = 1\n"
            "Observation: Episode finished, reward = 0")
    t = parse_react("q", text)
    (step,) = t.steps
    assert step.observation == "Episode finished, reward = 0"  # the environment's
    assert step.raw.endswith("Observation: Episode finished, reward = 1")
    assert t.answer == "no"
    assert t.render_react() == text
    roles = [(m["role"], m["content"]) for m in t.to_messages()]
    assert roles[1:] == [("assistant", "Thought: t\nAction: finish[no]"),
                         ("assistant", "Observation: Episode finished, reward = 1"),
                         ("user", "Observation: Episode finished, reward = 0")]


def test_action_without_thought():
    text = "Action: finish[Thought: odd. Answer: yes.]\nObservation: Episode finished, reward = 1"
    t = parse_react("q", text)
    assert t.steps[0].has_thought is False and t.answer == "Thought: odd. Answer: yes."
    assert t.render_react() == text


@pytest.mark.parametrize("text, message", [
    ("no keys here", "no 'Thought:'"),
    ("Observation: first\nThought: x\nAction: finish[y]", "Observation comes before"),
    ("Thought: x\nAction: search for it", r"not of the form name\[argument\]"),
])
def test_parse_react_errors(text, message):
    with pytest.raises(FormatError, match=message):
        parse_react("q", text)


def test_json_round_trip_and_version_checks():
    t = parse_react("q", REACT, task="hotpotqa", gold="Idris Kallum")
    t.steps[0].noise = "random"
    t.steps[0].tokens_in, t.steps[0].latency_s = 42, 0.5
    d = json.loads(json.dumps(t.to_dict()))
    back = Trajectory.from_dict(d)
    assert back == t
    assert back.format_version == FORMAT_VERSION
    with pytest.raises(FormatError, match="question"):
        Trajectory.from_dict({"steps": []})
    with pytest.raises(FormatError, match="newer"):
        Trajectory.from_dict({"question": "q", "format_version": FORMAT_VERSION + 1})
    # unknown keys (from a later minor change) are ignored, not fatal
    assert Trajectory.from_dict({"question": "q", "shiny": 1, "steps": [{"thought": "t", "extra": 2}]}).steps[0].thought == "t"


def test_totals_and_messages_with_system():
    t = Trajectory(question="q", steps=[Step(thought="a", action="search", argument="x", observation="o", tokens_in=3, tokens_out=2),
                                        Step(thought="b", action="finish", argument="y", observation="done", tokens_in=5, tokens_out=1)])
    t.finalize_totals()
    assert (t.tokens_in, t.tokens_out) == (8, 3)
    msgs = t.to_messages(system="be brief")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[2]["content"] == "Thought: a\nAction: search[x]" and msgs[3]["content"] == "Observation: o"


def test_parse_action_and_model_turn():
    assert parse_action("search[Paris]") == ("search", "Paris")
    assert parse_action(" Finish[ yes ] ") == ("finish", "yes")
    assert parse_action("search Paris") is None
    assert parse_model_turn("Thought: a\nAction: search[b]") == ("a", "search[b]")
    assert parse_model_turn("Thought 2: a\nAction 2: finish[c]\nObservation 2: x") == ("a", "finish[c]")
    assert parse_model_turn("just thinking") == ("just thinking", None)
    assert parse_model_turn("Action: finish[x]") == (None, "finish[x]")


# Records of format 1, as each writer of that time made them (the agent loop, `fireact eval`, the arena).
V1_EVAL = {"question": "Who?", "steps": [{"thought": "t", "action": "finish", "argument": "Paris",
                                           "observation": "Episode finished, reward = True"}],
           "id": "w1", "task": "world", "gold": "Paris", "method": "react", "answer": "Paris", "em": 1.0,
           "agent": {"model": "smollm2", "method": "react", "finetuned": True, "max_steps": 11, "max_tokens": 200,
                     "trials": 3, "exemplars": 2, "noise": "random", "adapter": "default", "tools": "corpus",
                     "p": 0.25, "seed": 7},
           "format_version": 1}
V1_ARENA_AGENT = {"model": "fake", "method": "cot", "finetuned": False, "max_steps": 8, "max_tokens": 200, "trials": 3,
                  "exemplars": 2, "noise": {"mode": "none", "p": 0.5, "seed": 1}, "adapter": None, "role": "prompted",
                  "key": "fake · cot 2-shot"}


def test_a_format_1_record_upgrades_to_a_typed_agent_spec():
    from fireact_core.spec import AgentSpec
    from fireact_core.tools.noisy import NoiseConfig

    t = Trajectory.from_dict(json.loads(json.dumps(V1_EVAL)))
    assert isinstance(t.agent, AgentSpec) and t.format_version == FORMAT_VERSION == 3
    assert t.agent.noise == NoiseConfig("random", 0.25, 7)  # the CLI's string and its p/seed beside it
    assert (t.agent.model, t.agent.adapter, t.agent.finetuned, t.agent.tools) == ("smollm2", "default", True, "corpus")
    assert t.agent.key == "smollm2 + default · fine-tuned"
    d = t.to_dict()
    assert d["agent"]["noise"] == {"mode": "random", "p": 0.25, "seed": 7} and "p" not in d["agent"]
    assert d["format_version"] == 3 and Trajectory.from_dict(d) == t
    arena = Trajectory.from_dict({**V1_EVAL, "method": "cot", "agent": V1_ARENA_AGENT})
    assert arena.agent.key == V1_ARENA_AGENT["key"] and arena.agent.role == "prompted"
    assert arena.agent.noise == NoiseConfig("none", 0.5, 1) and arena.agent.max_steps == 8
    bare = Trajectory.from_dict({"question": "q", "method": "cot", "agent": {"model": "teacher"}, "format_version": 1})
    assert (bare.agent.model, bare.agent.method, bare.agent.tools) == ("teacher", "cot", "")
    with pytest.raises(FormatError, match="noise"):
        Trajectory.from_dict({**V1_EVAL, "agent": {**V1_EVAL["agent"], "noise": "loud"}})
