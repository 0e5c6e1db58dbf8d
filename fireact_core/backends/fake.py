"""A deterministic scripted model for tests and demos: it replays the replies it was given."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from fireact_core.backends.base import BackendError, Completion, Message, cut_at_stop

Reply = str | Exception | Callable[[Sequence[Message]], str]


class FakeModel:
    """Replays `replies` in order, one per call, streaming them word by word.

    A reply may be a string, an exception to raise (e.g. `BackendError`), or a function
    of the messages. When the script runs out, it answers `default` (a `finish[]` by
    default) so a loop always ends. Token counts are whitespace words.
    """

    def __init__(self, replies: Sequence[Reply] = (), name: str = "fake", default: str = "Thought: I am done.\nAction: finish[unknown]") -> None:
        self.name = name
        self.replies = list(replies)
        self.default = default
        self.calls: list[list[Message]] = []

    def session(self) -> FakeModel:
        return self

    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256) -> Iterator[str | Completion]:
        self.calls.append([dict(m) for m in messages])
        reply = self.replies.pop(0) if self.replies else self.default
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            reply = reply(messages)
        if not isinstance(reply, str):
            raise BackendError(f"fake model: reply must be a string, got {type(reply).__name__}")
        text, _ = cut_at_stop(reply, stop)
        words = text.split(" ")
        words = words[:max_tokens]
        text = " ".join(words)
        for i, w in enumerate(words):
            yield w if i == 0 else " " + w
        prompt = sum(len(m["content"].split()) for m in messages)
        yield Completion(text=text, prompt_tokens=prompt, completion_tokens=len(words), prefill_tokens=prompt)


def load(spec: str = "", **_: object) -> FakeModel:
    """`fake` model spec: replies `finish[<spec>]` (default `unknown`) to every call."""
    answer = spec or "unknown"
    return FakeModel(name=f"fake:{answer}" if spec else "fake", default=f"Thought: I will answer.\nAction: finish[{answer}]")
