"""Nearest-neighbour exemplars (`prompts/nearest.yaml`): each question's ReAct exemplars are the pool's
correct, noise-free teacher trajectories worded most like it, names and numbers left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fireact_core.agent import Agent
from fireact_core.backends.fake import FakeModel
from fireact_core.errors import ConfigError
from fireact_core.methods import load_prompts, nearest, similarity, wording
from fireact_core.spec import AgentSpec
from fireact_core.trajectory import Step, Trajectory

ROOT = Path(__file__).resolve().parents[1]


def test_wording_leaves_out_names_and_numbers():
    assert wording("Which country is the director of Tovarin Sels from?") == (
        "which", "country", "is", "the", "director", "of", "from")
    assert wording("The Fageisks released 3 albums in 1997.") == ("the", "released", "albums", "in")
    same = wording("In what year was the singer of the band Broken Giatan born?")
    assert similarity(same, wording("In what year was the singer of the band Mirror Oak born?")) == 1.0
    assert similarity(same, wording("Where was the singer of the band Mirror Oak born?")) < 1.0
    assert similarity(("born", "in"), ("in", "born")) < 1.0  # word order counts through the pairs


def test_nearest_ranks_by_wording_keeps_pool_order_on_ties_and_skips_the_question_itself():
    pool = [{"question": q, "text": f"t{i}"} for i, q in enumerate([
        "Who founded the company that published Red Sky?",
        "In which city was the band Aro formed?",
        "In which city was the band Bel formed?",
        "In which city was the band that released Cosa formed?"])]
    picked = nearest(pool, "In which city was the band Dun formed?", 2)
    assert [s["text"] for s in picked] == ["t1", "t2"]
    assert [s["text"] for s in nearest(pool, pool[1]["question"], 1)] == ["t2"]
    assert nearest(pool, "x", 0) == []


def _traj(q: str, *, em: float = 1.0, noise: str = "clean", method: str = "react") -> dict:
    steps = [Step(thought="look", action="search", argument=q, observation=f"About {q}.", noise=noise),
             Step(thought="done", action="finish", argument="a", observation="Episode finished")]
    return Trajectory(question=q, steps=steps, method=method, em=em, answer="a", gold="a").to_dict()


def test_the_pool_keeps_correct_noise_free_react_trajectories(tmp_path):
    rows = [_traj("Who wrote Alpha?"), _traj("Who wrote Beta?", em=0.0), _traj("Who wrote Gamma?", noise="none"),
            _traj("Who wrote Delta?", method="cot"), _traj("Who directed Epsilon?")]
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"instructions": {"react": "Solve it. {tools}"},
                                                     "select": "nearest", "pool": "pool.jsonl"}))
    prompts = load_prompts(tmp_path / "p.yaml")
    assert [s["question"] for s in prompts.examples["react"]] == ["Who wrote Alpha?", "Who directed Epsilon?"]
    shots = prompts.exemplars("react", 1, "Who directed Zeta?")
    assert shots.startswith("Question: Who directed Epsilon?\nThought: look\nAction: search[Who directed Epsilon?]")
    assert "Observation: About Who directed Epsilon?." in shots and "Episode finished" not in shots
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"instructions": {}, "select": "nearest", "pool": "none.jsonl"}))
    with pytest.raises(ConfigError, match=r"exemplar pool 'none\.jsonl' was not found"):
        load_prompts(tmp_path / "bad.yaml")
    (tmp_path / "odd.yaml").write_text(yaml.safe_dump({"instructions": {}, "select": "random"}))
    with pytest.raises(ConfigError, match="select is first or nearest"):
        load_prompts(tmp_path / "odd.yaml")
    (tmp_path / "odd.yaml").write_text(yaml.safe_dump({"instructions": {}, "shots": -1}))
    with pytest.raises(ConfigError, match="shots is a count"):
        load_prompts(tmp_path / "odd.yaml")
    assert prompts.react_shots() == 2 and load_prompts("nearest").react_shots() == 2
    assert load_prompts("world").react_shots() == len(load_prompts("world").examples["react"])


def test_a_prompted_agent_sees_the_world_exemplars_worded_like_its_question():
    question = json.loads((ROOT / "data/world/questions/test.jsonl").read_text().splitlines()[2])["question"]
    model = FakeModel(["Thought: t\nAction: finish[a]"])
    spec = AgentSpec(model="fake", method="react", prompts="nearest", exemplars=2)
    traj = Agent(model, None, spec).solve(question)
    prompt = model.calls[0][0]["content"]
    shown = [line.removeprefix("Question: ") for line in prompt.splitlines() if line.startswith("Question: ")]
    assert len(shown) == 3 and shown[-1] == question  # two exemplars, then the question
    for q in shown[:2]:
        assert similarity(wording(q), wording(question)) >= 0.9, q
    assert traj.agent.prompts == "nearest" and traj.agent.exemplars == 2
