"""The questions the arena offers (examples, the random button) and the gold answers it looks up by text."""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass

from fireact_core.errors import FireActError

TASK_SPLITS = (("world", "dev"), ("hotpotqa", "dev"), ("bamboogle", "test"), ("strategyqa", "dev"), ("mmlu", "dev"))


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

    def random(self, rng: random.Random | None = None) -> Question | None:
        return (rng or random).choice(self.questions) if self.questions else None

    def lookup(self, text: str) -> Question | None:
        return self._by_text.get(_norm(text))

    def examples(self, n: int = 6) -> list[Question]:
        """A few questions from each task, for the examples table."""
        seen: dict[str, int] = collections.Counter()
        out = []
        for q in self.questions:
            if seen[q.task] < max(1, n // 3):
                out.append(q)
                seen[q.task] += 1
            if len(out) >= n:
                break
        return out


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
