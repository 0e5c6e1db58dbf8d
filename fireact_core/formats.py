"""Reading and writing trajectories in the three on-disk formats.

- Alpaca JSON: a list of `{"instruction", "input", "output"}` (the paper's `alpaca_format`);
  `output` is the ReAct text.
- Chat JSONL: one `{"messages": [...]}` a line (the paper's `gpt_format`, OpenAI fine-tuning).
- Trajectory JSONL: one `Trajectory.to_dict()` a line (what `fireact eval`/`generate` write).

Every reader yields `Trajectory`s and raises `FormatError` naming the file and the line
(the 1-based line of the JSONL record, or of the JSON array element's opening brace).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fireact_core.errors import FormatError
from fireact_core.jsonl import iter_jsonl
from fireact_core.metrics import normalize_answer
from fireact_core.trajectory import Step, Trajectory, parse_model_turn, parse_react

FORMATS = ("alpaca", "chat", "trajectories")
_OPTION_RE = re.compile(r"^[A-D]\. ", re.M)


# --- record conversions -------------------------------------------------------------------
_YES_NO = ("yes", "no")
_REFLECTION_RE = re.compile(r"let me do a reflection|how to improve my strategy", re.I)
_ANSWER_IN_TEXT_RE = re.compile(r"\banswer\s*(?:is|:)\s*(yes|no)\b", re.I)


def infer_task_method(traj: Trajectory) -> tuple[str, str]:
    """Best guess of (task, method) for a released trajectory, which records neither.

    Task: lettered options → MMLU; a yes/no answer → StrategyQA, except HotpotQA's comparison
    questions, whose released answers are capitalised ("Yes") or ask about "both"; anything
    else → HotpotQA. On the paper's multitask files (whose HotpotQA part is the HotpotQA
    file) this misplaces 4 of 2,063 records, all with a malformed answer.
    Method: a thought announcing a reflection → Reflexion; any tool call → ReAct; else CoT.
    """
    text = traj.question + "\n" + traj.preamble
    answer = (traj.answer or "").strip()
    words = normalize_answer(answer).split()
    yes_no = words[0] if words and words[0] in _YES_NO else None
    if yes_no is None and (m := _ANSWER_IN_TEXT_RE.search(answer)):
        yes_no = m.group(1).lower()
    if len(_OPTION_RE.findall(text)) >= 2:
        task = "mmlu"
    elif yes_no and not answer[:1].isupper() and not re.search(r"\bboth\b", traj.question, re.I):
        task = "strategyqa"
    else:
        task = "hotpotqa"
    if any(_REFLECTION_RE.search(s.thought) for s in traj.steps):
        method = "reflexion"
    elif any(s.action not in ("finish", "") for s in traj.steps):
        method = "react"
    else:
        method = "cot"
    return task, method


def from_alpaca(rec: Any, *, infer: bool = True) -> Trajectory:
    """An Alpaca record → Trajectory. `input`, when present, is kept in `meta`."""
    if not isinstance(rec, dict) or not isinstance(rec.get("instruction"), str) or not isinstance(rec.get("output"), str):
        raise FormatError("an Alpaca record needs string fields 'instruction' and 'output'")
    traj = parse_react(rec["instruction"], rec["output"])
    traj.meta["alpaca_input"] = rec.get("input", "")
    traj.meta["trailing"] = rec["output"][len(rec["output"].rstrip()):]
    if infer:
        traj.task, traj.method = infer_task_method(traj)
    return traj


def to_alpaca(traj: Trajectory) -> dict[str, str]:
    out = traj.render_react() + traj.meta.get("trailing", "\n")
    return {"instruction": traj.question, "input": traj.meta.get("alpaca_input", ""), "output": out}


# The Alpaca files start an MMLU output with the options (and one StrategyQA output with a
# "Yes or no:" line); the chat files end the question with them. Split them off so that both
# files give the same Trajectory.
_QUESTION_TAIL_RE = re.compile(r"\n(A\. .*\nB\. .*\nC\. .*\nD\. [^\n]*|Yes or no: [^\n]*)\Z", re.S)
_KEY_RE = re.compile(r"^(?:Thought|Action|Observation)(?:\s*\d+)?\s*:", re.M)
_OBSERVATION_RE = re.compile(r"Observation(?:\s*\d+)?\s*:\s?")


def split_question(text: str) -> tuple[str, str]:
    """(question, preamble): lettered options or a 'Yes or no:' line at the end become the preamble."""
    m = _QUESTION_TAIL_RE.search(text)
    return (text[: m.start()], m.group(1)) if m else (text, "")


def from_chat(rec: Any, *, infer: bool = True) -> Trajectory:
    """An OpenAI chat record (`{"messages": [...]}`) → Trajectory.

    Turns are read one at a time: each assistant turn is one step (parsed like ReAct text,
    or kept verbatim in `raw` when it is not Thought/Action), each later user turn must be
    its Observation. Errors name the turn (1-based, counting a system message).
    """
    msgs = rec.get("messages") if isinstance(rec, dict) else None
    if not isinstance(msgs, list) or not msgs:
        raise FormatError("a chat record needs a non-empty 'messages' list")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise FormatError(f"message {i + 1} needs a role (system/user/assistant) and string content")
    offset = 1 if msgs[0]["role"] == "system" else 0
    body = msgs[offset:]
    if not body:
        raise FormatError("the record has a system message but no question")
    meta: dict[str, Any] = {"system": msgs[0]["content"]} if offset else {}
    first = body[0]["content"]
    turns = [(offset + i + 1, m) for i, m in enumerate(body[1:], 1)]
    key = _KEY_RE.search(first)
    if body[0]["role"] == "assistant" and key and key.start() > 0:
        # Two released records put the question at the top of the first assistant turn.
        meta["question_in_assistant"] = True
        turns.insert(0, (offset + 1, {"role": "assistant", "content": first[key.start():]}))
        first = first[: key.start()].removesuffix("\n")
    elif body[0]["role"] != "user":
        raise FormatError(f"message {offset + 1}: the first non-system message must be the user's question")
    question, preamble = split_question(first)
    steps: list[Step] = []
    open_step: Step | None = None  # the step waiting for its Observation
    for n, m in turns:
        content = m["content"]
        if m["role"] == "user":
            obs = _OBSERVATION_RE.match(content)
            if obs is None:
                raise FormatError(f"message {n}: a user turn after the question must be an Observation")
            if open_step is None:
                raise FormatError(f"message {n}: an Observation with no assistant turn before it")
            open_step.observation, open_step = content[obs.end():], None
        elif open_step is not None and _OBSERVATION_RE.match(content):
            # An Observation the model wrote itself (a few released Reflexion records).
            open_step.raw = f"{open_step.raw if open_step.raw is not None else open_step.assistant_text()}\n{content}"
        elif m["role"] == "assistant":
            if open_step is not None:
                raise FormatError(f"message {n}: two assistant turns in a row")
            open_step = _assistant_step(content)
            steps.append(open_step)
        else:
            raise FormatError(f"message {n}: a system message must come first")
    if not steps:
        raise FormatError("the record has a question but no assistant turn")
    traj = Trajectory(question=question, steps=steps, preamble=preamble, meta=meta)
    if steps[-1].action == "finish":
        traj.answer = steps[-1].argument
    if infer:
        traj.task, traj.method = infer_task_method(traj)
    return traj


def _assistant_step(content: str) -> Step:
    """One assistant turn → Step; text that is not Thought/Action is kept verbatim with an error."""
    try:
        parsed = parse_react("", content)
    except FormatError:
        parsed = None
    if parsed is not None and len(parsed.steps) == 1 and not parsed.preamble and not parsed.steps[0].observation:
        return parsed.steps[0]
    thought, action = parse_model_turn(content)
    return Step(thought=thought or "", has_thought=thought is not None, raw=content,
                error=f"Invalid action: {(action or '').strip() or '(none)'}")


def to_chat(traj: Trajectory) -> dict[str, list[dict[str, str]]]:
    msgs = traj.to_messages(system=traj.meta.get("system"))
    if traj.meta.get("question_in_assistant"):
        k = 1 if traj.meta.get("system") else 0
        msgs[k : k + 2] = [{"role": "assistant", "content": f"{msgs[k]['content']}\n{msgs[k + 1]['content']}"}]
    return {"messages": msgs}


def from_record(rec: Any, *, infer: bool = True) -> Trajectory:
    """Any of the three record shapes → Trajectory."""
    if isinstance(rec, dict) and "messages" in rec:
        return from_chat(rec, infer=infer)
    if isinstance(rec, dict) and "instruction" in rec and "output" in rec:
        return from_alpaca(rec, infer=infer)
    if isinstance(rec, dict) and "question" in rec:
        return Trajectory.from_dict(rec)
    keys = ", ".join(sorted(rec)) if isinstance(rec, dict) else type(rec).__name__
    raise FormatError(f"unrecognised record ({keys}); expected Alpaca, chat or trajectory fields")


# --- files --------------------------------------------------------------------------------
def read_trajectories(path: str | Path, *, infer: bool = True) -> Iterator[Trajectory]:
    """Yield the trajectories of an Alpaca JSON, chat JSONL or trajectory JSONL file."""
    p = Path(path)
    if not p.exists():
        raise FormatError("file not found", path=str(p))
    for line, rec in iter_records(p):
        try:
            yield from_record(rec, infer=infer)
        except FormatError as e:
            raise FormatError(e.reason, path=str(p), line=line) from None


def iter_records(p: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed JSON record) for a JSON array file or a JSONL file."""
    text = p.read_text(encoding="utf-8")
    if not text.strip():
        raise FormatError("the file is empty", path=str(p))
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"invalid JSON: {e.msg}", path=str(p), line=e.lineno) from None
        starts = _element_lines(text, len(data))
        for i, rec in enumerate(data):
            yield starts[i], rec
        return
    yield from iter_jsonl(p, text=text)


def _element_lines(text: str, n: int) -> list[int]:
    """Line numbers where the top-level array's elements start."""
    dec = json.JSONDecoder()
    lines, pos = [], text.index("[") + 1
    for _ in range(n):
        while text[pos] in " \t\r\n,":
            pos += 1
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = dec.raw_decode(text, pos)
    return lines


def write_trajectories(trajs: Iterable[Trajectory], path: str | Path, fmt: str) -> int:
    """Write in `fmt` (alpaca | chat | trajectories); return the count."""
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    items = list(trajs)
    if fmt == "alpaca":
        p.write_text(json.dumps([to_alpaca(t) for t in items], indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        rows = (to_chat(t) if fmt == "chat" else t.to_dict() for t in items)
        with p.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(items)


__all__ = ["FORMATS", "Step", "from_alpaca", "from_chat", "from_record", "infer_task_method", "iter_records",
           "read_trajectories", "split_question", "to_alpaca", "to_chat", "write_trajectories"]
