"""`fireact run`, `eval` and `convert` through `fireact_core.cli.main`, with the fake model;
every bad input of the issue's table gives a clear message, exit 2 and no traceback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fireact_core import metrics
from fireact_core.backends.fake import FakeModel
from fireact_core.cli import main

ARTICLES = [{"title": "Velmora Library", "text": "The Velmora Library was designed by Idris Kallum. It opened in 1931."},
            {"title": "Idris Kallum", "text": "Idris Kallum was an architect born in Tessary."}]


@pytest.fixture
def corpus_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES))
    return path


@pytest.fixture
def scripted(monkeypatch):
    """`--model fake` answers with these replies (then finish[unknown])."""
    made: list[FakeModel] = []

    def use(*replies: str) -> list[FakeModel]:
        def load(spec: str = "", **opts: object) -> FakeModel:
            made.append(FakeModel(list(replies), name="fake"))
            return made[-1]

        monkeypatch.setattr("fireact_core.backends.fake.load", load)
        return made

    return use


def fails_cleanly(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# --- fireact eval --------------------------------------------------------------------------------
def test_eval_five_bamboogle_questions_with_the_fake_model(shared_data, corpus_file, tmp_path, capsys):
    with (shared_data / "bamboogle" / "test.csv").open(newline="") as f:
        golds = [r["Answer"] for r in csv.DictReader(f)][:5]
    out = tmp_path / "runs" / "bamboogle.jsonl"
    rc = main(["eval", "--task", "bamboogle", "--split", "test", "--limit", "5", "--model", f"fake:{golds[0]}",
               "--tools", f"corpus:{corpus_file}", "--out", str(out)])
    assert rc == 0
    cap = capsys.readouterr()
    assert "5/5" in cap.err  # progress on stderr
    expected_em = 100 * sum(metrics.exact_match(golds[0], g) for g in golds) / 5
    assert f"EM              {expected_em:.1f}" in cap.out
    for label in ("F1", "mean steps      1.00", "time/trial", "tokens/trial", str(out)):
        assert label in cap.out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["gold"] for r in rows] == golds
    assert [r["answer"] for r in rows] == [golds[0]] * 5
    assert rows[0]["em"] == 1.0 and rows[0]["task"] == "bamboogle"
    assert rows[0]["agent"]["adapter"] == "default" and rows[0]["agent"]["finetuned"] is True
    assert rows[0]["agent"]["tools"] == f"corpus:{corpus_file}"


def test_eval_offline_world_fixture_with_limit_and_offset(tmp_path, scripted, capsys):
    q = tmp_path / "data" / "world" / "questions" / "dev.jsonl"
    q.parent.mkdir(parents=True)
    q.write_text("".join(json.dumps({"id": f"w{i}", "question": f"Question {i}?", "answer": "Tessary"}) + "\n" for i in range(4)))
    scripted("Thought: t\nAction: finish[Tessary]", "Thought: t\nAction: finish[Ostrand]")
    out = tmp_path / "w.jsonl"
    assert main(["eval", "--task", "world", "--split", "dev", "--data-dir", str(tmp_path / "data"), "--offset", "1",
                 "--limit", "2", "--model", "fake", "--tools", "none", "--out", str(out), "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["w1", "w2"]
    assert [r["em"] for r in rows] == [1.0, 0.0]
    assert "EM              50.0" in capsys.readouterr().out


# --- fireact run -------------------------------------------------------------------------------------
def test_run_streams_steps_observations_and_noise(corpus_file, scripted, capsys):
    scripted("Thought: I should search.\nAction: search[Velmora Library]",
             "Thought: Found nothing; guess.\nAction: finish[Idris Kallum]")
    assert main(["run", "Who designed the Velmora Library?", "--model", "fake", "--tools", f"corpus:{corpus_file}",
                 "--noise", "none", "--p", "1", "--gold", "Idris Kallum"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Question: Who designed the Velmora Library?")
    assert "Thought: I should search.\nAction: search[Velmora Library]\nObservation: None  [noise: replaced by None]" in out
    assert "Answer: Idris Kallum" in out and "EM 1" in out


def test_run_json_and_adapter_modes(corpus_file, scripted, capsys):
    made = scripted("Thought: I should search.\nAction: search[Idris Kallum]", "Thought: ok\nAction: finish[Tessary]")
    assert main(["run", "Where was Idris Kallum born?", "--model", "fake", "--tools", f"corpus:{corpus_file}", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["answer"] == "Tessary" and d["steps"][0]["observation"] == ARTICLES[1]["text"]
    assert d["agent"]["finetuned"] is True and d["agent"]["adapter"] == "default"
    assert made[-1].calls[0] == [{"role": "user", "content": "Where was Idris Kallum born?"}]  # fine-tuned: question alone

    made = scripted("Thought: ok\nAction: finish[Tessary]")
    assert main(["run", "Where?", "--model", "fake", "--adapter", "none", "--tools", "none", "--json",
                 "--method", "cot"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["agent"]["finetuned"] is False and d["agent"]["adapter"] is None and d["method"] == "cot"
    assert "Question: Where?" in made[-1].calls[0][0]["content"]  # prompted: instructions + question


# --- fireact convert -----------------------------------------------------------------------------------
def test_convert_tiny_file_prints_counts(tmp_path, capsys):
    src = tmp_path / "a.json"
    src.write_text(json.dumps([
        {"instruction": "Who?", "input": "", "output": "Thought: t\nAction: search[x]\nObservation: o\nThought: u\nAction: finish[Bob]\nObservation: ok\n"},
        {"instruction": "Can cats swim?", "input": "", "output": "Thought: t\nAction: finish[yes]\nObservation: ok\n"},
    ]))
    dst = tmp_path / "c.jsonl"
    assert main(["convert", str(src), str(dst), "--to", "chat"]) == 0
    out = capsys.readouterr().out
    assert "converted 2 trajectories" in out
    assert "hotpotqa" in out and "strategyqa" in out and out.rstrip().endswith("2")
    back = tmp_path / "back.json"
    assert main(["convert", str(dst), str(back), "--to", "alpaca"]) == 0
    assert json.loads(back.read_text()) == json.loads(src.read_text())


def test_convert_released_file_counts(shared_data, tmp_path, capsys):
    src = shared_data / "finetune" / "alpaca_format" / "multitask.json"
    assert main(["convert", str(src), str(tmp_path / "t.jsonl"), "--to", "trajectories"]) == 0
    out = capsys.readouterr().out
    n = len(json.loads(src.read_text()))
    total = out.strip().splitlines()[-1].split()
    assert total[0] == "total" and int(total[-1]) == n
    assert all(name in out for name in ("hotpotqa", "strategyqa", "mmlu", "react", "cot"))


# --- bad input (the table) ----------------------------------------------------------------------
def test_empty_question(capsys):
    fails_cleanly(capsys, ["run", "   ", "--model", "fake", "--tools", "none"], "fireact run: error:", "question is empty")


def test_question_over_4000_characters(capsys):
    fails_cleanly(capsys, ["run", "x" * 4001, "--model", "fake", "--tools", "none"], "4,001 characters", "limit is 4,000")


def test_unknown_task_and_split(capsys):
    fails_cleanly(capsys, ["eval", "--task", "trivia", "--model", "fake"], "unknown task 'trivia'",
                  "hotpotqa (dev, test)", "bamboogle (test)", "strategyqa (dev, test)", "mmlu (dev, val, test)", "world")
    fails_cleanly(capsys, ["eval", "--task", "bamboogle", "--split", "dev", "--model", "fake"],
                  "unknown split 'dev' for task bamboogle; valid splits: test")


def test_missing_task_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fails_cleanly(capsys, ["eval", "--task", "world", "--split", "dev", "--data-dir", str(tmp_path), "--model", "fake"],
                  "Offline world dev split not found", "world/questions/dev.jsonl", str(tmp_path))


def test_malformed_files_name_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    ok = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Thought: t\nAction: finish[a]"},
                       {"role": "user", "content": "Observation: ok"}]}
    bad.write_text(json.dumps(ok) + "\n" + json.dumps(ok) + "\n" + '{"messages": [{"role": "user"\n')
    fails_cleanly(capsys, ["convert", str(bad), str(tmp_path / "o.json"), "--to", "alpaca"], f"{bad}:3: invalid JSON")
    broken = {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "no observation"}]}
    bad.write_text(json.dumps(ok) + "\n" + json.dumps(broken) + "\n")
    fails_cleanly(capsys, ["convert", str(bad), str(tmp_path / "o.json"), "--to", "alpaca"], f"{bad}:2: ", "Observation")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"title": "A", "text": "a"}\n{"title": 1}\n')
    fails_cleanly(capsys, ["run", "q?", "--model", "fake", "--tools", f"corpus:{corpus}"], f"{corpus}:2: ")


def test_bad_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "q?", "--noise", "loud"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "q?", "--p", "1.5"])
    assert "within [0, 1]" in capsys.readouterr().err
    fails_cleanly(capsys, ["run", "q?", "--model", "nosuch:x", "--tools", "none"], "unknown model", "fake")
    fails_cleanly(capsys, ["run", "q?", "--model", "openai:gpt-4o-mini", "--adapter", "my-adapter"],
                  "--adapter applies to local models")
    fails_cleanly(capsys, ["run", "q?", "--model", "fake", "--tools", "corpus:/nonexistent/c.jsonl"], "corpus file not found")


def test_an_eval_output_imports_into_the_annotation_queue(tmp_path, scripted):
    """`fireact eval` writes its noise as the CLI names it; the store reads that record (it raised AttributeError)."""
    from fireact_core.formats import read_trajectories
    from fireact_core.store import Store

    q = tmp_path / "data" / "world" / "questions" / "dev.jsonl"
    q.parent.mkdir(parents=True)
    q.write_text(json.dumps({"id": "w0", "question": "Question 0?", "answer": "Tessary"}) + "\n")
    scripted("Thought: t\nAction: finish[Tessary]")
    out = tmp_path / "w.jsonl"
    assert main(["eval", "--task", "world", "--split", "dev", "--data-dir", str(tmp_path / "data"), "--model", "fake",
                 "--tools", "none", "--noise", "random", "--p", "0.25", "--seed", "3", "--out", str(out),
                 "--no-progress"]) == 0
    store = Store(tmp_path / "app.duckdb")
    try:
        assert store.import_trajectories(read_trajectories(out)) == 1
        (row,) = store.runs_table()
        assert (row["noise_mode"], row["noise_p"], row["noise_seed"]) == ("random", 0.25, 3)
    finally:
        store.close()
