"""Tasks from the Hub: the offline message, and the Hub path with a stand-in `datasets` module
whose rows are built from the paper's files, so the Hub and file loaders must agree."""

from __future__ import annotations

import csv
import json
import sys
import types

import pytest

from fireact_core import hub_tasks
from fireact_core.errors import FireActError
from fireact_core.tasks import load_task


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)


def fake_datasets(monkeypatch, rows_by_repo: dict, calls: list | None = None) -> None:
    def load_dataset(repo, config=None, split=None):
        if calls is not None:
            calls.append((repo, config, split))
        if repo not in rows_by_repo:
            raise ConnectionError(f"Couldn't reach 'https://huggingface.co/datasets/{repo}'")
        return rows_by_repo[repo]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


def test_offline_message_says_where_to_put_the_files(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FireActError) as e:
        hub_tasks.load("bamboogle", "test")
    msg = str(e.value)
    assert "bamboogle/test.csv" in msg and "HF_HUB_OFFLINE" in msg and "FIREACT_DATA" in msg
    assert "chiayewken/bamboogle" in msg


def test_hub_failure_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    fake_datasets(monkeypatch, {})
    with pytest.raises(FireActError) as e:
        load_task("mmlu", "val", data_dir=tmp_path / "empty")  # tasks.py falls back to the Hub
    msg = str(e.value)
    assert "mmlu/val/*_val.csv" in msg and "ConnectionError" in msg and "cais/mmlu" in msg


def test_split_without_a_hub_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(FireActError, match="no Hub copy of strategyqa/test"):
        hub_tasks.load("strategyqa", "test")


def test_bamboogle_from_the_hub_matches_the_files_and_is_cached(shared_data, monkeypatch, tmp_path):
    with (shared_data / "bamboogle" / "test.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))  # the Hub dataset has the same two columns
    calls: list = []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    fake_datasets(monkeypatch, {"chiayewken/bamboogle": rows}, calls)
    from_hub = load_task("bamboogle", "test", data_dir=tmp_path / "empty")
    assert calls == [("chiayewken/bamboogle", None, "test")]
    assert from_hub.examples == load_task("bamboogle", "test", data_dir=shared_data).examples
    assert from_hub.evaluate(0, "James Madison")["em"] == 1.0
    # Cached: a second load needs neither the Hub nor the network.
    fake_datasets(monkeypatch, {}, calls)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_tasks.load("bamboogle", "test") == from_hub.examples
    assert len(calls) == 1
    cached = (tmp_path / "cache" / "tasks" / "bamboogle" / "test.jsonl").read_text().splitlines()
    assert len(cached) == 125 and json.loads(cached[0])["answer"] == "james madison"


def test_mmlu_from_the_hub_matches_the_files(shared_data, monkeypatch, tmp_path):
    subjects = ["anatomy", "astronomy"]
    rows = []
    for s in subjects:
        with (shared_data / "mmlu" / "dev" / f"{s}_dev.csv").open(encoding="utf-8", newline="") as f:
            for q, a, b, c, d, gold in csv.reader(f):  # cais/mmlu: choices list, answer index
                rows.append({"question": q, "subject": s, "choices": [a, b, c, d], "answer": "ABCD".index(gold)})
    data = tmp_path / "data" / "mmlu" / "dev"
    data.mkdir(parents=True)
    for s in subjects:
        (data / f"{s}_dev.csv").write_bytes((shared_data / "mmlu" / "dev" / f"{s}_dev.csv").read_bytes())
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    fake_datasets(monkeypatch, {"cais/mmlu": rows})
    assert hub_tasks.load("mmlu", "dev") == load_task("mmlu", "dev", data_dir=tmp_path / "data").examples


def test_hotpotqa_and_strategyqa_rows(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    fake_datasets(monkeypatch, {
        "hotpotqa/hotpot_qa": [{"id": "5a8b", "question": "Were Scott Derrickson and Ed Wood of the same nationality?",
                                "answer": "yes", "type": "comparison", "level": "hard"}],
        "wics/strategy-qa": [{"qid": "e0044a7b", "question": "Will the Albany in Georgia reach 100k?", "answer": False}],
    })
    (hp,) = hub_tasks.load("hotpotqa", "dev")
    assert (hp.id, hp.answer, hp.meta["type"], hp.task) == ("hotpotqa-dev-0", "yes", "comparison", "hotpotqa")
    (sq,) = hub_tasks.load("strategyqa", "dev")
    assert (sq.id, sq.answer) == ("e0044a7b", "no")


def test_without_download_only_the_cache_answers_and_nothing_is_fetched(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    calls: list = []
    fake_datasets(monkeypatch, {"chiayewken/bamboogle": [{"Question": "Who?", "Answer": "Me"}]}, calls)
    with pytest.raises(FireActError, match="has not been downloaded yet"):
        load_task("bamboogle", "test", data_dir=tmp_path / "empty", download=False)
    assert calls == []
    fetched = load_task("bamboogle", "test", data_dir=tmp_path / "empty")  # downloads, and caches
    assert len(calls) == 1
    again = load_task("bamboogle", "test", data_dir=tmp_path / "empty", download=False)
    assert [e.question for e in again] == [e.question for e in fetched] and len(calls) == 1


def test_the_app_offers_the_world_at_once_and_the_hub_sets_once_the_hub_answers(monkeypatch, tmp_path):
    """Building the page never waits on the network: the missing sets arrive in the background."""
    import time

    from space.defaults import DefaultSources
    from space.fakes import fake_config
    from space.questions import Question, QuestionBank
    from space.runtime import Runtime

    world = QuestionBank([Question("w1", "A world question?", "x", "world")])
    more = QuestionBank([*world.questions, Question("h1", "A HotpotQA question?", "y", "hotpotqa")])
    for answers, expected in [(False, {"world"}), (True, {"world", "hotpotqa"})]:
        rt = Runtime(fake_config(tmp_path / f"{answers}.duckdb", questions=lambda: world, more_questions=lambda: more,
                                 defaults=DefaultSources("", probe=lambda a=answers: (time.sleep(0.1), a)[1])))
        assert {q.task for q in rt.bank.questions} == {"world"}  # at once, before the probe answered
        deadline = time.time() + 5
        while {q.task for q in rt.bank.questions} != expected and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert {q.task for q in rt.bank.questions} == expected
        assert rt.bank.lookup("A HotpotQA question?") is (more.questions[1] if answers else None)
        rt.store.close()
