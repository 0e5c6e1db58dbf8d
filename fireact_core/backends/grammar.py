"""Format-constrained decoding of one ReAct turn: `Thought: <one line>` then `Action: name[argument]`.

An opt-in for prompted local models (`--constrained`, the arena's "constrained" prompted choice),
reported as its own row, never switched on silently. The grammar is checked on characters, not
tokens: at each step the backend tries the model's most likely tokens in order and keeps the
first whose text still fits (`ActionGrammar.check`), so the constraint costs a few tokenizer
decodes per step and never needs a scan of the vocabulary. Inside the Thought and the argument
any text is allowed except a line break; the Action's name is one of the agent's tools or
`finish`; generation stops at the closing `]`.

Extractive decoding (`--extractive`, on top of it) also holds each argument to a copy: a span of
the `source` text (the question and the trial's Observations, case-insensitive, starting and
ending at word boundaries); `finish` may also say a number, and `yes` or `no` when the question
asks yes or no. A small model then can only answer with what it read, not with an exemplar's
answer ("no", the last exemplar's, is what prompted SmolLM2 answers otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

OK, DONE, BAD = "ok", "done", "bad"
THOUGHT = "Thought:"
ACTION = "Action: "
FREE_ANSWERS = ("yes", "no")  # what `finish` may say to a yes/no question besides a copy (and a number)
_NUMBER = re.compile(r"-?\d[\d,.]*")
_POLAR = re.compile(r"\s*(is|are|was|were|do|does|did|has|have|had|can|could|will|would|should|am)\b", re.I)


def polar(question: str) -> bool:
    """Whether a question asks yes or no (it opens with an auxiliary verb: "Were X and Y ...")."""
    return _POLAR.match(question) is not None


@dataclass(frozen=True)
class ActionGrammar:
    """`Thought: …\\nAction: (a|b|finish)[…]`, continuing `prefix` (the turn's text already written)."""

    actions: tuple[str, ...] = ("search", "lookup", "finish")
    prefix: str = ""
    source: str | None = None  # extractive: the text every argument is copied from (None: any text)
    answers: tuple[str, ...] = FREE_ANSWERS  # extractive: what `finish` may say besides a copy or a number

    @classmethod
    def for_tools(cls, names: Sequence[str], prefix: str = "", source: str | None = None,
                  question: str = "") -> ActionGrammar:
        """The grammar for an agent with tools `names`; extractive when `source` is given, with yes
        and no for `finish` only when the `question` asks yes or no."""
        return cls(tuple(dict.fromkeys([*names, "finish"])), prefix,
                   None if source is None else " ".join(source.casefold().split()),
                   FREE_ANSWERS if polar(question) else ())

    @cached_property
    def heads(self) -> tuple[str, ...]:
        """Each Action's opening, `Action: name[`."""
        return tuple(f"{ACTION}{a}[" for a in self.actions)

    def _head(self, rest: str) -> str | None:
        return next((h for h in self.heads if rest.startswith(h)), None)

    def check(self, generated: str) -> str:
        """`ok` (a valid beginning), `done` (a whole turn: cut after the first `]`), or `bad`."""
        text = self.prefix + generated
        if len(text) <= len(THOUGHT):
            return OK if THOUGHT.startswith(text) else BAD
        if not text.startswith(THOUGHT):
            return BAD
        rest = _action_line(text)
        if rest is None:
            return OK  # still thinking
        if any(h.startswith(rest) for h in self.heads):
            return OK
        head = self._head(rest)
        if head is None:
            return BAD
        arg = rest[len(head):]
        close, nl = arg.find("]"), arg.find("\n")
        if close != -1 and (nl == -1 or close < nl):
            return DONE if self.copied(head, arg[:close], whole=True) else BAD
        if nl != -1:
            return BAD
        return OK if self.copied(head, arg, whole=False) else BAD

    def admits_partial(self, generated: str) -> bool:
        """Whether a character still incomplete (a token that ends inside a UTF-8 sequence) may
        follow `generated`: inside the Thought, or inside an argument that may hold any text (an
        extractive one: when its source has characters beyond ASCII). Never in the Action's name."""
        text = self.prefix + generated
        if self.check(generated) != OK or len(text) < len(THOUGHT):
            return False
        rest = _action_line(text)
        if rest is None:
            return True  # still thinking
        return self._head(rest) is not None and (self.source is None or not self.source.isascii())

    def copied(self, head: str, arg: str, *, whole: bool) -> bool:
        """Whether `arg` (of the action `head` opens) is, or begins, an allowed argument (always, when not extractive)."""
        if self.source is None:
            return True
        a = arg.casefold()
        if not a:
            return not whole
        if a[0].isspace():
            return False
        if head.endswith("finish[") and (_NUMBER.fullmatch(a) or (a in self.answers if whole else
                                                                  any(f.startswith(a) for f in self.answers))):
            return True
        return _span(self.source, a, whole=whole) != -1

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
        rest = _action_line(text)
        if rest is None:
            return "\n" + ACTION
        for h in self.heads:
            if h.startswith(rest) and h != rest:
                return h[len(rest):]
        head = self._head(rest)
        assert head is not None, "forced() continues a valid text only"
        arg = rest[len(head):]
        if self.source is None or self.copied(head, arg, whole=True):
            return "]"
        if not arg:  # nothing likely fits: the first allowed word
            words = [*(self.answers if head.endswith("finish[") else ()), *self.source.split(), "]"]
            return words[0]
        a = arg.casefold()
        i = _span(self.source, a, whole=False)
        end = j = i + len(a)
        while i != -1 and j < len(self.source) and _word(self.source[j]):
            j += 1
        return self.source[end:j] if i != -1 and j > end else "]"


def _action_line(text: str) -> str | None:
    """What follows the Thought line of a text that opens with `Thought:` (None while it lasts)."""
    line_end = text.find("\n", len(THOUGHT))
    return None if line_end == -1 else text[line_end + 1:]


def _word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _span(text: str, a: str, *, whole: bool) -> int:
    """Where `a` first occurs in `text` starting at a word's start (and, `whole`, ending at a word's
    end); -1 if nowhere. A scan with `str.find`: it runs for each candidate token of each step."""
    i = text.find(a)
    while i != -1:
        if (i == 0 or not _word(text[i - 1])) and (not whole or i + len(a) == len(text) or not _word(text[i + len(a)])):
            return i
        i = text.find(a, i + 1)
    return -1


def pick_valid(logits: Any, out: list[int], sh: Any, grammar: ActionGrammar,
                top_k: int = 64, now: str | None = None) -> tuple[int, str]:
    """The likeliest token (greedy, whatever the temperature) whose text keeps the turn inside
    `grammar`, and the text `out` plus that token decodes to.

    Candidates are tried in the model's order among its `top_k`; when none fits, the first token
    of the grammar's shortest literal continuation is forced. A token that ends inside a UTF-8
    character is taken only where the grammar admits any character; should a completed character
    still break the format, the turn ends there, and the agent reads it as a malformed action.
    `now` is `out` decoded, when the caller has it. `sh` is the loaded model's shared state
    (`decode`, `end_ids`, `lock` and `tokenizer`: `backends.local`'s `_Shared`).
    """
    import torch

    now = sh.decode(out) if now is None else now
    for token in torch.topk(logits, min(top_k, logits.shape[-1])).indices.tolist():
        if token in sh.end_ids:
            continue  # a turn cannot end before its Action is closed
        text = sh.decode([*out, token])
        partial = text.endswith("\ufffd")  # the token ends inside a character: its next byte decides it
        if grammar.admits_partial(now.rstrip("\ufffd")) if partial else grammar.check(text) != BAD:
            return token, text
    if grammar.check(now) == BAD and sh.end_ids:  # nothing can mend it (see above)
        return min(sh.end_ids), now
    with sh.lock:
        forced = sh.tokenizer(grammar.forced(now), add_special_tokens=False)["input_ids"][0]
    return forced, sh.decode([*out, forced])
