"""The one training-data rule: the app's export and the trainer pick the same trajectories and steps.

The walk from the arena to a training example: a battle's two runs are stored with their
`AgentSpec`, a vote and a step label are recorded, the export writes the evidence beside each
trajectory, and `train.data` turns the file into examples under the same `TrainingRule`: the won
run is kept, the lost one dropped, and the kept one ends before the step a rater labelled wrong.
"""

from __future__ import annotations

import pytest

from fireact_core.errors import ConfigError
from fireact_core.evidence import Evidence, StepVotes
from fireact_core.formats import read_trajectories
from fireact_core.spec import AgentSpec
from fireact_core.store import Store
from fireact_core.training_rule import TrainingRule, training_messages
from fireact_core.trajectory import Step, Trajectory
from train.data import Source, load_source


def _traj(i: int, *, em: float | None = None, role: str = "finetuned") -> Trajectory:
    steps = [Step(thought="look", action="search", argument=f"topic {i}", observation=f"page {i}"),
             Step(thought="again", action="search", argument=f"more {i}", observation=f"more page {i}"),
             Step(thought="done", action="finish", argument="ans", observation="Episode finished")]
    spec = AgentSpec(model="fake", adapter="/adapters/a1" if role == "finetuned" else None, role=role,
                     finetuned=role == "finetuned", exemplars=0 if role == "finetuned" else 2)
    return Trajectory(question=f"question {i}?", steps=steps, id=f"run{i}", answer="ans", em=em, agent=spec)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "app.duckdb")
    yield s
    s.close()


def test_a_vote_and_a_step_label_reach_the_training_example(store, tmp_path):
    won, lost = _traj(1), _traj(2, role="prompted")
    store.save_battle("b1", run_a=won, run_b=lost, blind=True, rater_id="r1")
    store.record_vote("b1", "r1", "a")
    store.rate("run1", "r1", source="arena", step_idx=1, thought_ok=False, action_ok=None)  # step 2: wrong
    store.rate("run1", "r2", source="arena", step_idx=0, thought_ok=True, action_ok=True)
    out = tmp_path / "export.jsonl"
    assert store.export_training_set(out, "rated_or_em") == 1  # the lost run is rated down by its vote
    (back,) = read_trajectories(out)
    assert isinstance(back.agent, AgentSpec) and back.agent.key == "fake + a1 · fine-tuned"
    assert back.evidence == Evidence(rating=1.0, ratings=1, votes_won=1, steps={0: StepVotes(1, 0), 1: StepVotes(0, 1)})
    assert back.evidence.bad_step(1) and not back.evidence.bad_step(0) and "rating" not in back.meta
    examples, _ = load_source(Source(str(out)), rule=TrainingRule(keep="rated_or_em"))
    (ex,) = examples
    # cut before the wrong step: question, step 1, its observation; nothing of step 2 or 3
    assert [m["role"] for m in ex.messages] == ["user", "assistant", "user"]
    assert ex.messages[1]["content"] == "Thought: look\nAction: search[topic 1]" and ex.actions == ["search"]
    # the export and the trainer keep the same runs under the same rule
    assert [t.id for t in store.select_training(TrainingRule(keep="rated"))] == ["run1"]
    assert TrainingRule(keep="rated").why_dropped(store.training_candidates()[1]) == "not rated up"


def test_both_bad_rates_both_down_and_a_tie_counts_for_nothing(store):
    store.save_battle("b1", run_a=_traj(1, em=1.0), run_b=_traj(2, em=1.0), blind=True, rater_id="r")
    store.record_vote("b1", "r", "bad")
    store.save_battle("b2", run_a=_traj(3, em=1.0), run_b=_traj(4), blind=True, rater_id="r")
    store.record_vote("b2", "r", "tie")
    by_id = {t.id: t for t in store.training_candidates()}
    assert by_id["run1"].evidence.rating == -1.0 and by_id["run3"].evidence.rating is None
    assert [t.id for t in store.select_training("rated_or_em")] == ["run3"]  # EM-correct, not rated down
    assert [t.id for t in store.select_training("em")] == ["run1", "run2", "run3"]


