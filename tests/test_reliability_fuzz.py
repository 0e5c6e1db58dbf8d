"""Fuzzed model output (issue 14, part 4): arbitrary text through the parser, the agent loop and the store.

Hypothesis writes model turns out of unicode, control characters, huge lines, nested
`Action:` lines, `Observation:` lines the model wrote itself and unbalanced brackets. Each
goes through `parse_model_turn`/`parse_action`, then whole runs go through the real agent
loop with a scripted model that ignores stop strings (as a careless endpoint would) and a
tool that echoes its argument. Nothing may raise; every step ends as an observation or a
finish; each trajectory round-trips through the DuckDB store, both table exports (Parquet,
JSONL) and the training-set JSONL.

`python bench/reliability.py fuzz` runs the same checks with more examples.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fireact_core.agent import Agent, AgentConfig, Finished, StepDone
from fireact_core.backends.base import Completion, Message
from fireact_core.formats import read_trajectories
from fireact_core.store import Store
from fireact_core.tools.base import Toolbox
from fireact_core.trajectory import Trajectory, parse_action, parse_model_turn

FRAGMENTS = ["Thought:", "Thought 1: ", "Action:", "Action: ", "Action 2:", "Observation:", "\nObservation: ",
             "search[", "lookup[", "finish[", "]", "[", "]]", "[[", "\n", "\r\n", "\r", "\t", "\x00", "\x1b[31m",
             "\x85", "\u2028", "\u2029", "\ufeff", "\u202e", "𝕏", "🔥", "ß", "İ", "\"", "\\", "'", "<script>",
             "Action: search[Action: finish[x]]", "Action: finish[a]\nAction: search[b]", "Question: ",
             "Observation 3: forged", "'; DROP TABLE votes; --"]
_piece = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=40),
                   st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=8))
_huge = st.builds(lambda c, n: c * n, st.sampled_from(["x", "[", "]", "é", "\x00", "Action: "]),
                  st.integers(1_000, 20_000))
OUTPUTS = st.one_of(st.lists(_piece, max_size=24).map("".join),
                    st.tuples(st.lists(_piece, max_size=6).map("".join), _huge).map("".join))
EXAMPLES = int(os.environ.get("FIREACT_FUZZ_EXAMPLES", "0")) or None  # bench/reliability.py raises it
REPORT = os.environ.get("FIREACT_FUZZ_REPORT")  # bench/reliability.py reads the counts from this file


class CarelessModel:
    """Replays its outputs in arbitrary chunks, ignoring stop strings and max_tokens (a careless endpoint)."""

    def __init__(self, outputs: Sequence[str], chunk: int = 7, then: str = "Thought: done\nAction: finish[x]") -> None:
        self.name = "fuzz"
        self.outputs = list(outputs)
        self.chunk = max(1, chunk)
        self.then = then  # the reply once the outputs ran out

    def session(self) -> CarelessModel:
        return self

    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (),
               max_tokens: int = 256) -> Iterator[str | Completion]:
        text = self.outputs.pop(0) if self.outputs else self.then
        for i in range(0, len(text), self.chunk):
            yield text[i:i + self.chunk]
        yield Completion(text=text, prompt_tokens=len(messages), completion_tokens=len(text.split()))


def echo(query: str) -> str:
    """Search: echoes the query back (so the observation is the model's arbitrary text)."""
    return f"You searched for: {query}"


def check_parse(text: str) -> None:
    thought, action = parse_model_turn(text)
    assert thought is None or isinstance(thought, str)
    assert action is None or "\n" not in action  # one Action line
    if action is not None:
        parsed = parse_action(action)
        assert parsed is None or (re.fullmatch(r"\w+", parsed[0]) is not None and isinstance(parsed[1], str))


def run_agent(outputs: list[str], chunk: int, finish: bool, max_steps: int = 4) -> Trajectory:
    """The full loop on `outputs`: every step ends as an observation or a finish; returns the trajectory."""
    tools = Toolbox({"search": echo}, timeout_s=5)
    then = "Thought: so\nAction: finish[x]" if finish else "Thought: more\nAction: search[more]"
    agent = Agent(CarelessModel(outputs, chunk, then), tools, AgentConfig(method="react", exemplars=0, max_steps=max_steps))
    events = list(agent.run("What does the fuzzer say?", gold="x"))
    assert isinstance(events[-1], Finished) and sum(isinstance(e, Finished) for e in events) == 1
    traj = events[-1].trajectory
    done = [e.step for e in events if isinstance(e, StepDone)]
    assert done == traj.steps and 1 <= len(traj.steps) <= max_steps
    for i, s in enumerate(traj.steps):
        finished = s.action == "finish" and s.error is None
        assert finished or s.observation, (i, s)  # an observation, an error shown as one, or a finish
        assert not finished or i == len(traj.steps) - 1  # nothing runs after a finish
    assert traj.status in ("finished", "step_limit")
    assert (traj.status == "finished") == (traj.steps[-1].action == "finish" and traj.steps[-1].error is None)
    json.dumps(traj.to_dict(), ensure_ascii=False)  # JSON-safe
    return traj


def check_exports(store: Store, trajs: list[Trajectory], out: Path) -> None:
    """Every trajectory comes back unchanged from the store, both table exports and the training-set JSONL."""
    want = {t.id: t.to_dict() for t in trajs}
    for t in trajs:
        got = store.get_run(t.id)
        assert got is not None and got.to_dict() == want[t.id]
    parquet, jsonl = out / "parquet", out / "jsonl"
    store.export_tables(parquet, "parquet")
    store.export_tables(jsonl, "jsonl")
    con = duckdb.connect()
    rows = con.execute("SELECT id, trajectory FROM read_parquet(?)", [str(parquet / "runs.parquet")]).fetchall()
    con.close()
    assert {i: json.loads(t) for i, t in rows} == want
    lines = (jsonl / "runs.jsonl").read_text(encoding="utf-8").split("\n")
    back = [json.loads(line) for line in lines if line.strip()]
    assert {r["id"]: json.loads(r["trajectory"]) for r in back} == want
    n = store.export_training_set(out / "train.jsonl", "em")  # the ones that got the gold answer
    again = {t.id: t for t in read_trajectories(out / "train.jsonl")}
    assert len(again) == n
    for tid, t in again.items():
        assert t.evidence is not None and t.evidence.ratings == 0  # nobody rated them
        t.evidence = None
        assert t.to_dict() == want[tid]


def test_arbitrary_model_output_never_crashes_the_parser():
    @settings(max_examples=EXAMPLES or 1000, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(OUTPUTS)
    def one(text: str) -> None:
        check_parse(text)

    one()


def test_arbitrary_model_output_through_the_agent_loop_round_trips_through_the_store(tmp_path):
    store = Store(tmp_path / "fuzz.duckdb")
    trajs: list[Trajectory] = []
    fed = [0]

    @settings(max_examples=EXAMPLES or 300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(OUTPUTS, min_size=1, max_size=4), st.integers(1, 64), st.booleans())
    def one(outputs: list[str], chunk: int, finish: bool) -> None:
        for text in outputs:
            check_parse(text)
        fed[0] += len(outputs)
        traj = run_agent(outputs, chunk, finish)
        assert store.save_run(traj, source="fuzz", agent_key="fuzz")
        trajs.append(traj)

    one()
    try:
        assert len(trajs) >= min(EXAMPLES or 300, 100)
        assert any(t.status == "finished" for t in trajs) and any(t.status == "step_limit" for t in trajs)
        check_exports(store, trajs, tmp_path / "exports")
        if REPORT:
            Path(REPORT).write_text(json.dumps({
                "runs": len(trajs), "outputs": fed[0], "steps": sum(len(t.steps) for t in trajs),
                "finished": sum(t.status == "finished" for t in trajs),
                "step_limit": sum(t.status == "step_limit" for t in trajs),
                "invalid_steps": sum(s.error is not None for t in trajs for s in t.steps),
                "longest_output": max((len(s.raw or s.thought) for t in trajs for s in t.steps), default=0)}))
    finally:
        store.close()


def test_a_line_separator_in_a_trajectory_survives_the_training_set_jsonl(tmp_path):
    """Regression: JSONL readers split records on U+2028/U+0085 (`str.splitlines`), which JSON leaves unescaped."""
    from fireact_core.formats import write_trajectories
    from fireact_core.trajectory import Step

    t = Trajectory(question="a\u2028b\x85c\u2029d?", steps=[Step(thought="x\u2028y", action="finish", argument="z")])
    write_trajectories([t], tmp_path / "t.jsonl", "trajectories")
    assert [x.to_dict() for x in read_trajectories(tmp_path / "t.jsonl")] == [t.to_dict()]
    from fireact_core.generate import read_jsonl

    assert [x.to_dict() for x in read_jsonl(tmp_path / "t.jsonl")] == [t.to_dict()]  # teacher generation's resume
