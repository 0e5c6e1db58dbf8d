"""User-facing errors. The CLI and the app print their message; no traceback reaches a user."""

from __future__ import annotations

import re


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


# Control characters other than tab and newlines, and lone surrogates (binary pasted or sent through the API).
_BINARY_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# A line that starts like a ReAct step: a question carrying it would forge steps in the agent's prompt.
_STEP_LINE_RE = re.compile(r"^\s*(Thought|Action|Observation)(\s*\d+)?\s*:", re.M | re.I)


def check_visitor_question(question: str) -> str:
    """`check_question`, plus what a question typed into the app must not carry: binary data, forged steps."""
    q = check_question(question)
    if _BINARY_RE.search(q):
        raise InputError("The question contains control characters or binary data; type it as plain text.")
    m = _STEP_LINE_RE.search(q)
    if m:
        raise InputError(f"The question has a line starting with '{m.group(1).title()}:', which would read as an "
                         "agent step; rephrase it without that line.")
    return q
