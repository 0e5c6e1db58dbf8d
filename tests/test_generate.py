"""`fireact generate` end to end: the openai backend talking to `fireact serve` on 127.0.0.1
(serving a scripted model, so which answers are right is known), the Wikipedia tool talking
to a local MediaWiki server, three real Bamboogle questions; files, manifest, resume."""

from __future__ import annotations

import json
import socket
import time
from types import SimpleNamespace

import pytest
from servers import FakeWikipedia

from fireact_core.backends.fake import FakeModel
from fireact_core.cli import main
from fireact_core.errors import ConfigError
from fireact_core.formats import read_trajectories
from fireact_core.generate import AgentTeacher, RequestPacer, generate, load_teacher
from fireact_core.serve import start_in_thread
from fireact_core.tasks import Example
from fireact_core.tools.noisy import NoiseConfig
from fireact_core.trajectory import Step, Trajectory

# The first three Bamboogle questions: the teacher gets two right and one wrong.
ANSWERS = {
    "Who was president of the United States in the year that Citibank was founded?": "James Madison",
    "What rocket was the first spacecraft that ever approached Uranus launched on?": "Titan IIIE",
    "In what year was the company that was founded as Sound of Music added to the S&P 500?": "2003",  # gold: 1999
}


def teacher_reply(messages) -> str:
    first = messages[0]["content"]
    if first.rstrip().endswith("Reflection:"):
        return "I answered from memory; I should have searched for the founding year first."
    question = first.rsplit("Question: ", 1)[1].strip()
    answer = ANSWERS[question]
    if first.startswith("Answer the question. Think it through"):  # CoT
        return f"Thought: Recalling the facts, the answer is {answer}.\nAction: finish[{answer}]"
    if len(messages) == 1:
        return f"Thought: I need to search for this.\nAction: search[{question[:40]}]"
    return f"Thought: The search helped; the answer is {answer}.\nAction: finish[{answer}]"


@pytest.fixture
def world(monkeypatch, tmp_path, shared_data):
    teacher = FakeModel([teacher_reply] * 200, name="teacher")  # replies computed from the messages
    server, _ = start_in_thread({"gpt-teacher": teacher})
    with FakeWikipedia({"Citibank": "Citibank was founded in 1812 as the City Bank of New York. It is a bank."}) as wiki:
        for var in ("OPENAI_API_KEY", "FIREACT_PRICES", "OPENAI_MAX_RETRIES"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("WIKIPEDIA_API_URL", wiki.url)
        monkeypatch.setenv("FIREACT_DATA", str(shared_data))
        yield SimpleNamespace(teacher=teacher, wiki=wiki, out=tmp_path / "gen", url=server.url)
    server.shutdown()
    server.server_close()


def cli(out, *extra: str) -> int:
    return main(["generate", "--teacher", "openai:gpt-teacher", "--task", "bamboogle", "--split", "test",
                 "--methods", "react,cot,reflexion", "--tools", "wikipedia", "--out", str(out), "--quiet", *extra])


def test_generate_files_manifest_and_resume(world, capsys):
    teacher, wiki, out = world.teacher, world.wiki, world.out
    assert cli(out, "--limit", "2", "--concurrency", "2") == 0
    first_calls = len(teacher.calls)
    assert first_calls == 2 * (2 + 1 + 2)  # per question: react 2 calls, cot 1, reflexion 2 (right first time)
    assert len(wiki.requests) >= 4  # react and reflexion searched through the real HTTP tool

    assert cli(out, "--limit", "3") == 0  # resume: only the third question is new
    third_calls = len(teacher.calls) - first_calls
    assert third_calls == 2 + 1 + (3 * 2 + 2)  # react, cot, reflexion: three wrong trials and two reflections

    assert cli(out, "--limit", "3") == 0  # nothing left to do: no new model call
    assert len(teacher.calls) == first_calls + third_calls
    err = capsys.readouterr().err
    assert "this run 0 new" in err and "9 skipped" in err

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"bamboogle": {m: {"kept": 2, "rejected": 1, "failed": 0}
                                                for m in ("cot", "react", "reflexion")}}
    assert manifest["totals"] == {"kept": 6, "rejected": 3, "failed": 0}
    assert [r["new"] for r in manifest["runs"]] == [6, 3, 0]
    assert manifest["task"] == "bamboogle" and manifest["methods"] == ["react", "cot", "reflexion"]
    assert manifest["tokens_in"] > 0 and manifest["cost_usd"] == 0.0  # a local model is free

    kept = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(kept) == 6 and len(rejected) == 3
    assert all(t["em"] == 1.0 for t in kept) and all(t["answer"] == "2003" for t in rejected)
    reflexion_wrong = next(t for t in rejected if t["method"] == "reflexion")
    assert len(reflexion_wrong["reflections"]) == 2 and {s["trial"] for s in reflexion_wrong["steps"]} == {0, 1, 2}

    alpaca = json.loads((out / "alpaca.json").read_text())
    assert len(alpaca) == 6
    assert {a["instruction"] for a in alpaca} == set(list(ANSWERS)[:2])
    assert all(a["output"].rstrip().endswith("Observation: Episode finished, reward = True") for a in alpaca)
    react = next(a for a in alpaca if "Action: search[" in a["output"])
    assert "Observation: Citibank was founded in 1812" in react["output"] or "Could not find" in react["output"]
    chat = list(read_trajectories(out / "chat.jsonl", infer=False))
    assert len(chat) == 6 and all(t.answer in ("James Madison", "Titan IIIE") for t in chat)
    # Every file parses back with the project's readers.
    assert len(list(read_trajectories(out / "alpaca.json"))) == 6


