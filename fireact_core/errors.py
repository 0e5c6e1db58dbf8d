"""User-facing errors. The CLI and the app print their message; no traceback reaches a user."""

from __future__ import annotations


class FireActError(Exception):
    """An error caused by the user's input or environment, with a message meant for them."""


class FormatError(FireActError):
    """A malformed file or record. `where` names the file and line when known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path, self.line, self.reason = path, line, message
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")


class ConfigError(FireActError):
    """A bad option, an unknown task/split/recipe key, a missing API key."""


class InputError(FireActError):
    """A question that cannot be run (empty, too long)."""


MAX_QUESTION_CHARS = 4000


def check_question(question: str) -> str:
    """Return the stripped question or raise `InputError` with a clear message."""
    q = (question or "").strip()
    if not q:
        raise InputError("The question is empty: type a question to ask the agent.")
    if len(q) > MAX_QUESTION_CHARS:
        raise InputError(
            f"The question is {len(q):,} characters long; the limit is {MAX_QUESTION_CHARS:,}."
        )
    return q