def test_bad_steps_cut_or_keep_and_a_bad_first_step_drops_the_run():
    t = _traj(1)
    t.evidence = Evidence(steps={2: StepVotes(0, 2)})
    assert len(TrainingRule().steps(t)) == 2 and len(TrainingRule(bad_steps="keep").steps(t)) == 3
    assert TrainingRule(bad_steps="keep").messages(t) == training_messages(t)
    t.evidence = Evidence(steps={0: StepVotes(1, 2)})
    assert TrainingRule().why_dropped(t) == "first step labelled bad"
    t.evidence = Evidence(steps={0: StepVotes(2, 2)})  # a tie is not bad
    assert TrainingRule().why_dropped(t) is None
    failed = Trajectory(question="q", steps=t.steps, status="step_limit")
    assert TrainingRule().why_dropped(failed) == "status step_limit"
    assert TrainingRule(include_failed=True).why_dropped(failed) is None
    t.evidence = Evidence(rating=0.5, ratings=2)
    assert TrainingRule(keep="rated", min_rating=1).why_dropped(t) == "rating below 1"
    assert TrainingRule(keep="rated").why_dropped(t) is None
    with pytest.raises(ConfigError, match="rated_or_em"):
        TrainingRule(keep="best")
    with pytest.raises(ConfigError, match="bad_steps"):
        TrainingRule(bad_steps="mask")


def test_the_teachers_files_and_the_trainer_share_the_reflexion_view(tmp_path):
    from fireact_core.formats import to_chat
    from fireact_core.training_rule import final_trial_view

    steps = [Step(thought="a", action="search", argument="x", observation="o1", trial=0),
             Step(thought="wrong", action="finish", argument="bad", observation="Episode finished", trial=0),
             Step(thought="better", action="finish", argument="good", observation="Episode finished", trial=1)]
    t = Trajectory(question="Q?", steps=steps, method="reflexion", reflections=["look harder"])
    chat = to_chat(final_trial_view(t))["messages"]  # what `fireact generate` writes to chat.jsonl
    assert chat[:2] == training_messages(t)


def test_an_old_export_with_its_ratings_in_meta_still_trains_the_same(tmp_path):
    """Files exported before `evidence` carried the ratings loose in `meta`, step indexes as strings: they
    migrate when read, and the rule keeps and cuts exactly as it did."""
    import json

    old = _traj(1).to_dict()
    old["meta"] = {"rating": 1.0, "ratings": 2, "em": 1.0, "votes_won": 1, "votes_lost": 0,
                   "step_votes": {"0": [1, 0], "1": [0, 2]}, "hops": 2}
    words = {**_traj(2).to_dict(), "meta": {"rating": ["up", "down", "down"]}}  # a hand-made file's words
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (old, words)), encoding="utf-8")
    back, worded = read_trajectories(path)
    assert back.evidence == Evidence(rating=1.0, ratings=2, votes_won=1, steps={0: StepVotes(1, 0), 1: StepVotes(0, 2)})
    assert back.meta == {"em": 1.0, "hops": 2}  # what is not evidence stays
    assert worded.evidence.rating == pytest.approx(-1 / 3) and worded.evidence.ratings == 3
    rule = TrainingRule(keep="rated")
    assert rule.why_dropped(back) is None and len(rule.steps(back)) == 1  # cut before the step labelled wrong
    assert rule.why_dropped(worded) == "not rated up"
    again = Trajectory.from_dict(json.loads(json.dumps(back.to_dict())))  # the new form round-trips
    assert again.evidence == back.evidence and again.to_dict()["evidence"]["step_votes"] == {"0": [1, 0], "1": [0, 2]}
    assert "evidence" not in _traj(3).to_dict()  # unrated runs keep their JSON as it was
