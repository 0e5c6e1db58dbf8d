"""Each arena run records which engine decoded it, and its result row shows it beside the time."""

from __future__ import annotations

from fireact_core.agent import Finished
from fireact_core.backends.fake import FakeModel
from fireact_core.spec import AgentSpec
from fireact_core.trajectory import Trajectory
from space.render import render_summary
from space.runner import Battle, agent_events


class EngineModel(FakeModel):
    engine = "torch int4 eager, 2 threads"


def _finished(model) -> Trajectory:
    events = list(agent_events(AgentSpec(role="finetuned", finetuned=True), Battle("Who?"), model, None))
    return next(e for e in events if isinstance(e, Finished)).trajectory


def test_a_run_records_the_engine_of_its_model_and_the_row_shows_it():
    traj = _finished(EngineModel(["Thought: done.\nAction: finish[Paris]"]))
    assert traj.answer == "Paris" and traj.meta["engine"] == EngineModel.engine
    row = render_summary(traj)
    assert 'class="fa-engine">torch int4 eager, 2 threads</span>' in row


def test_a_model_without_an_engine_records_none_and_the_row_is_unchanged():
    traj = _finished(FakeModel(["Thought: done.\nAction: finish[Paris]"]))
    assert "engine" not in traj.meta and "fa-engine" not in render_summary(traj)


def test_the_engine_is_escaped():
    traj = Trajectory(question="q", meta={"engine": "<b>x</b>"})
    assert "<b>x</b>" not in render_summary(traj) and "&lt;b&gt;x&lt;/b&gt;" in render_summary(traj)
