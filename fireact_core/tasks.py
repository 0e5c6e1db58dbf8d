"""Question sets with their gold answers and the paper's scoring rule, nanochat style.

Each task is a tiny class: it loads one split from files in the FireAct release's layout
(or the offline world's), is indexable (`task[i]` → `Example`), and scores an answer with
`task.evaluate(example, answer)` → `{"em": ..., "f1": ...}`.

    from fireact_core.tasks import load_task
    task = load_task("bamboogle", "test")
    ex = task[0]
    task.evaluate(ex, "James Madison")   # {'em': 1.0, 'f1': 1.0}

Data folder: an explicit `data_dir` → `$FIREACT_DATA` → `../shared/data/fireact` next to
the project → the project's `data/`. Without an explicit folder, each task uses the first of
these that holds its files.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fireact_core import metrics
from fireact_core.errors import ConfigError, FireActError, FormatError
from fireact_core.jsonl import iter_jsonl
from fireact_core.paths import HOME as ROOT  # the folder holding data/


@dataclass
class Example:
    """One question. `answer` is the gold answer as a string, or None when the split has none."""

    id: str
    question: str
    answer: str | None
    task: str
    meta: dict[str, Any] = field(default_factory=dict)


def data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """The data folders, in the order they are searched: `data_dir` alone when given, else `$FIREACT_DATA`,
    `../shared/data/fireact` (the paper's release) and the repository's `data/`. Task files, the corpus
    and (after the working folder and the repository) training files are looked up in them."""
    if data_dir is not None:
        return [Path(data_dir)]
    dirs = [Path(os.environ["FIREACT_DATA"])] if os.environ.get("FIREACT_DATA") else []
    return [*dirs, ROOT.parent / "shared" / "data" / "fireact", ROOT / "data"]


class Task:
    """A split of a question set. Subclasses set `name`, `splits`, `layout` and `_read`."""

    name: ClassVar[str]
    title: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]
    layout: ClassVar[str]  # the files, relative to the data folder, for the error message
    rule: ClassVar[str] = ""  # metrics rule: "" (HotpotQA EM/F1), "strategyqa", "mmlu"
    hint: ClassVar[str] = ("Put the FireAct release's data folder (layout: {layout}) in one of these, "
                           "set $FIREACT_DATA to it, or pass --data-dir.")

    def __init__(self, split: str | None = None, data_dir: str | Path | None = None, *, download: bool = True) -> None:
        split = split or self.splits[0]
        if split not in self.splits:
            raise ConfigError(f"unknown split {split!r} for task {self.name}; valid splits: {', '.join(self.splits)}")
        self.split = split
        self.examples: list[Example] = self._load(data_dir, download)

    # --- loading ---------------------------------------------------------------------------
    def _paths(self, base: Path) -> list[Path]:
        """The files of this split under `base` (they must all exist)."""
        raise NotImplementedError

    def _read(self, paths: list[Path]) -> list[Example]:
        raise NotImplementedError

    def _load(self, data_dir: str | Path | None, download: bool = True) -> list[Example]:
        for base in data_dirs(data_dir):
            paths = self._paths(base)
            if paths and all(p.is_file() for p in paths):
                return self._read(paths)
        missing = self._missing_message(data_dirs(data_dir))
        # --- Hub fallback (issue 3): the one place where missing files are fetched instead.
        # `fireact_core.hub_tasks.load(task, split)` returns Examples (or dicts with their
        # fields). Offline it can still answer from its cache of an earlier download; when it
        # cannot, the user gets the message naming the folders we looked in.
        hub = _hub_tasks()
        if hub is None:
            raise FireActError(missing)
        try:
            rows = hub.load(self.name, self.split, download=download)
        except FireActError:
            if _offline():
                raise FireActError(missing) from None
            raise
        return [r if isinstance(r, Example) else Example(**{"task": self.name, **r}) for r in rows]

    def _missing_message(self, dirs: list[Path]) -> str:
        where = "\n".join(f"  - {d}" for d in dirs)
        return (f"{self.title} {self.split} split not found. Looked for {self.layout.format(split=self.split)} in:\n"
                f"{where}\n{self.hint.format(layout=self.layout.format(split='{split}'))}")

    # --- access ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def evaluate(self, example: Example | int, answer: str | None) -> dict[str, float | None]:
        """EM and F1 of `answer` by the paper's rule for this task; None when there is no gold."""
        ex = self.examples[example] if isinstance(example, int) else example
        if ex.answer is None:
            return {"em": None, "f1": None}
        pred = answer or ""
        return {"em": float(metrics.exact_match(pred, ex.answer, task=self.rule)),
                "f1": metrics.f1(pred, ex.answer, task=self.rule)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, n={len(self)})"


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FireActError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, list):
        raise FireActError(f"{path}: expected a JSON list of questions")
    for i, row in enumerate(data):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise FireActError(f"{path}: item {i} has no 'question' string")
    return data


class HotpotQA(Task):
    name, title, splits, layout = "hotpotqa", "HotpotQA", ("dev", "test"), "hotpotqa/{split}.json"

    def _paths(self, base: Path) -> list[Path]:
        return [base / "hotpotqa" / f"{self.split}.json"]

    def _read(self, paths: list[Path]) -> list[Example]:
        return [Example(id=f"hotpotqa-{self.split}-{i}", question=r["question"], task=self.name,
                        answer=None if r.get("answer") is None else str(r["answer"]),
                        meta={"type": r["type"]} if "type" in r else {})
                for i, r in enumerate(_read_json_list(paths[0]))]


