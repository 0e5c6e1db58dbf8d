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


# --- the same record outside the arena: `fireact run`, `fireact eval`, `fireact serve` -------------------
def _engine_loader(monkeypatch, *replies: str) -> None:
    monkeypatch.setattr("fireact_core.backends.fake.load",
                        lambda spec="", **opts: EngineModel(list(replies) or ["Thought: t\nAction: finish[Paris]"], name="fake"))


def test_fireact_run_prints_and_records_the_engine(monkeypatch, capsys):
    import json

    from fireact_core.cli import main

    _engine_loader(monkeypatch)
    assert main(["run", "Who?", "--model", "fake", "--tools", "none"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"tokens ({EngineModel.engine})")
    assert main(["run", "Who?", "--model", "fake", "--tools", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["meta"]["engine"] == EngineModel.engine


def test_fireact_eval_summarises_the_engine_and_writes_it_with_each_trajectory(monkeypatch, tmp_path, capsys):
    import json

    from fireact_core.cli import main

    q = tmp_path / "data" / "world" / "questions" / "dev.jsonl"
    q.parent.mkdir(parents=True)
    q.write_text("".join(json.dumps({"id": f"w{i}", "question": f"Q{i}?", "answer": "Paris"}) + "\n" for i in range(2)))
    _engine_loader(monkeypatch)
    out = tmp_path / "runs.jsonl"
    assert main(["eval", "--task", "world", "--split", "dev", "--data-dir", str(tmp_path / "data"), "--model", "fake",
                 "--tools", "none", "--out", str(out), "--no-progress"]) == 0
    assert f"engine          {EngineModel.engine}" in capsys.readouterr().out
    assert [json.loads(line)["meta"]["engine"] for line in out.read_text().splitlines()] == [EngineModel.engine] * 2


def test_a_summary_of_mixed_engines_counts_each():
    from fireact_core.evaluate import Summary

    trajs = [Trajectory(question="q", meta={"engine": e}) for e in ("a, 1 thread", "b, cuda", "a, 1 thread")]
    assert "engines         a, 1 thread (2), b, cuda (1)" in Summary.of(trajs).format()
    assert "engine" not in Summary.of([Trajectory(question="q")]).format()


def test_fireact_serve_lists_each_models_engine():
    import json
    import urllib.request

    from fireact_core.serve import start_in_thread

    srv, _ = start_in_thread({"local": EngineModel(["x"], name="local"), "api": FakeModel(["x"], name="api")})
    try:
        with urllib.request.urlopen(srv.url + "/models", timeout=10) as r:
            data = {m["id"]: m for m in json.load(r)["data"]}
    finally:
        srv.shutdown()
        srv.server_close()
    assert data["local"]["engine"] == EngineModel.engine and "engine" not in data["api"]