def test_endpoint_down_fails_each_trajectory_and_goes_on(world, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{dead}/v1")
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    assert cli(world.out, "--limit", "2", "--methods", "cot") == 1
    err = capsys.readouterr().err
    assert "2 failed" in err and "run the same command again" in err
    failed = [json.loads(line) for line in (world.out / "rejected.jsonl").read_text().splitlines()]
    assert len(failed) == 2 and all(t["status"] == "failed" and "cannot connect" in t["reason"] for t in failed)
    assert json.loads((world.out / "manifest.json").read_text())["totals"]["failed"] == 2

    monkeypatch.setenv("OPENAI_BASE_URL", world.url)  # the endpoint is back: a rerun retries the failures
    assert cli(world.out, "--limit", "2", "--methods", "cot") == 0
    assert len(world.teacher.calls) == 2
    manifest = json.loads((world.out / "manifest.json").read_text())
    assert manifest["totals"] == {"kept": 2, "rejected": 0, "failed": 0} and manifest["records"] == 4
    assert len(json.loads((world.out / "alpaca.json").read_text())) == 2


def test_missing_key_stops_before_any_work(monkeypatch, tmp_path, shared_data):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("FIREACT_DATA", str(shared_data))
    assert main(["generate", "--teacher", "openai:gpt-4", "--task", "bamboogle", "--tools", "none",
                 "--out", str(tmp_path / "g")]) == 2
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("SERPAPI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="SERPAPI_API_KEY"):
        load_teacher("openai:gpt-4", tools="google")
    assert not (tmp_path / "g").exists()


class ListTeacher:
    """A minimal custom teacher: right for even ids, wrong for odd ones, down for id 'x'."""

    name = "list-teacher"

    def solve(self, example: Example, method: str, noise: NoiseConfig) -> Trajectory:
        from fireact_core.backends.base import BackendError

        if example.id == "x":
            raise BackendError("endpoint down")
        answer = example.answer if int(example.id) % 2 == 0 else "wrong"
        steps = [Step(thought="t", action="finish", argument=answer, observation="Episode finished")]
        return Trajectory(question=example.question, steps=steps, id=example.id, task=example.task,
                          method=method, answer=answer, cost_usd=0.01)


def test_any_object_with_solve_is_a_teacher(tmp_path):
    examples = [Example(id=str(i), question=f"q{i}?", answer="a", task="world") for i in range(4)]
    examples.append(Example(id="x", question="qx?", answer="a", task="world"))
    result = generate(ListTeacher(), examples, ["react"], tmp_path, concurrency=3, progress=False)
    assert (result.count("kept"), result.count("rejected"), result.count("failed")) == (2, 2, 1)
    assert result.manifest["counts"]["world"]["react"] == {"kept": 2, "rejected": 2, "failed": 1}
    assert result.manifest["cost_usd"] == pytest.approx(0.04)
    again = generate(ListTeacher(), examples, ["react"], tmp_path, progress=False)
    assert len(again.new) == 1 and again.new[0].verdict == "failed"  # only the failure is retried


def test_split_without_answers_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no gold answers"):
        generate(ListTeacher(), [Example(id="0", question="q?", answer=None, task="hotpotqa")], ["react"], tmp_path)


def test_unknown_method_is_refused_before_work(tmp_path):
    teacher = AgentTeacher(FakeModel())
    with pytest.raises(ConfigError, match="unknown method"):
        generate(teacher, [Example(id="0", question="q?", answer="a", task="world")], ["react", "tot"], tmp_path)


def test_rate_limiter_spaces_calls():
    limiter = RequestPacer(rpm=1200)  # one call every 50 ms
    t0 = time.perf_counter()
    for _ in range(5):
        limiter.acquire()
    assert time.perf_counter() - t0 >= 0.19
    unlimited = RequestPacer(None)
    t0 = time.perf_counter()
    for _ in range(100):
        unlimited.acquire()
    assert time.perf_counter() - t0 < 0.05


def test_scripted_teacher_from_the_registry(tmp_path):
    from fireact_core.tasks import load_task

    teacher = load_teacher("scripted", seed=0)
    examples = load_task("world", "train").examples[:2]
    result = generate(teacher, examples, ["react", "reflexion"], tmp_path, progress=False)
    assert result.count("kept") + result.count("rejected") == 4 and result.count("failed") == 0
    kept = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    alpaca = json.loads((tmp_path / "alpaca.json").read_text())
    assert len(alpaca) == len(kept) == result.count("kept") >= 2
    for rec, a in zip(kept, alpaca):  # exports hold the final trial only
        last = rec["steps"][-1]["trial"]
        assert a["output"].count("\nObservation: ") == sum(s["trial"] == last for s in rec["steps"])


@pytest.mark.slow
def test_generate_with_smollm2_behind_serve(monkeypatch, tmp_path, shared_data):
    from fireact_core.serve import load_served_models

    server, _ = start_in_thread(load_served_models("smollm2"))
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.setenv("FIREACT_DATA", str(shared_data))
        out = tmp_path / "gen"
        args = ["generate", "--teacher", "openai:smollm2", "--task", "bamboogle", "--methods", "cot", "--limit", "3",
                "--tools", "none", "--max-tokens", "48", "--out", str(out), "--quiet"]
        assert main(args) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        c = manifest["counts"]["bamboogle"]["cot"]
        assert c["kept"] + c["rejected"] == 3 and c["failed"] == 0 and manifest["tokens_out"] > 0
        assert main(args) == 0
        assert json.loads((out / "manifest.json").read_text())["runs"][-1]["new"] == 0
    finally:
        server.shutdown()
        server.server_close()
