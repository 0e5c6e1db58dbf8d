"""Format-constrained decoding of one ReAct turn: `Thought: <one line>` then `Action: name[argument]`.

An opt-in for prompted local models (`--constrained`, the arena's "constrained" prompted choice),
reported as its own row, never switched on silently. The grammar is checked on characters, not
tokens: at each step the backend tries the model's most likely tokens in order and keeps the
first whose text still fits (`ActionGrammar.check`), so the constraint costs a few tokenizer
decodes per step and never needs a scan of the vocabulary. Inside the Thought and the argument
any text is allowed except a line break; the Action's name is one of the agent's tools or
`finish`; generation stops at the closing `]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OK, DONE, BAD = "ok", "done", "bad"
THOUGHT = "Thought:"
ACTION = "Action: "


@dataclass(frozen=True)
class ActionGrammar:
    """`Thought: …\\nAction: (a|b|finish)[…]`, continuing `prefix` (the turn's text already written)."""

    actions: tuple[str, ...] = ("search", "lookup", "finish")
    prefix: str = ""

    @classmethod
    def for_tools(cls, names: Sequence[str], prefix: str = "") -> ActionGrammar:
        return cls(tuple(dict.fromkeys([*names, "finish"])), prefix)

    def check(self, generated: str) -> str:
        """`ok` (a valid beginning), `done` (a whole turn: cut after the first `]`), or `bad`."""
        text = self.prefix + generated
        if len(text) <= len(THOUGHT):
            return OK if THOUGHT.startswith(text) else BAD
        if not text.startswith(THOUGHT):
            return BAD
        line_end = text.find("\n", len(THOUGHT))
        if line_end == -1:
            return OK  # still thinking
        rest = text[line_end + 1:]
        heads = [f"{ACTION}{a}[" for a in self.actions]
        if any(h.startswith(rest) for h in heads):
            return OK
        head = next((h for h in heads if rest.startswith(h)), None)
        if head is None:
            return BAD
        arg = rest[len(head):]
        close, nl = arg.find("]"), arg.find("\n")
        if close != -1 and (nl == -1 or close < nl):
            return DONE
        return BAD if nl != -1 else OK

    def cut(self, generated: str) -> str:
        """`generated` up to and including the `]` that closes the Action (for a `done` text)."""
        text = self.prefix + generated
        head_end = text.find("[", text.find("\n" + ACTION) + 1)
        close = text.find("]", head_end)
        return generated[: max(0, close + 1 - len(self.prefix))]

    def forced(self, generated: str) -> str:
        """The shortest literal continuation that keeps the text valid (when no likely token fits)."""
        text = self.prefix + generated
        if len(text) < len(THOUGHT):
            return THOUGHT[len(text):]
        if "\n" not in text[len(THOUGHT):]:
            return "\n" + ACTION
        rest = text[text.find("\n", len(THOUGHT)) + 1:]
        for h in (f"{ACTION}{a}[" for a in self.actions):
            if h.startswith(rest):
                return h[len(rest):]
        return "]"
