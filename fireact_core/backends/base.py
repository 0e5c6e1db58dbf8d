"""The backend protocol: a chat model that streams text and reports what it cost.

A backend is anything with a `name` and a `stream(messages, stop=..., max_tokens=...)`
generator. The generator yields `str` deltas as they arrive and, last, one `Completion`
with the full text and token counts. `session()` returns a per-trajectory view of the model:
the local backend uses it to keep the keys/values of the growing context, so each step
prefills only its new tokens; remote backends return themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Message = dict[str, str]


@dataclass
class Completion:
    """The result of one model call."""

    text: str
    prompt_tokens: int = 0  # context length the call was billed for
    completion_tokens: int = 0
    prefill_tokens: int = 0  # tokens actually encoded this call (<= prompt_tokens with a cache)
    cost_usd: float = 0.0
    finish_reason: str = "stop"  # stop | length | error
    prefill_s: float = 0.0  # local backend: seconds encoding the prompt (to the first token's logits)
    decode_s: float = 0.0  # local backend: seconds from then to the end of the reply
    engine: str = ""  # local backend: what computed the logits, e.g. `llama.cpp 0.3.36, 2 threads`


class BackendError(Exception):
    """A model call failed for a reason outside the program (endpoint down, bad reply, ...).

    The agent loop turns it into a failed trajectory with this message as the reason.
    """


@runtime_checkable
class Model(Protocol):
    name: str

    def stream(
        self, messages: Sequence[Message], *, stop: Sequence[str], max_tokens: int
    ) -> Iterator[str | Completion]:
        """Yield text deltas, then one `Completion`."""
        ...

    def session(self) -> Model:
        """A view of this model for one trajectory (may share caches across its calls)."""
        ...


def complete(model: Model, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256) -> Completion:
    """Run `model.stream` to the end and return its `Completion`."""
    result: Completion | None = None
    for item in model.stream(messages, stop=stop, max_tokens=max_tokens):
        if isinstance(item, Completion):
            result = item
    if result is None:
        raise BackendError(f"{model.name}: the stream ended without a completion")
    return result


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the first stop string; return (text, stopped)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut], cut < len(text)


def held_back(text: str, stop: Sequence[str]) -> int:
    """How many trailing chars of `text` could be the start of a stop string (not yet safe to emit)."""
    n = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                n = max(n, k)
                break
    return n
