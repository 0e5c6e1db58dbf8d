"""The questions the arena offers (examples, the random button) and the gold answers it looks up by text."""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass

from fireact_core.errors import FireActError

TASK_SPLITS = (("world", "dev"), ("hotpotqa", "dev"), ("bamboogle", "test"), ("strategyqa", "dev"), ("mmlu", "dev"))
# The questions each search tool is offered with (examples, the random button): the invented world's
# for its corpus; the paper's HotpotQA and Bamboogle for the real web (Wikipedia, Google).
TOOL_TASKS: dict[str, tuple[str, ...]] = {"corpus": ("world",), "wikipedia": ("hotpotqa", "bamboogle"),
                                          "google": ("hotpotqa", "bamboogle")}


def tasks_for(tool: str | None) -> tuple[str, ...] | None:
    """The tasks whose questions go with a search tool (None: every task, for a tool not listed)."""
    return TOOL_TASKS.get((tool or "").strip())


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: str | None
    task: str


class QuestionBank:
    """The questions offered (examples, random button) and a gold lookup by question text."""

    def __init__(self, questions: list[Question], notes: list[str] | None = None) -> None:
        self.questions = questions
        self.notes = notes or []
        self._by_text = {_norm(q.question): q for q in questions}

    def __len__(self) -> int:
        return len(self.questions)

    def of_tasks(self, tasks: tuple[str, ...] | None) -> list[Question]:
        """The questions of these tasks (None: all of them)."""
        return self.questions if tasks is None else [q for q in self.questions if q.task in tasks]

    def random(self, rng: random.Random | None = None, *, tasks: tuple[str, ...] | None = None) -> Question | None:
        """A random question, of `tasks` only when given (None when there is none)."""
        pool = self.of_tasks(tasks)
        return (rng or random).choice(pool) if pool else None

    def lookup(self, text: str) -> Question | None:
        return self._by_text.get(_norm(text))

    def examples(self, n: int = 6, *, tasks: tuple[str, ...] | None = None) -> list[Question]:
        """A few questions from each task (of `tasks` only when given), for the examples table."""
        seen: dict[str, int] = collections.Counter()
        out = []
        per_task = max(1, n // (len(tasks) if tasks else 3))
        for q in self.of_tasks(tasks):
            if seen[q.task] < per_task:
                out.append(q)
                seen[q.task] += 1
            if len(out) >= n:
                break
        return out


TASK_NAMES = {"world": "offline world", "hotpotqa": "HotpotQA", "bamboogle": "Bamboogle"}


def tool_examples(bank: QuestionBank, tool: str) -> tuple[list[list[str]], str]:
    """The examples' samples for a search tool, and a note when it has none (which question sets are missing)."""
    tasks = tasks_for(tool)
    samples = [[q.question] for q in bank.examples(tasks=tasks)]
    if samples:
        return samples, ""
    names = " or ".join(TASK_NAMES.get(t, t) for t in tasks or ())
    missing = [n for n in bank.notes if n.split(":", 1)[0] in (tasks or ())]
    return [], (f"No {names + ' ' if names else ''}questions here yet" + (f" ({'; '.join(missing)})" if missing else "") +
                ": type your own, or wait for the question sets to load from the Hub.")


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def load_question_bank(tasks: tuple[tuple[str, str], ...] = TASK_SPLITS, per_task: int = 500, *,
                       download: bool = False) -> QuestionBank:
    """The offline world's questions, plus HotpotQA/Bamboogle/StrategyQA/MMLU where their data is on this
    machine (files, or the cache of an earlier download); `download=True` fetches the missing ones from the Hub."""
    try:
        from fireact_core.tasks import load_task
    except ImportError as e:
        return QuestionBank([], [f"question sets unavailable: {e}"])
    questions: list[Question] = []
    notes = []
    for name, split in tasks:
        try:
            task = load_task(name, split, download=download)
        except FireActError as e:
            notes.append(f"{name}: {str(e).splitlines()[0]}")
            continue
        for ex in list(task)[:per_task]:
            questions.append(Question(ex.id, ex.question, ex.answer, ex.task))
    return QuestionBank(questions, notes)


def download_question_bank() -> QuestionBank:
    """`load_question_bank`, fetching the question sets that are not on this machine from the Hub."""
    return load_question_bank(download=True)