class Bamboogle(Task):
    name, title, splits, layout = "bamboogle", "Bamboogle", ("test",), "bamboogle/{split}.csv"

    def _paths(self, base: Path) -> list[Path]:
        return [base / "bamboogle" / f"{self.split}.csv"]

    def _read(self, paths: list[Path]) -> list[Example]:
        with paths[0].open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"Question", "Answer"} <= set(rows[0]):
            raise FireActError(f"{paths[0]}:1: expected a header 'Question,Answer'")
        return [Example(id=f"bamboogle-{self.split}-{i}", question=r["Question"], answer=r["Answer"], task=self.name)
                for i, r in enumerate(rows)]


class StrategyQA(Task):
    name, title, splits, layout = "strategyqa", "StrategyQA", ("dev", "test"), "strategyqa/strategyqa_{split}.json"
    rule = "strategyqa"

    def _paths(self, base: Path) -> list[Path]:
        return [base / "strategyqa" / f"strategyqa_{self.split}.json"]

    def _read(self, paths: list[Path]) -> list[Example]:
        out = []
        for i, r in enumerate(_read_json_list(paths[0])):
            gold = r.get("answer")
            answer = None if gold is None else ("yes" if gold is True else "no" if gold is False else str(gold))
            out.append(Example(id=r.get("qid") or f"strategyqa-{self.split}-{i}", question=r["question"],
                               answer=answer, task=self.name))
        return out


class MMLU(Task):
    """One CSV per subject (question, A, B, C, D, answer letter); the question lists the options."""

    name, title, splits, layout = "mmlu", "MMLU", ("dev", "val", "test"), "mmlu/{split}/*_{split}.csv"
    rule = "mmlu"

    def _paths(self, base: Path) -> list[Path]:
        return sorted((base / "mmlu" / self.split).glob("*.csv"))

    def _read(self, paths: list[Path]) -> list[Example]:
        out = []
        for path in paths:
            subject = path.stem.removesuffix(f"_{self.split}")
            with path.open(encoding="utf-8", newline="") as f:
                for n, row in enumerate(csv.reader(f), 1):
                    if len(row) != 6:
                        raise FireActError(f"{path}:{n}: expected 6 columns (question, A, B, C, D, answer), got {len(row)}")
                    q, *options, gold = row
                    text = "Question: " + q + "".join(f"\n{letter}. {o}" for letter, o in zip("ABCD", options))
                    out.append(Example(id=f"mmlu-{self.split}-{subject}-{n - 1}", question=text,
                                       answer=gold.strip(), task=self.name, meta={"subject": subject}))
        return out


class World(Task):
    """The offline world's questions (`world/questions/{split}.jsonl`), scored like HotpotQA."""

    name, title, splits, layout = "world", "Offline world", ("train", "dev", "test"), "world/questions/{split}.jsonl"
    hint = ("Generate the offline world first (it writes data/world/, layout: {layout}), "
            "set $FIREACT_DATA to a folder that holds it, or $FIREACT_HOME to the folder holding data/.")

    def _paths(self, base: Path) -> list[Path]:
        return [base / "world" / "questions" / f"{self.split}.jsonl"]

    def _read(self, paths: list[Path]) -> list[Example]:
        out = []
        for n, r in iter_jsonl(paths[0]):
            if not isinstance(r, dict) or not isinstance(r.get("question"), str):
                raise FormatError("a question needs a 'question' string", path=str(paths[0]), line=n)
            meta = {k: v for k, v in r.items() if k not in ("id", "question", "answer")}
            out.append(Example(id=str(r.get("id") or f"world-{self.split}-{n}"), question=r["question"],
                               answer=None if r.get("answer") is None else str(r["answer"]),
                               task=self.name, meta=meta))
        return out


TASKS: dict[str, type[Task]] = {t.name: t for t in (HotpotQA, Bamboogle, StrategyQA, MMLU, World)}


PAPER_SEED, PAPER_COUNT = 233, 500  # the authors' generation.py: --random, task_end_index 500


def paper_order(task: Task, count: int = PAPER_COUNT) -> list[Example]:
    """The paper's evaluation subset of a split: its examples in file order, shuffled with `random.Random(233)`,
    the first `count` (the authors' `generation.py --random --task_end_index 500`; its released HotpotQA dev
    trajectories are these 500 questions)."""
    import random

    order = list(range(len(task)))
    random.Random(PAPER_SEED).shuffle(order)
    return [task.examples[i] for i in order[:count]]


def load_task(name: str, split: str | None = None, data_dir: str | Path | None = None, *,
              download: bool = True) -> Task:
    """A task split by name; unknown names and splits raise `ConfigError` listing the valid ones.

    Files on disk come first, then the Hub copy (cached after the first download); with
    `download=False` only what is already on this machine.
    """
    cls = TASKS.get(name)
    if cls is None:
        valid = "; ".join(f"{n} ({', '.join(c.splits)})" for n, c in TASKS.items())
        raise ConfigError(f"unknown task {name!r}; valid tasks (splits): {valid}")
    return cls(split, data_dir=data_dir, download=download)


def _hub_tasks() -> Any:
    try:
        return importlib.import_module("fireact_core.hub_tasks")
    except ModuleNotFoundError as e:
        if e.name != "fireact_core.hub_tasks":
            raise
        return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


__all__ = ["MMLU", "TASKS", "Bamboogle", "Example", "HotpotQA", "StrategyQA", "Task", "World", "data_dirs", "load_task"]
