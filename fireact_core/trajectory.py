"""The one trajectory record that flows from the agent loop to the UI, the store and the trainer.

A `Trajectory` is a question, a list of `Step`s (Thought / Action / Observation) and a
final answer with its scores. It serialises to JSON (`to_dict`/`from_dict`), renders to the
paper's ReAct text (`render_react`) and parses back from it (`parse_react`), and converts to
chat messages (`to_messages`) in which each assistant turn is Thought + Action and each
Observation is its own user turn, the paper's fine-tuning format.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping
from dataclasses import InitVar, asdict, dataclass, field, fields, replace
from typing import Any

from fireact_core.errors import ConfigError, FormatError
from fireact_core.evidence import LEGACY_META_KEYS, Evidence
from fireact_core.spec import METHODS, AgentSpec

# 2: `agent` is an `AgentSpec` (noise as {mode, p, seed}); format 1 records upgrade on reading.
# 3: one method, the agent's (`agent.method`); the top-level `method` and `chosen_method` the JSON still
#    carries are derived copies for its readers (`chosen_method`: from the steps). Reading a format 1 or 2
#    record, its top-level `method` (what the trajectory was) becomes the agent's: they disagreed on the
#    released records `fireact convert` read (a CoT record's agent said `react`).
FORMAT_VERSION = 3

# What the noisy tool did to an observation.
NOISE_CLEAN = "clean"
NOISE_NONE = "none"  # replaced by the string "None"
NOISE_RANDOM = "random"  # replaced by a random earlier observation
NOISE_KINDS = (NOISE_CLEAN, NOISE_NONE, NOISE_RANDOM)


@dataclass
class Step:
    """One Thought / Action / Observation turn of an agent."""

    thought: str = ""
    action: str = ""  # tool name: search, lookup, finish, ...
    argument: str = ""
    observation: str = ""
    noise: str = NOISE_CLEAN
    tokens_in: int = 0  # prompt tokens this call was billed for (whole context for an API)
    tokens_out: int = 0
    prefill_tokens: int = 0  # tokens actually encoded (local backend reuses cached keys/values)
    latency_s: float = 0.0
    error: str | None = None  # why the action was invalid, the tool failed, ...
    trial: int = 0  # Reflexion trial this step belongs to
    raw: str | None = None  # model text when it differs from the rendered Thought/Action
    has_thought: bool = True  # False for the few released trajectories with no Thought line

    @property
    def action_text(self) -> str:
        """`search[argument]`, the Action line's content."""
        return f"{self.action}[{self.argument}]" if self.action else ""

    def assistant_text(self) -> str:
        """The assistant turn: `Thought: …\\nAction: …`."""
        parts = []
        if self.has_thought:
            parts.append(f"Thought: {self.thought}")
        if self.action or self.raw is None:
            parts.append(f"Action: {self.action_text}")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Trajectory:
    """A whole run of one agent on one question."""

    question: str
    steps: list[Step] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    task: str = ""
    gold: str | None = None
    method: InitVar[str | None] = None  # the agent's method: given here, kept in `agent.method` (the property below)
    agent: AgentSpec = field(default_factory=lambda: AgentSpec.from_dict({}))  # which agent ran (a dict upgrades)
    answer: str | None = None
    em: float | None = None
    f1: float | None = None
    reflections: list[str] = field(default_factory=list)
    preamble: str = ""  # text before the first Thought (e.g. MMLU options), kept verbatim
    status: str = "finished"  # finished | step_limit | failed
    reason: str | None = None  # why it did not finish normally
    started_at: float = 0.0
    time_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    evidence: Evidence | None = None  # what raters said (the store's export writes it; the training rule reads it)
    format_version: int = FORMAT_VERSION

    def __post_init__(self, method: str | None) -> None:
        if not isinstance(self.agent, AgentSpec):
            self.agent = AgentSpec.from_dict(self.agent, method=method)
        if isinstance(self.evidence, Mapping):
            self.evidence = Evidence.from_dict(self.evidence)
        if any(k in self.meta for k in LEGACY_META_KEYS):  # an old export's ratings, loose in meta: moved here
            old = Evidence.from_meta(self.meta)
            self.evidence = self.evidence or old
            self.meta = {k: v for k, v in self.meta.items() if k not in LEGACY_META_KEYS}
        if isinstance(method, str):  # (not the property, read by the dataclass as this argument's default)
            self._set_method(method)

    # --- the method, one field: the agent's -----------------------------------------------
    def _get_method(self) -> str:
        return self.agent.method

    def _set_method(self, method: str) -> None:
        if method != self.agent.method:  # a copy: the spec given may be shared with other trajectories
            try:
                self.agent = replace(self.agent, method=method)
            except ConfigError as e:
                raise FormatError(f"trajectory: {e}") from None

    @property
    def chosen_method(self) -> str | None:
        """What the agent did, from its steps: answer | react | cot | io (`observed_method`); None without steps."""
        return observed_method(self)

    # --- totals -------------------------------------------------------------------------
    def finalize_totals(self) -> None:
        """Recompute token totals from the steps."""
        self.tokens_in = sum(s.tokens_in for s in self.steps)
        self.tokens_out = sum(s.tokens_out for s in self.steps)

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    # --- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["method"], d["chosen_method"] = self.method, self.chosen_method  # derived copies for the JSON's readers
        d["steps"] = [s.to_dict() for s in self.steps]
        d["agent"] = self.agent.to_dict()
        if self.evidence is None:  # unrated runs (every run the app stores) keep their JSON as it was
            del d["evidence"]
        else:
            d["evidence"] = self.evidence.to_dict()
        for name in ("reflections", "meta"):
            d[name] = copy.deepcopy(d[name])
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        if not isinstance(d, dict) or "question" not in d:
            raise FormatError("a trajectory needs at least a 'question' field")
        version = d.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise FormatError(f"trajectory format {version} is newer than this library ({FORMAT_VERSION})")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["steps"] = [Step.from_dict(s) for s in d.get("steps", [])]
        kw["agent"] = AgentSpec.from_dict(d.get("agent"), method=d.get("method"))  # format 1's dicts upgrade here
        kw["format_version"] = FORMAT_VERSION
        traj = cls(**kw)
        if version < 3 and d.get("method") in METHODS:  # the trajectory's own method, kept apart before format 3
            traj.method = d["method"]
        return traj

    # --- ReAct text ---------------------------------------------------------------------
    def render_react(self, final_observation: bool = True) -> str:
        """The paper's ReAct text: `Thought: …\\nAction: …\\nObservation: …` per step."""
        lines: list[str] = [self.preamble] if self.preamble else []
        for i, s in enumerate(self.steps):
            lines.append(s.raw if s.raw is not None else s.assistant_text())
            last = i == len(self.steps) - 1
            if not last or final_observation:
                lines.append(f"Observation: {s.observation}")
        return "\n".join(lines)

    def to_messages(self, system: str | None = None) -> list[dict[str, str]]:
        """Chat messages: user question, then assistant Thought+Action / user Observation turns.

        The preamble (e.g. MMLU options) belongs to the question, so it ends the user turn, as
        in the paper's chat files. An Observation line the model wrote itself (kept in `raw`)
        is its own assistant turn, again as in those files.
        """
        msgs: list[dict[str, str]] = []
        if system:
            msgs.append({"role": "system", "content": system})
        question = f"{self.question}\n{self.preamble}" if self.preamble else self.question
        msgs.append({"role": "user", "content": question})
        for s in self.steps:
            text = s.raw if s.raw is not None else s.assistant_text()
            for part in _OBS_SPLIT_RE.split(text):
                msgs.append({"role": "assistant", "content": part})
            msgs.append({"role": "user", "content": f"Observation: {s.observation}"})
        return msgs


