"""Question sets from the Hugging Face Hub, for when the FireAct release's files are not on disk.

`fireact_core.tasks` calls `load(task, split)` when a split's files are missing. Each split
maps to a Hub dataset; rows become `tasks.Example`s shaped exactly like the file loaders'
(same ids, MMLU questions with their lettered options, StrategyQA answers as yes/no). A
loaded split is cached as JSONL under `$FIREACT_CACHE/tasks/`, so it loads again offline.
Offline with nothing cached, or when the Hub fails, a `FireActError` says where to put the
files (the paper's layout) and why the Hub did not work.

Where the Hub's copy differs from the paper's files:
- StrategyQA `dev`: the paper used 229 questions of StrategyQA's 2,290 labelled ones; the
  Hub has all 2,290 (`wics/strategy-qa`), so this split is larger than the paper's. The
  official test split has no public answers and is not on the Hub.
- HotpotQA `test`: the fullwiki test questions, without answers, as in the release.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

from fireact_core.errors import ConfigError, FireActError
from fireact_core.models import cache_root
from fireact_core.tasks import TASKS, Example, data_dirs


class HubSource(NamedTuple):
    repo: str
    config: str | None
    split: str


SOURCES: dict[tuple[str, str], HubSource] = {
    ("hotpotqa", "dev"): HubSource("hotpotqa/hotpot_qa", "distractor", "validation"),
    ("hotpotqa", "test"): HubSource("hotpotqa/hotpot_qa", "fullwiki", "test"),
    ("bamboogle", "test"): HubSource("chiayewken/bamboogle", None, "test"),
    ("strategyqa", "dev"): HubSource("wics/strategy-qa", None, "test"),
    ("mmlu", "dev"): HubSource("cais/mmlu", "all", "dev"),
    ("mmlu", "val"): HubSource("cais/mmlu", "all", "validation"),
    ("mmlu", "test"): HubSource("cais/mmlu", "all", "test"),
}


def cache_path(task: str, split: str) -> Path:
    return cache_root() / "tasks" / task / f"{split}.jsonl"


def offline() -> bool:
    flags = (os.environ.get(v, "").lower() for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f in ("1", "true", "yes", "on") for f in flags)


def load(task: str, split: str, *, download: bool = True) -> list[Example]:
    """The examples of `task`/`split` from the cache, else the Hub; `FireActError` saying where to put files.

    `download=False`: the cache only (for callers that must not wait on the network).
    """
    source = SOURCES.get((task, split))
    if source is None:
        have = ", ".join(f"{t}/{s}" for t, s in SOURCES)
        raise FireActError(_where_to_put(task, split, f"there is no Hub copy of {task}/{split} (the Hub has: {have})"))
    path = cache_path(task, split)
    if path.is_file():
        cached = _read_cache(path)
        if cached is not None:
            return cached
    if offline():
        raise FireActError(_where_to_put(task, split, f"the Hub is set offline (HF_HUB_OFFLINE), so {source.repo} "
                                                      "cannot be downloaded"))
    if not download:
        raise FireActError(_where_to_put(task, split, f"{source.repo} has not been downloaded yet"))
    try:
        datasets = importlib.import_module("datasets")
        rows = datasets.load_dataset(source.repo, source.config, split=source.split)
    except Exception as e:  # network, missing dataset, changed schema: all the Hub's side
        raise FireActError(_where_to_put(task, split, f"loading {source.repo} from the Hub failed: "
                                                      f"{type(e).__name__}: {e}")) from None
    try:
        examples = list(CONVERTERS[task](rows, split))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise FireActError(f"{source.repo} ({source.split}) does not have the expected columns: "
                           f"{type(e).__name__}: {e}") from None
    _write_cache(path, examples)
    return examples


def _where_to_put(task: str, split: str, why: str) -> str:
    cls = TASKS.get(task)
    if cls is None:
        raise ConfigError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    layout = cls.layout.format(split=split)
    dirs = "\n".join(f"  - {d}" for d in data_dirs())
    return (f"{cls.title} {split}: the files are not on disk and {why}.\n"
            f"Put the FireAct release's data there: {layout} (the repository's data/ folder) in one of:\n{dirs}\n"
            "or set $FIREACT_DATA to a folder that holds it; or go online to load it from the Hub.")


def _read_cache(path: Path) -> list[Example] | None:
    try:
        return [Example(**json.loads(line)) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    except (json.JSONDecodeError, TypeError, OSError):
        return None  # damaged: fetch again


def _write_cache(path: Path, examples: list[Example]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("".join(json.dumps(asdict(e), ensure_ascii=False) + "\n" for e in examples), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs a download next time


# --- rows → Examples, matching fireact_core.tasks' file loaders ---------------------------------
def _hotpotqa(rows: Iterable[dict[str, Any]], split: str) -> Iterable[Example]:
    for i, r in enumerate(rows):
        answer = r.get("answer") or None
        meta = {k: r[k] for k in ("type", "level") if r.get(k)}
        if r.get("id"):
            meta["hotpot_id"] = r["id"]
        yield Example(id=f"hotpotqa-{split}-{i}", question=r["question"], answer=answer, task="hotpotqa", meta=meta)


def _bamboogle(rows: Iterable[dict[str, Any]], split: str) -> Iterable[Example]:
    for i, r in enumerate(rows):
        yield Example(id=f"bamboogle-{split}-{i}", question=r["Question"], answer=str(r["Answer"]), task="bamboogle")


def _strategyqa(rows: Iterable[dict[str, Any]], split: str) -> Iterable[Example]:
    for i, r in enumerate(rows):
        gold = r.get("answer")
        answer = None if gold is None else ("yes" if gold is True else "no" if gold is False else str(gold))
        yield Example(id=r.get("qid") or f"strategyqa-{split}-{i}", question=r["question"], answer=answer,
                      task="strategyqa")


def _mmlu(rows: Iterable[dict[str, Any]], split: str) -> Iterable[Example]:
    seen: dict[str, int] = {}
    for r in rows:
        subject = r["subject"]
        n = seen[subject] = seen.get(subject, -1) + 1
        options = list(r["choices"])
        if len(options) != 4:
            raise ValueError(f"a question of {subject} has {len(options)} choices, not 4")
        text = "Question: " + r["question"] + "".join(f"\n{letter}. {o}" for letter, o in zip("ABCD", options))
        gold = r["answer"]
        letter = "ABCD"[gold] if isinstance(gold, int) else str(gold).strip()
        yield Example(id=f"mmlu-{split}-{subject}-{n}", question=text, answer=letter, task="mmlu",
                      meta={"subject": subject})


CONVERTERS: dict[str, Callable[[Iterable[dict[str, Any]], str], Iterable[Example]]] = {
    "hotpotqa": _hotpotqa, "bamboogle": _bamboogle, "strategyqa": _strategyqa, "mmlu": _mmlu,
}
