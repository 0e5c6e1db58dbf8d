"""Prompt formats: the one renderer of a trajectory for a model, at inference and in training.

The agent's prompts (`Agent`) and the trainer's examples (`train.data`) both come from here, so
what an adapter was trained on and what it is given at inference cannot drift apart.

| format | the model sees |
| --- | --- |
| `chat` | a user turn (the question, or the prompted instruction, exemplars and question), then each step as an assistant turn `Thought/Action` and a user turn `Observation: …` (the chat template is the base's: ChatML, Gemma's turns) |
| `scratchpad` | prompted agents: the user turn, then one assistant turn that grows, Observations inline, each turn opened with `Thought:` |
| `alpaca` | raw text, the FireAct paper's: `ALPACA` with the question as the instruction, then `Thought:/Action:/Observation:` inline in that one response (BOS added, stop at `\\nObservation:`) |
| `text` | raw text: the prompt as it is (the paper's few-shot prompt + question + `\\n`), then the steps inline, as the paper ran its prompted baselines |

A raw-text prompt travels as one message `{"role": "text", ...}`: a model that takes text
(`accepts_text`, the local backend) encodes it as it is, with the tokenizer's BOS; a chat API
gets the same text as one user message (`as_chat`), and the agent's record says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fireact_core.errors import ConfigError
from fireact_core.spec import AUTO, PROMPT_FORMATS
from fireact_core.trajectory import _OBS_SPLIT_RE, Trajectory

TEXT_FORMATS = ("alpaca", "text")  # raw text, no chat template
# The paper's Alpaca prompt (the authors' generation.py `prepare_prompt`, their LoRA script's `generate_prompt`).
ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the request."
          "\n\n### Instruction:\n{question}\n\n### Response:\n")
LEAD = "Thought:"  # what the agent writes to open a turn in the inline formats
TEXT_ROLE = "text"
Message = dict[str, str]


def check(fmt: str, *, auto: bool = False) -> str:
    """`fmt` when it is a known format (or `auto` where allowed), else `ConfigError`."""
    if fmt in PROMPT_FORMATS or (auto and fmt == AUTO):
        return fmt
    allowed = (*PROMPT_FORMATS, AUTO) if auto else PROMPT_FORMATS
    raise ConfigError(f"unknown prompt format {fmt!r}; choose one of {', '.join(allowed)}")


def inline(fmt: str) -> bool:
    """Whether the steps run inline in one text (every format but `chat`), each turn opened with `Thought:`."""
    return fmt != "chat"


def observation(obs: str) -> str:
    return f"Observation: {obs}"


def pad(turns: Sequence[tuple[str, str]]) -> str:
    """Completed turns inline: `<Thought/Action>\\nObservation: <obs>\\n` each (the paper's scratchpad)."""
    return "".join(f"{text}\n{observation(obs)}\n" for text, obs in turns)


def head_text(fmt: str, head: str) -> str:
    """The start of a raw-text prompt: the Alpaca wrapper around `head` (the question), or `head` itself."""
    return ALPACA.format(question=head) if fmt == "alpaca" else head


def prompt(fmt: str, head: str, turns: Sequence[tuple[str, str]] = (), lead: str = "") -> list[Message]:
    """The messages a model is given for one step.

    `head` is the first user turn (the question alone for a fine-tuned agent; for a prompted one the
    instruction, exemplars and question; in the `text` format the raw prompt); `turns` the completed
    (assistant text, observation) pairs; `lead` the start of the reply written for the model (`Thought:`,
    or a re-ask's `Thought: …\\nAction:`), which the model continues.
    """
    check(fmt)
    if fmt in TEXT_FORMATS:
        return [{"role": TEXT_ROLE, "content": head_text(fmt, head) + pad(turns) + lead}]
    msgs: list[Message] = [{"role": "user", "content": head}]
    if fmt == "scratchpad":
        body = pad(turns) + lead
        return msgs + ([{"role": "assistant", "content": body}] if body else [])
    for text, obs in turns:
        msgs += [{"role": "assistant", "content": text}, {"role": "user", "content": observation(obs)}]
    return msgs + ([{"role": "assistant", "content": lead}] if lead else [])


def is_text(messages: Sequence[Message]) -> bool:
    """Whether `messages` is one raw-text prompt."""
    return len(messages) == 1 and messages[0].get("role") == TEXT_ROLE


def as_chat(messages: Sequence[Message]) -> list[Message]:
    """For a model that takes chat messages only: a raw-text prompt becomes one user message, the same text."""
    return [{"role": "user", "content": messages[0]["content"]}] if is_text(messages) else list(messages)


# --- training --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """A piece of a raw-text training example; `agent` pieces are the model's own tokens (the loss)."""

    text: str
    agent: bool


def training_turns(traj: Trajectory) -> tuple[str, list[tuple[str, str | None]]]:
    """The training view of a trajectory: (the question with its preamble, (assistant text, observation) turns).

    The final trial's steps (Reflexion's successful attempt), without a `finish` that is not the last
    step; the closing `Episode finished` observation is None (never shown to the model, never trained on).
    """
    if traj.steps:
        last = traj.steps[-1].trial
        steps = [s for s in traj.steps if s.trial == last]
    else:
        steps = []
    steps = [s for i, s in enumerate(steps) if s.action != "finish" or i == len(steps) - 1]
    question = f"{traj.question}\n{traj.preamble}" if traj.preamble else traj.question
    turns: list[tuple[str, str | None]] = [(s.raw if s.raw is not None else s.assistant_text(), s.observation)
                                           for s in steps]
    if steps and steps[-1].action == "finish":
        turns[-1] = (turns[-1][0], None)
    return question, turns


def training_example(fmt: str, traj: Trajectory) -> list[Message] | list[Segment]:
    """What a fine-tuned agent is trained on, in `fmt`: chat messages (`chat`), or raw-text segments (`alpaca`)."""
    check(fmt)
    question, turns = training_turns(traj)
    if fmt == "chat":
        return training_chat(question, turns)
    if fmt in TEXT_FORMATS:
        return training_text(fmt, question, turns)
    raise ConfigError(f"the {fmt} format is for prompting; train in chat or alpaca")


def training_chat(question: str, turns: Sequence[tuple[str, str | None]]) -> list[Message]:
    """A `chat` training example: the question, then assistant and Observation turns (None: no observation).

    An Observation line the model wrote itself (kept in a step's raw text) is its own assistant turn,
    as in the paper's chat files (`Trajectory.to_messages`)."""
    msgs: list[Message] = [{"role": "user", "content": question}]
    for text, obs in turns:
        msgs += [{"role": "assistant", "content": part} for part in _OBS_SPLIT_RE.split(text)]
        if obs is not None:
            msgs.append({"role": "user", "content": observation(obs)})
    return msgs


def training_text(fmt: str, question: str, turns: Sequence[tuple[str, str | None]]) -> list[Segment]:
    """A raw-text (`alpaca`) training example as segments, the prompt exactly as the agent will see it.

    The agent's pieces are each turn's `Thought/Action` and the `\\nObservation:` key that ends it (the
    stop the loop sees); the observation's text is the tool's. A last turn with no observation ends with
    `\\n` (the end of the response: the trainer appends EOS when it is asked to).
    """
    check(fmt)
    if fmt not in TEXT_FORMATS:
        raise ConfigError(f"{fmt!r} is not a raw-text format")
    segs = [Segment(head_text(fmt, question), False)]
    for text, obs in turns:
        if obs is None:
            segs.append(Segment(text + "\n", True))
        else:
            segs += [Segment(f"{text}\nObservation:", True), Segment(f" {obs}\n", False)]
    return segs


def to_record(segments: Sequence[Segment]) -> dict[str, Any]:
    """Segments as a JSON-able record (`{"segments": [[text, agent], ...]}`) for a dataset row."""
    return {"segments": [[s.text, s.agent] for s in segments]}
