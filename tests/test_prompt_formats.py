"""Prompt formats: one renderer for the agent's prompts and the trainer's examples (fireact_core.prompt_formats).

`tests/golden/chat_prompts.json` holds the prompts the agent sent and the training chats the trainer made
before the renderer existed (captured from the code of commit 822fefa): the `chat` and `scratchpad`
formats must stay byte for byte what the bundled bases were trained on and given.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from fireact_core import prompt_formats as pf
from fireact_core.agent import Agent
from fireact_core.backends.fake import FakeModel
from fireact_core.errors import ConfigError
from fireact_core.formats import read_trajectories
from fireact_core.spec import AgentConfig, AgentSpec
from fireact_core.tools.base import Toolbox
from fireact_core.training_rule import TrainingRule
from fireact_core.trajectory import Step, Trajectory

GOLDEN = json.loads((Path(__file__).parent / "golden" / "chat_prompts.json").read_text(encoding="utf-8"))
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = [" I should search.\nAction: search[Velmora Library]", "Thought: bad turn with no action",
          " Found it.\nAction: finish[Idris Kallum]"]
CASES = {
    "prompted-chat": dict(prompt_format="chat"),
    "prompted-scratchpad": dict(prompt_format="scratchpad"),
    "prompted-scratchpad-cot": dict(prompt_format="scratchpad", method="cot"),
    "finetuned-chat": dict(finetuned=True, adapter="x"),
    "reflexion-chat": dict(method="reflexion", trials=2),
}


def encyclopedia(query: str) -> str:
    """Look something up."""
    return f"Article about {query}."


@pytest.mark.parametrize("name", list(CASES))
def test_the_agents_chat_and_scratchpad_prompts_are_byte_for_byte_what_they_were(name):
    model = FakeModel(list(SCRIPT) * 3)
    spec = AgentSpec(model="fake", **CASES[name])
    Agent(model, Toolbox({"search": encyclopedia}), spec).solve("Who designed the Velmora Library?", gold="Nobody")
    assert model.calls == GOLDEN["agent"][name]


def test_the_trainers_chat_examples_are_byte_for_byte_what_they_were():
    rule = TrainingRule()
    by_id = {t.id: t for t in itertools.islice(read_trajectories(ROOT / "data/world/trajectories/train.jsonl"), 400)}
    assert len(GOLDEN["training"]) == 6
    for want in GOLDEN["training"]:
        traj = by_id[want["id"]]
        assert rule.messages(traj) == want["messages"]
        assert rule.example(traj, "chat") == want["messages"]


def test_alpaca_is_the_papers_text_and_the_steps_run_inline():
    head = ("Below is an instruction that describes a task. Write a response that appropriately completes the request."
            "\n\n### Instruction:\nWho?\n\n### Response:\n")
    assert pf.prompt("alpaca", "Who?", [], "Thought:") == [{"role": "text", "content": head + "Thought:"}]
    turns = [("Thought: a\nAction: search[x]", "found x")]
    assert pf.prompt("alpaca", "Who?", turns, "Thought:")[0]["content"] == \
        head + "Thought: a\nAction: search[x]\nObservation: found x\nThought:"
    assert pf.prompt("text", "P\nWho?\n", turns, "Thought:")[0]["content"] == \
        "P\nWho?\nThought: a\nAction: search[x]\nObservation: found x\nThought:"
    assert pf.as_chat(pf.prompt("text", "P\n", [], "Thought:")) == [{"role": "user", "content": "P\nThought:"}]
    with pytest.raises(ConfigError, match="prompt format"):
        pf.prompt("xml", "q", [])


def test_an_alpaca_training_example_is_the_inference_text_with_the_agents_tokens_marked():
    traj = Trajectory(question="Who?", steps=[
        Step(thought="a", action="search", argument="x", observation="found x"),
        Step(thought="b", action="finish", argument="X", observation="Episode finished, reward = True")])
    segs = TrainingRule().example(traj, "alpaca")
    text = "".join(s.text for s in segs)
    inference = pf.prompt("alpaca", "Who?", [("Thought: a\nAction: search[x]", "found x")], "")[0]["content"]
    assert text == inference + "Thought: b\nAction: finish[X]\n"  # the closing observation is never trained on
    assert [s.text for s in segs if s.agent] == ["Thought: a\nAction: search[x]\nObservation:",
                                                 "Thought: b\nAction: finish[X]\n"]
    with pytest.raises(ConfigError, match="for prompting"):
        TrainingRule().example(traj, "scratchpad")


def test_auto_resolves_to_chat_and_a_fine_tuned_agent_runs_scratchpad_as_chat():
    assert AgentSpec(model="fake").prompt_format == "chat"
    model = FakeModel(["Thought: x\nAction: finish[y]"])
    t = Agent(model, None, AgentConfig(finetuned=True, prompt_format="scratchpad")).solve("q?")
    assert model.calls[0] == [{"role": "user", "content": "q?"}] and t.agent.prompt_format == "chat"
    old = AgentSpec.from_dict({"model": "smollm2", "adapter": "a", "finetuned": True})
    assert old.prompt_format == "chat" and old.key == "smollm2 + a · fine-tuned"
    assert AgentSpec(model="local:x", adapter="a", finetuned=True, prompt_format="alpaca").key.endswith("· alpaca")


def test_migration_6_gives_stored_fine_tuned_runs_the_chat_format_they_ran_in(tmp_path):
    from fireact_core.store import MIGRATIONS, Store

    path = tmp_path / "v4.duckdb"
    s = Store(path, migrations=[m for m in MIGRATIONS if m[0] <= 4])
    ft = Trajectory(question="q1?", agent=AgentSpec(model="smollm2", adapter="a", finetuned=True,
                                                    prompt_format="scratchpad"))
    pr = Trajectory(question="q2?", agent=AgentSpec(model="smollm2", prompt_format="scratchpad"))
    for t in (ft, pr):
        s.save_run(t, source="arena")
    s.close()
    s = Store(path)
    assert s.version() == MIGRATIONS[-1][0]
    got_ft, got_pr = s.get_run(ft.id), s.get_run(pr.id)
    assert got_ft.agent.prompt_format == "chat" and got_pr.agent.prompt_format == "scratchpad"
    keys = {r["id"]: r["agent_key"] for r in s._rows("SELECT id, agent_key FROM runs")}
    assert keys[ft.id] == got_ft.agent.key == "smollm2 + a · fine-tuned"  # the entry does not split
    assert keys[pr.id] == got_pr.agent.key
    s.close()


def test_the_text_format_puts_a_newline_after_the_question_before_thought():
    fake = FakeModel(["Thought: x\nAction: finish[y]"])
    fake.accepts_text = True
    Agent(fake, None, AgentConfig(finetuned=True, prompt_format="text")).solve("q?")
    assert fake.calls[0] == [{"role": "text", "content": "q?\nThought:"}]
