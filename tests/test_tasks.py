"""Task loaders (the paper's released layout and the offline world) and their scoring rules."""

from __future__ import annotations

import csv
import json
import re
import sys
import types
from pathlib import Path

import pytest

from fireact_core.errors import ConfigError, FireActError
from fireact_core.tasks import TASKS, Example, data_dirs, load_task


def write_world(base: Path, split: str = "dev", rows: list[dict] | None = None) -> Path:
    rows = rows if rows is not None else [
        {"id": "w1", "question": "Who designed the Velmora Library?", "answer": "Idris Kallum", "type": "bridge",
         "hops": 2, "supporting": ["Velmora Library", "Idris Kallum"]},
        {"id": "w2", "question": "Is Ostrand a capital?", "answer": "yes", "type": "yesno", "hops": 1, "supporting": ["Ostrand"]},
    ]
    path = base / "world" / "questions" / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- the released question sets -------------------------------------------------------------
def test_hotpotqa(shared_data):
    dev = load_task("hotpotqa", "dev", data_dir=shared_data)
    rows = json.loads((shared_data / "hotpotqa" / "dev.json").read_text())
    assert len(dev) == len(rows) and dev[0].question == rows[0]["question"] and dev[0].answer == rows[0]["answer"]
    assert dev.evaluate(dev[0], f"The {rows[0]['answer']}.") == {"em": 1.0, "f1": 1.0}
    test = load_task("hotpotqa", "test", data_dir=shared_data)
    assert len(test) > 0
    if test[0].answer is None:  # the released test split has no answers
        assert test.evaluate(0, "anything") == {"em": None, "f1": None}


def test_bamboogle(shared_data):
    task = load_task("bamboogle", data_dir=shared_data)
    with (shared_data / "bamboogle" / "test.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert task.split == "test" and len(task) == len(rows)
    assert (task[4].question, task[4].answer) == (rows[4]["Question"], rows[4]["Answer"])
    assert task.evaluate(4, rows[4]["Answer"].upper())["em"] == 1.0


def test_strategyqa_gold_bool_becomes_yes_no(shared_data):
    task = load_task("strategyqa", "dev", data_dir=shared_data)
    rows = json.loads((shared_data / "strategyqa" / "strategyqa_dev.json").read_text())
    assert [e.answer for e in task] == [("yes" if r["answer"] else "no") for r in rows]
    assert task[0].id == rows[0]["qid"]
    right = task[0].answer
    wrong = "no" if right == "yes" else "yes"
    assert task.evaluate(0, f"{right.capitalize()}, because of the facts.")["em"] == 1.0
    assert task.evaluate(0, wrong)["em"] == 0.0


def test_mmlu_question_lists_options_and_gold_is_a_letter(shared_data):
    task = load_task("mmlu", "val", data_dir=shared_data)
    files = sorted((shared_data / "mmlu" / "val").glob("*.csv"))
    with files[0].open(newline="") as f:
        first = next(csv.reader(f))
    ex = task[0]
    assert ex.question == f"Question: {first[0]}\nA. {first[1]}\nB. {first[2]}\nC. {first[3]}\nD. {first[4]}"
    assert ex.answer == first[5] and ex.answer in "ABCD"
    assert ex.meta["subject"] == files[0].stem.removesuffix("_val")
    assert task.evaluate(ex, f"{ex.answer}. {first[1 + 'ABCD'.index(ex.answer)]}")["em"] == 1.0
    other = "B" if ex.answer == "A" else "A"
    assert task.evaluate(ex, other)["em"] == 0.0
    assert len({e.meta["subject"] for e in load_task("mmlu", "dev", data_dir=shared_data)}) == len(files)


# --- the offline world, from a tiny fixture ------------------------------------------------------
def test_world_from_a_tmp_fixture(tmp_path):
    write_world(tmp_path)
    task = load_task("world", "dev", data_dir=tmp_path)
    assert [e.id for e in task] == ["w1", "w2"]
    assert task[0].meta == {"type": "bridge", "hops": 2, "supporting": ["Velmora Library", "Idris Kallum"]}
    assert task.evaluate(task[0], "idris kallum") == {"em": 1.0, "f1": 1.0}
    assert task.evaluate(task[0], "Kallum")["f1"] == pytest.approx(2 / 3)


def test_world_malformed_line_names_file_and_line(tmp_path):
    path = write_world(tmp_path)
    path.write_text(path.read_text() + "{oops\n")
    with pytest.raises(FireActError, match=re.escape(f"{path}:3: invalid JSON")):
        load_task("world", "dev", data_dir=tmp_path)
    path.write_text('{"id": "x"}\n')
    with pytest.raises(FireActError, match=re.escape(f"{path}:1: ") + ".*'question'"):
        load_task("world", "dev", data_dir=tmp_path)


# --- errors and resolution ------------------------------------------------------------------------
def test_unknown_task_and_split_list_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_task("triviaqa", "dev")
    for name, cls in TASKS.items():
        assert name in str(e.value) and ", ".join(cls.splits) in str(e.value)
    with pytest.raises(ConfigError, match="valid splits: dev, val, test"):
        load_task("mmlu", "train")


def test_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FireActError) as e:
        load_task("hotpotqa", "dev", data_dir=tmp_path)
    msg = str(e.value)
    assert "hotpotqa/dev.json" in msg and str(tmp_path) in msg and "FIREACT_DATA" in msg
    with pytest.raises(FireActError, match=r"world/questions/test\.jsonl"):
        load_task("world", "test", data_dir=tmp_path)


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    env, explicit = tmp_path / "env", tmp_path / "explicit"
    write_world(env, rows=[{"id": "from-env", "question": "q?", "answer": "a"}])
    write_world(explicit, rows=[{"id": "from-arg", "question": "q?", "answer": "a"}])
    monkeypatch.setenv("FIREACT_DATA", str(env))
    assert data_dirs()[0] == env and data_dirs(explicit) == [explicit]
    assert data_dirs()[1:3] == [Path(__file__).resolve().parents[2] / "shared" / "data" / "fireact",
                                Path(__file__).resolve().parents[1] / "data"]
    assert load_task("world", "dev")[0].id == "from-env"
    assert load_task("world", "dev", data_dir=explicit)[0].id == "from-arg"


def test_hub_fallback_online_and_from_its_cache_offline(tmp_path, monkeypatch):
    calls = []
    cached = {"ok": True}

    def load(task, split, download=True):
        calls.append((task, split))
        if not cached["ok"]:
            raise FireActError("offline and not cached")
        return [{"id": "h1", "question": "From the Hub?", "answer": "yes"}, Example("h2", "q", None, task)]

    monkeypatch.setitem(sys.modules, "fireact_core.hub_tasks", types.SimpleNamespace(load=load))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    task = load_task("strategyqa", "dev", data_dir=tmp_path)
    assert calls == [("strategyqa", "dev")]
    assert [e.id for e in task] == ["h1", "h2"] and task[0].task == "strategyqa"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert [e.id for e in load_task("strategyqa", "dev", data_dir=tmp_path)] == ["h1", "h2"]  # from the cache
    cached["ok"] = False
    with pytest.raises(FireActError, match=r"strategyqa_dev\.json"):  # no cache: where to put the files
        load_task("strategyqa", "dev", data_dir=tmp_path)
    assert len(calls) == 3
