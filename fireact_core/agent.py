"""The agent loop: run → trial → step → query → execute, as a generator of events.

`Agent.run()` yields `TrialStarted`, `StepStarted`, `TokenDelta`, `StepDone` and, last,
`Finished` with the `Trajectory`, so a terminal or a web UI can stream it. Errors caused by
the model (an unparseable action, a failing tool) become observations and the loop goes
on; a `BackendError` ends the trajectory as failed with its reason; anything else is a bug
and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from fireact_core import metrics
from fireact_core import prompt_formats as pf
from fireact_core.backends.base import BackendError, Completion, Message, Model
from fireact_core.backends.grammar import ActionGrammar
from fireact_core.errors import ConfigError, check_question
from fireact_core.known_adapters import resolve_format
from fireact_core.methods import Prompts, load_prompts
from fireact_core.redact import redact
from fireact_core.spec import AgentConfig, AgentSpec
from fireact_core.tools.base import ToolResult, Tools
from fireact_core.tools.noisy import NoisyToolbox
from fireact_core.trajectory import Step, Trajectory, parse_action, parse_model_turn

STOP = ("\nObservation:", "\nObservation ")


@dataclass
class TrialStarted:
    trial: int
    reflections: list[str]


@dataclass
class StepStarted:
    index: int
    trial: int


@dataclass
class TokenDelta:
    index: int
    text: str


@dataclass
class StepDone:
    step: Step
    index: int


@dataclass
class Finished:
    trajectory: Trajectory


Event = TrialStarted | StepStarted | TokenDelta | StepDone | Finished


class Agent:
    """One agent: a model, its tools and its configuration.

    `config` is an `AgentSpec` (what `build_agent` passes; it becomes each trajectory's `agent`
    record) or a bare `AgentConfig` (the record then names the model by `model.name`).
    """

    def __init__(self, model: Model, tools: Tools | None, config: AgentConfig | None = None, *,
                 prompts: Prompts | None = None, noise_pool: Sequence[str] | None = None) -> None:
        self.model = model
        self.tools = tools
        self.config = config or AgentConfig()
        self.prompts = prompts or load_prompts(self.config.prompts)
        self.format = effective_format(self.config, self.prompts)
        self._as_chat = False  # this trial's raw-text prompt goes to a chat-only model as one user message
        self.noise_pool = noise_pool
        self._cost_usd = 0.0  # dollars spent by the current run (API backends report it per call)

    # --- run ------------------------------------------------------------------------------
    def solve(self, question: str, **kw: object) -> Trajectory:
        """Run to the end and return the trajectory."""
        for event in self.run(question, **kw):  # type: ignore[arg-type]
            if isinstance(event, Finished):
                return event.trajectory
        raise AssertionError("the agent loop ended without Finished")

    def run(self, question: str, *, gold: str | None = None, task: str = "", id: str | None = None,
            meta: dict | None = None) -> Iterator[Event]:
        cfg = self.config
        question = check_question(question)
        if cfg.constrained and not getattr(self.model, "supports_constraint", False):
            raise ConfigError(f"{self.model.name}: constrained decoding needs a local model")
        traj = Trajectory(question=question, gold=gold, task=task, method=cfg.method, meta=dict(meta or {}),
                          agent=self.spec(), started_at=time.time())
        if id:
            traj.id = id
        t0 = time.perf_counter()
        self._cost_usd = 0.0
        self._engines: dict[str, None] = {}  # what computed each call's logits, in order (a local model says)
        trials = cfg.trials if cfg.method == "reflexion" else 1
        try:
            for trial in range(trials):
                yield TrialStarted(trial, list(traj.reflections))
                yield from self._trial(traj, trial)
                if trial == trials - 1 or traj.status == "failed" or self._succeeded(traj, trial):
                    break
                traj.reflections.append(self._reflect(traj, trial))
        except BackendError as e:
            traj.status, traj.reason = "failed", redact(f"model error: {e}")  # SDK errors may echo a key
        traj.time_s = time.perf_counter() - t0
        # what decoded it, for every caller: the calls' own engines (one session may differ from the view's)
        engine = " + ".join(self._engines) or getattr(self.model, "engine", None)
        if isinstance(engine, str) and engine:
            traj.meta.setdefault("engine", engine)
        traj.finalize_totals()
        traj.cost_usd = self._cost_usd
        if gold is not None and traj.answer is not None:
            traj.em = float(metrics.exact_match(traj.answer, gold, task=task))
            traj.f1 = metrics.f1(traj.answer, gold, task=task)
        elif gold is not None:
            traj.em, traj.f1 = 0.0, 0.0
        yield Finished(traj)

    def spec(self) -> AgentSpec:
        """The record of this agent that its trajectories carry (a copy: a trajectory's edits stay its own).

        Its `exemplars` is the number the prompt really holds (asking for 6 of a set of 2 gives 2)."""
        cfg = self.config
        spec = replace(cfg) if isinstance(cfg, AgentSpec) else AgentSpec(
            model=self.model.name, tools="", **{k: getattr(cfg, k) for k in cfg.__dataclass_fields__})
        spec.prompt_format = self.format
        if not spec.finetuned:
            method = "react" if spec.method == "reflexion" else spec.method
            held = len(self.prompts.examples.get(method, []))
            spec.exemplars = held if self.prompts.raw else min(spec.exemplars, held)  # a raw file is given whole
        return spec

    # --- one trial -----------------------------------------------------------------------
    def _trial(self, traj: Trajectory, trial: int) -> Iterator[Event]:
        cfg = self.config
        tools = self._tools()
        session = self.model.session()
        head = self._prompt(traj.question, traj.reflections, traj.task)
        turns: list[tuple[str, str]] = []  # this trial's (assistant text, observation) so far
        use_tools = cfg.method in ("react", "reflexion")
        max_steps = cfg.max_steps if use_tools else 1
        actions = tools.names() if tools is not None and use_tools else []
        self._as_chat = self.format in pf.TEXT_FORMATS and not getattr(session, "accepts_text", False)
        if self._as_chat:  # a chat API: the raw text goes as one user message
            traj.meta["prompt_sent_as"] = "one user message (the model takes chat messages only)"
        traj.answer, traj.status, traj.reason = None, "finished", None
        for _ in range(max_steps):
            index = len(traj.steps)
            yield StepStarted(index, trial)
            step = Step(trial=trial)
            t = time.perf_counter()
            source = "\n".join([traj.question, *(s.observation for s in traj.steps if s.trial == trial)]) \
                if cfg.extractive else None
            text = yield from self._query(session, head, turns, step, index, actions, source)
            self._execute(step, text, tools, use_tools, traj)
            step.latency_s = time.perf_counter() - t
            traj.steps.append(step)
            yield StepDone(step, index)
            if step.action == "finish" and step.error is None:
                return
            turns.append((step.raw or step.assistant_text(), step.observation))
        traj.status = "step_limit"
        traj.reason = f"reached the step limit ({max_steps}) without finish[...]"
        traj.answer = ""

    def _query(self, session: Model, head: str, turns: list[tuple[str, str]], step: Step, index: int,
               actions: Sequence[str], source: str | None) -> Iterator[Event]:
        """Ask the model for Thought + Action; re-ask once for a missing Action.

        The prompt is `head` and this trial's `turns` in the agent's format (`prompt_formats`). In the
        inline formats (scratchpad, alpaca, text) the turn opens with `Thought:` written for the model,
        as the exemplars' turns and the paper's runs do.
        """
        fmt = self.format
        lead = pf.LEAD if pf.inline(fmt) else ""
        if lead:
            yield TokenDelta(index, lead)
        text = yield from self._call(session, pf.prompt(fmt, head, turns, lead), step, index, actions, lead, source)
        # A chat API starts a fresh reply instead of continuing the turn, often with its own "Thought:".
        text = lead + (text.lstrip()[len(lead):] if lead and text.lstrip().startswith(lead) else text)
        thought, action = parse_model_turn(text)
        if action is None or parse_action(action) is None:
            if thought and self.config.constrained:  # the grammar's Thought is one line
                thought = " ".join(thought.split())
            prefix = f"Thought: {thought}\nAction:" if thought else "Action:"
            yield TokenDelta(index, "\n")
            more = yield from self._call(session, pf.prompt(fmt, head, turns, prefix), step, index, actions, prefix,
                                         source)
            text = f"{prefix} {more.strip()}"
        return text

    def _call(self, session: Model, messages: Sequence[Message], step: Step, index: int,
              actions: Sequence[str] = (), prefix: str = "", source: str | None = None) -> Iterator[Event]:
        done: Completion | None = None
        kw = {}
        if self.config.constrained:  # the grammar reads the whole turn: a bare "Action:" re-ask had an empty Thought
            turn = prefix if not prefix or prefix.startswith("Thought") else "Thought:\n" + prefix
            question = source.split("\n", 1)[0] if source is not None else ""
            kw["constraint"] = ActionGrammar.for_tools(actions, turn, source, question)
        if self._as_chat:
            messages = pf.as_chat(messages)
        for item in session.stream(messages, stop=STOP, max_tokens=self.config.max_tokens, **kw):
            if isinstance(item, Completion):
                done = item
            else:
                yield TokenDelta(index, item)
        if done is None:
            raise BackendError(f"{self.model.name}: the stream ended without a completion")
        step.tokens_in += done.prompt_tokens
        step.tokens_out += done.completion_tokens
        step.prefill_tokens += done.prefill_tokens
        self._cost_usd += done.cost_usd
        if done.engine:
            self._engines[done.engine] = None
        return done.text

    def _execute(self, step: Step, text: str, tools: Tools | None, use_tools: bool, traj: Trajectory) -> None:
        thought, action_text = parse_model_turn(text)
        step.thought, step.has_thought = thought or "", thought is not None
        parsed = parse_action(action_text) if action_text else None
        if parsed is None:
            step.raw = text.strip()
            shown = (action_text or "").strip() or "(none)"
            step.error = f"Invalid action: {shown}. Use one of: {self._valid_actions(tools, use_tools)}."
            step.observation = step.error
            return
        step.action, step.argument = parsed
        if step.action == "finish":
            traj.answer = step.argument
            reward = metrics.exact_match(step.argument, traj.gold, task=traj.task) if traj.gold is not None else None
            step.observation = "Episode finished" + (f", reward = {reward}" if reward is not None else ".")
            return
        if not use_tools or tools is None:
            step.error = f"Invalid action: {step.action}[...] is not available with this method; use finish[answer]."
            step.observation = step.error
            return
        result: ToolResult = tools.run(step.action, step.argument)
        # a tool's reply (a search result, an error page) is outside text: no key of ours leaves in it
        step.observation, step.noise = redact(result.observation), result.noise
        step.error = redact(result.error) if result.error else result.error

    # --- helpers -------------------------------------------------------------------------
    def _tools(self) -> Tools | None:
        if self.tools is None:
            return None
        if self.config.noise.active:
            return NoisyToolbox(self.tools, self.config.noise, pool=self.noise_pool)
        return self.tools

    def _valid_actions(self, tools: Tools | None, use_tools: bool) -> str:
        names = [f"{n}[...]" for n in (tools.names() if tools and use_tools else [])]
        return ", ".join([*names, "finish[answer]"])

    def _prompt(self, question: str, reflections: Sequence[str], task: str = "") -> str:
        """The head of the prompt (`prompt_formats.prompt`): the question alone for a fine-tuned agent; for a
        prompted one the instruction, exemplars and question, or a raw prompt file (the paper's) and the
        question. In the `text` format it ends with a newline, as `prompt + question + "\\n"` in the paper."""
        cfg = self.config
        if cfg.finetuned:
            return question + "\n" if self.format == "text" else question
        method = "react" if cfg.method == "reflexion" else cfg.method
        lessons = ("Your earlier attempts at this question failed. Lessons:\n" + "\n".join(f"- {r}" for r in reflections)
                   if reflections else "")
        raw = self.prompts.raw_prompt(method, task)
        if raw is not None:  # verbatim: the file's instruction and exemplars, then the question
            content = raw + (lessons + "\n\n" if lessons else "") + question
        else:
            tools_desc = self.tools.describe() if self.tools is not None else ""
            content = self.prompts.instruction(method, tools=tools_desc)
            shots = self.prompts.exemplars(method, cfg.exemplars, question)
            if shots:
                content += "\n\nHere are some examples.\n\n" + shots
            if lessons:
                content += "\n\n" + lessons
            content += f"\n\nQuestion: {question}"
        return content + "\n" if self.format == "text" else content

    def _succeeded(self, traj: Trajectory, trial: int) -> bool:
        if traj.status != "finished" or not traj.answer:
            return False
        if traj.gold is not None:
            return metrics.exact_match(traj.answer, traj.gold, task=traj.task)
        verdict = self._ask(self.prompts.instruction("self_eval") + "\n\n" + self._attempt_text(traj, trial)
                            + f"\nProposed answer: {traj.answer}\nCorrect (yes/no)?", max_tokens=4)
        return verdict.strip().lower().startswith("yes")

    def _reflect(self, traj: Trajectory, trial: int) -> str:
        text = self._ask(self.prompts.instruction("reflect") + "\n\n" + self._attempt_text(traj, trial)
                         + "\n\nReflection:", max_tokens=96)
        return " ".join(text.split()) or "The previous attempt failed; search more carefully."

    def _attempt_text(self, traj: Trajectory, trial: int) -> str:
        attempt = Trajectory(question=traj.question, steps=[s for s in traj.steps if s.trial == trial])
        return f"Question: {traj.question}\n{attempt.render_react()}"

    def _ask(self, content: str, max_tokens: int) -> str:
        done: Completion | None = None
        for item in self.model.session().stream([{"role": "user", "content": content}], stop=("\n\n",),
                                                max_tokens=max_tokens):
            if isinstance(item, Completion):
                done = item
        if done is not None:
            self._cost_usd += done.cost_usd
            if done.engine:
                self._engines[done.engine] = None
        return done.text if done else ""


def effective_format(config: AgentConfig, prompts: Prompts) -> str:
    """The format an agent runs in: `auto` resolved (a raw prompts file: `text`, else `chat`); a fine-tuned agent
    given `scratchpad`, a prompting format no adapter is trained in, runs in `chat`."""
    fmt = config.prompt_format
    if fmt == pf.AUTO and config.finetuned:  # its adapter's own format (its manifest, or the known adapters' table)
        fmt = resolve_format(config)[0]
    elif fmt == pf.AUTO:
        return "text" if prompts.raw else "chat"
    return "chat" if config.finetuned and fmt == "scratchpad" else fmt