def observed_method(traj: Trajectory) -> str | None:
    """The method a trajectory shows its agent chose. An agent that can search (ReAct, Reflexion,
    the fine-tuned one): `react` when it used a tool (search, lookup, ...) before finishing, else
    `answer` (a one-step answer: finish[...] with no search). One that cannot: its `cot` or `io`.
    None without steps."""
    if not traj.steps:
        return None
    if traj.method in ("cot", "io"):
        return traj.method
    for s in traj.steps:
        if s.action == "finish":
            break
        if s.action:
            return "react"
    return "answer"


Trajectory.method = property(  # type: ignore[assignment]  # the `method` argument, kept in the agent
    Trajectory._get_method, Trajectory._set_method, doc="The agent's method (`agent.method`): io | cot | react | reflexion.")


# --- parsing ------------------------------------------------------------------------------
_ACTION_RE = re.compile(r"^\s*(\w+)\s*\[(.*)\]\s*$", re.S)
_LINE_KEY_RE = re.compile(r"^(Thought|Action|Observation)(?:\s*\d+)?\s*:\s?", re.M)
_OBS_SPLIT_RE = re.compile(r"\n(?=Observation(?:\s*\d+)?\s*:)")


def parse_action(text: str) -> tuple[str, str] | None:
    """`search[Paris]` → ("search", "Paris"); None when it is not of that form."""
    m = _ACTION_RE.match(text.strip())
    if not m:
        return None
    return m.group(1).lower(), m.group(2).strip()


