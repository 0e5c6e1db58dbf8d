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
from fireact_core.trajectory import Step, Trajectory, parse_react

FORMATS = ("alpaca", "chat", "trajectories")
_OPTION_RE = re.compile(r"^[A-D]\. ", re.M)


# --- record conversions -------------------------------------------------------------------
def infer_task_method(traj: Trajectory) -> tuple[str, str]:
    """Best guess of (task, method) for a released trajectory, which records neither.

    MMLU questions carry lettered options; StrategyQA answers are yes/no to a question with
    no options; everything else is HotpotQA. One Thought then finish is CoT, else ReAct
    (the released Reflexion trajectories are ReAct-shaped final trials).
    """
    text = traj.question + "\n" + traj.preamble
    answer = (traj.answer or "").strip().lower()
    if len(_OPTION_RE.findall(text)) >= 2:
        task = "mmlu"
    elif answer in ("yes", "no") and not traj.question.lower().startswith(("were ", "are ", "is ", "was ")):
        task = "strategyqa"
    else:
        task = "hotpotqa"
    tools_used = any(s.action not in ("finish", "") for s in traj.steps)
    method = "react" if tools_used else "cot"
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


def from_chat(rec: Any, *, infer: bool = True) -> Trajectory:
    """An OpenAI chat record (`{"messages": [...]}`) → Trajectory."""
    msgs = rec.get("messages") if isinstance(rec, dict) else None
    if not isinstance(msgs, list) or not msgs:
        raise FormatError("a chat record needs a non-empty 'messages' list")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise FormatError(f"message {i} needs a role (system/user/assistant) and string content")
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    body = msgs[1:] if system is not None else msgs
    if body[0]["role"] != "user":
        raise FormatError("the first non-system message must be the user's question")
    question = body[0]["content"]
    parts: list[str] = []
    for m in body[1:]:
        parts.append(m["content"])
    traj = parse_react(question, "\n".join(parts))
    _check_chat_turns(traj, body[1:])
    if system is not None:
        traj.meta["system"] = system
    if infer:
        traj.task, traj.method = infer_task_method(traj)
    return traj


def _check_chat_turns(traj: Trajectory, turns: list[dict[str, str]]) -> None:
    for i, m in enumerate(turns):
        want = "assistant" if i % 2 == 0 else "user"
        if m["role"] != want:
            raise FormatError(f"turn {i + 2} should be the {want}'s, found {m['role']}")
        if want == "user" and not m["content"].startswith("Observation"):
            raise FormatError(f"turn {i + 2}: a user turn after the question must be an Observation")


def to_chat(traj: Trajectory) -> dict[str, list[dict[str, str]]]:
    return {"messages": traj.to_messages(system=traj.meta.get("system"))}


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
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            raise FormatError(f"invalid JSON: {e.msg} (column {e.colno})", path=str(p), line=n) from None
        yield n, rec


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
           "read_trajectories", "to_alpaca", "to_chat", "write_trajectories"]