def parse_model_turn(text: str) -> tuple[str | None, str | None]:
    """Split one model completion into (thought, action text). Either may be None if missing.

    Accepts `Thought: … Action: …`, numbered keys (`Thought 1:`), and a bare first line as
    the thought when the key is missing. Anything after an `Observation` key is dropped.
    """
    text = re.split(r"\n\s*Observation(?:\s*\d+)?\s*:", "\n" + text, maxsplit=1)[0].lstrip("\n")
    thought: str | None = None
    action: str | None = None
    m = re.search(r"^\s*Action(?:\s*\d+)?\s*:\s*(.*)", text, re.M | re.S)
    head = text[: m.start()] if m else text
    if m:
        action = m.group(1).strip().split("\n")[0].strip()
    tm = re.search(r"Thought(?:\s*\d+)?\s*:\s*(.*)", head, re.S)
    if tm:
        thought = tm.group(1).strip()
    elif head.strip():
        thought = head.strip()
    return thought, action


def _split_blocks(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Split ReAct text into (preamble, [(key, value, source line(s)), ...]) on line-initial keys."""
    matches = list(_LINE_KEY_RE.finditer(text))
    if not matches:
        raise FormatError("no 'Thought:', 'Action:' or 'Observation:' line found")
    preamble = text[: matches[0].start()]
    blocks = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        source = text[m.start() : end].removesuffix("\n")
        blocks.append((m.group(1), source[m.end() - m.start() :], source))
    return preamble.removesuffix("\n"), blocks


def parse_react(question: str, text: str, **kw: Any) -> Trajectory:
    """Parse the paper's ReAct text (an Alpaca `output`) into a Trajectory.

    Text that the standard rendering would not reproduce (numbered keys, a Thought with no
    Action, an Observation the model wrote itself) is kept verbatim in `Step.raw`, so
    `render_react()` gives the source back. Raises `FormatError` when the text has no steps
    or an Action is not `name[argument]`.
    """
    text = text.rstrip()
    preamble, blocks = _split_blocks(text)
    steps: list[Step] = []
    sources: list[list[str]] = []  # per step, the source lines of its model text
    cur: Step | None = None
    last_observation = ""
    for key, value, source in blocks:
        if key == "Thought" and cur is not None and not cur.action:
            cur.thought += "\n" + value  # a second Thought in the same turn
            sources[-1].append(source)
        elif key == "Thought":
            cur = Step(thought=value)
            steps.append(cur)
            sources.append([source])
        elif key == "Action":
            if cur is None or cur.action:
                cur = Step(has_thought=False)
                steps.append(cur)
                sources.append([])
            parsed = parse_action(value)
            if parsed is None:
                raise FormatError(f"step {len(steps)}: action {value!r} is not of the form name[argument]")
            cur.action, cur.argument = parsed
            sources[-1].append(source)
        elif cur is not None:  # Observation
            cur.observation, last_observation = value, source
            cur = None
        elif steps:
            # Two Observations in a row (a few released Reflexion trajectories): the model wrote
            # the first itself after its Action; it stays in the model text, the second is the
            # environment's.
            sources[-1].append(last_observation)
            steps[-1].observation, last_observation = value, source
        else:
            raise FormatError("an Observation comes before any Thought or Action")
    if not steps:
        raise FormatError("no steps found")
    for step, lines in zip(steps, sources):
        source = "\n".join(lines)
        if not step.action:
            step.error = "Invalid action: (none)"
        if not step.action or source != step.assistant_text():
            step.raw = source
    traj = Trajectory(question=question, steps=steps, preamble=preamble, **kw)
    last = steps[-1]
    if last.action == "finish":
        traj.answer = last.argument
    return traj
