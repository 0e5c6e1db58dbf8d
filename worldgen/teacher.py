"""The scripted teacher: a `Model` that knows the world's facts and writes trajectories.

It speaks the backend protocol (`name`, `stream`, `session`), so it runs inside the real
agent loop with the real corpus tool and the real noisy wrapper: observations are exactly
what the tool returns for its queries, noise is the seeded `NoisyToolbox`'s, and filtering
by answer (EM) is the same as for an LLM teacher. Each call reads the question and the
history from the messages and asks `Policy` for the next turn (see `policy.py`).

Methods: `react`, `cot` (self-contained questions), `reflexion` (the loop's trials: a
first attempt that goes wrong, the reflection the loop asks for, a corrected attempt) and
`reflexion-flat`, the training form of Reflexion. A fine-tuned agent sees only the
question, and its episode ends at `finish`, so the training form is one clean episode:
the first attempt's steps up to its mistake, then a Thought that begins with "let me do a
reflection" (the phrase the paper's own Reflexion data uses) and states the lesson, then
the corrected steps. The wrong `finish` is left out. Being one episode, all its steps are
trial 0 (so tools that keep "the last trial", like `fireact generate`'s exports, keep it
whole); `meta["reflection_step"]` is the index of the reflecting step, and the lesson is
also kept in `Trajectory.reflections`.

    teacher = load("data/world")
    traj = teacher.solve(example, "react", NoiseConfig("none", 0.5, seed=3), seed=0)
    trajs, stats = teacher.training_set(n=1350)
"""

from __future__ import annotations

import copy
import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fireact_core.agent import Agent, AgentConfig
from fireact_core.backends.base import BackendError, Completion, Message
from fireact_core.errors import ConfigError
from fireact_core.methods import load_prompts
from fireact_core.metrics import exact_match
from fireact_core.tools.base import Toolbox
from fireact_core.tools.noisy import NoiseConfig
from fireact_core.trajectory import Trajectory, parse_action, parse_model_turn
from worldgen.files import read_questions, read_world
from worldgen.policy import Planned, Policy, Script
from worldgen.questions import SPLITS

MODES = ("auto", "react", "cot", "reflexion", "reflexion-flat")
# The share of 3-hop bridge trajectories in `training_set`: the questions a 135M model failed most
# (10% EM, mostly stopping one hop early), about 20% of the train questions, raised to 35%.
BRIDGE3_SHARE = 0.35
MAX_PASSES = 3  # trajectories per 3-hop question at most
_REFLECTION_MARK = re.compile(r"let me do a reflection", re.I)


class ScriptedTeacher:
    """A teacher model over one generated world folder (corpus, entities, questions)."""

    methods = MODES[1:]  # what `solve` (and `fireact generate --teacher scripted`) accepts

    def __init__(self, world_dir: str | Path, mode: str = "auto", seed: int = 0) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown scripted-teacher method {mode!r}; choose one of {', '.join(MODES)}")
        from fireact_core.tools import corpus

        self.dir = Path(world_dir)
        self.mode, self.seed = mode, seed
        self.name = "scripted" if mode == "auto" else f"scripted:{mode}"
        self.world = read_world(self.dir)
        self.questions: dict[str, dict[str, Any]] = {}
        for split in SPLITS:
            for q in read_questions(self.dir, split):
                self.questions.setdefault(q["question"], q)
        self.corpus_path = self.dir / "corpus.jsonl"
        self.tools = Toolbox(corpus.load(str(self.corpus_path)))
        self.policy = Policy(self.world, corpus.load(str(self.corpus_path))["search"])
        self.prompts = load_prompts()
        self._reflected: Counter[str] = Counter()  # question -> reflections given (fine-tuned-style prompts)

    # --- the Model protocol -------------------------------------------------------------
    def session(self) -> ScriptedTeacher:
        return self

    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256) -> Iterator[str | Completion]:
        text = self.reply(messages)
        yield text
        prompt = sum(len(m["content"].split()) for m in messages)
        yield Completion(text=text, prompt_tokens=prompt, completion_tokens=len(text.split()), prefill_tokens=prompt)

    def reply(self, messages: Sequence[Message]) -> str:
        """The next assistant text for these messages."""
        msgs = [m for m in messages if m["role"] != "system"]
        first = msgs[0]["content"]
        if first.rstrip().endswith("Reflection:"):
            q = self._question(re.search(r"\nQuestion: (.*)\n", first).group(1) if "\nQuestion: " in first else "")
            self._reflected[q["question"]] += 1
            return self.policy.script(q, "reflexion", 0, self.seed).reflection or "I should search more carefully."
        if first.rstrip().endswith("Correct (yes/no)?"):
            q = self._question(re.search(r"\nQuestion: (.*)\n", first).group(1))
            m = re.search(r"Proposed answer: (.*)\nCorrect", first)
            return "yes" if m and exact_match(m.group(1), q["answer"]) else "no"
        if "\n\nQuestion: " in first:  # a prompted agent: instruction, exemplars, lessons, question
            head, question = first.rsplit("\n\nQuestion: ", 1)
            lessons = head.split("Lessons:\n", 1)[1].count("\n- ") + 1 if "Lessons:\n" in head else 0
            q = self._question(question)
            trial = lessons
            cot = head.startswith(self.prompts.instruction("cot").split("\n")[0])
        else:  # fine-tuned style: the question alone
            q = self._question(first)
            trial = self._reflected[q["question"]]
            cot = False
        mode = self.mode
        if mode == "auto":
            mode = "cot" if cot or q["type"] == "self-contained" else "react"
        script = self.policy.script(q, mode, trial, self.seed)
        return self._next(q, script, _history(msgs[1:]), f"{mode}/{trial}")

    def _question(self, text: str) -> dict[str, Any]:
        q = self.questions.get(text.strip())
        if q is None:
            raise BackendError("the scripted teacher only knows the offline world's questions; "
                               f"not this one: {text.strip()[:80]!r}")
        return q

    def _next(self, q: dict[str, Any], script: Script, history: list[tuple[str, str, str]], tag: str) -> str:
        p, fails = 0, 0
        for action, arg, obs in history:
            s = script.steps[min(p, len(script.steps) - 1)]
            if action == s.action and action != "finish" and obs == self.policy.clean(arg):
                p, fails = p + 1, 0
            else:
                fails += 1
        s = script.steps[min(p, len(script.steps) - 1)]
        if fails == 0:
            return f"Thought: {s.thought}\nAction: {s.action}[{s.arg}]"
        return self._retry(q, s, history[-1][2], fails, f"{tag}/{p}/{fails}")

    def _retry(self, q: dict[str, Any], s: Planned, obs: str, fails: int, tag: str) -> str:
        r = random.Random(f"{self.seed}/{q['id']}/{tag}")
        target = s.target
        if obs.strip() == "None":
            why = r.choice(("The search returned nothing.", "That search gave no result.",
                            "I got None back, so the search failed.", "There was no result."))
        else:
            other = self.policy.title_of_obs(obs)
            why = r.choice((f"This is the article on {other}, not {target}.",
                            f"That result is about {other} rather than {target}; the search returned the wrong page.")) \
                if other and other != target else f"That result is not the article on {target}."
        if fails % 2 == 1 and s.alts:
            query = s.alts[(fails // 2) % len(s.alts)]
            then = r.choice(("I'll rephrase the query.", f"Let me rephrase and search for {query}.",
                             "Let me try a different query."))
        else:
            query = s.arg
            then = r.choice((f"Let me search for {target} again.", "I'll try the same search again.",
                             f"I'll search {target} once more."))
        return f"Thought: {why} {then}\nAction: search[{query}]"

    # --- whole episodes -----------------------------------------------------------------
    def record(self, example: Any) -> dict[str, Any]:
        """The question record for an `Example`, a record dict or a question string."""
        text = example if isinstance(example, str) else example["question"] if isinstance(example, dict) else example.question
        return self._question(text)

    def solve(self, example: Any, method: str = "react", noise: NoiseConfig | None = None,
              seed: int | None = None) -> Trajectory:
        """One trajectory by `method` (react | cot | reflexion | reflexion-flat) through the real agent loop.

        `seed` (default: the teacher's) picks the wording and the planned mistake; `noise` the tool's noise."""
        q = self.record(example)
        seed = self.seed if seed is None else seed
        if method not in MODES[1:]:
            raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(MODES[1:])}")
        teacher = copy.copy(self)  # a view with this method and seed; shares the world and the tools
        teacher.mode, teacher.seed, teacher.name = method, seed, f"scripted:{method}"
        teacher._reflected = Counter()
        loop = {"reflexion-flat": "react"}.get(method, method)
        cfg = AgentConfig(method=loop, noise=noise or NoiseConfig(), trials=2, exemplars=0)
        traj = Agent(teacher, self.tools, cfg).solve(q["question"], gold=q["answer"], task="world")
        noise_tag = f"-{cfg.noise.mode}{cfg.noise.seed}" if cfg.noise.active else ""
        traj.id = f"{q['id']}-{method}-s{seed}{noise_tag}"
        traj.started_at = traj.time_s = 0.0
        for st in traj.steps:
            st.latency_s = 0.0
        traj.meta = {"qid": q["id"], "type": q["type"], "kind": q["kind"], "hops": q["hops"], "teacher": "scripted",
                     "seed": seed}
        if method.startswith("reflexion"):
            traj.meta["mistake"] = self.policy.script(q, method, 0, seed).mistake
        if method == "reflexion-flat":
            at = next((i for i, st in enumerate(traj.steps) if _REFLECTION_MARK.search(st.thought)), None)
            traj.meta["reflection_step"] = at
            traj.method = traj.agent.method = "reflexion"
            traj.reflections = [self.policy.script(q, method, 0, seed).reflection] if at is not None else []
            traj.meta["reflexion_format"] = "flat"
        return traj

    def training_set(self, n: int = 1350, split: str = "train", seed: int = 0, reflexion: float = 0.2,
                     noisy: float = 0.3, bridge3: float = BRIDGE3_SHARE) -> tuple[list[Trajectory], dict[str, Any]]:
        """A mixed, EM-filtered training set of `n` trajectories: CoT for self-contained questions,
        ReAct and flat Reflexion for the rest, a `noisy` share of tool episodes with the noisy tool (p = 0.5).

        `bridge3` is the share of 3-hop bridge trajectories, the hardest questions: trajectory k is a
        3-hop one when floor((k + 1) * bridge3) > floor(k * bridge3), so every prefix keeps the share
        (and `n=25` gives the first 25 of `n=1350`). The 3-hop questions are taken in shuffled order;
        once each has a trajectory they come round again, up to `MAX_PASSES` times, with the next
        wording seed (`seed + pass`, recorded in `meta.seed`) and a fresh draw of method and noise.
        The other questions are taken once each; when one kind runs out the other fills in."""
        if not 0.0 <= bridge3 <= 1.0:
            raise ConfigError(f"bridge3 must be a share in [0, 1], got {bridge3}")
        r = random.Random(f"{seed}/training-set")
        questions = read_questions(self.dir, split)
        r.shuffle(questions)
        three = [q for q in questions if _is_bridge3(q)]
        others = [q for q in questions if not _is_bridge3(q)]
        dropped = [0]

        def stream(qs: list[dict[str, Any]], passes: int) -> Iterator[Trajectory]:
            for p in range(passes):
                for q in qs:
                    d = random.Random(f"{seed}/training-set/{q['id']}/{p}")
                    if q["type"] == "self-contained":
                        method, noise = "cot", None
                    else:
                        method = "reflexion-flat" if d.random() < reflexion else "react"
                        noise = NoiseConfig(d.choice(("none", "random")), 0.5, seed=d.randrange(1_000_000)) \
                            if d.random() < noisy else None
                    traj = self.solve(q, method, noise, seed + p)
                    if traj.em == 1.0:
                        yield traj
                    else:
                        dropped[0] += 1

        streams = {True: stream(three, MAX_PASSES), False: stream(others, 1)}
        kept: list[Trajectory] = []
        while len(kept) < n:
            k = len(kept)
            want3 = math.floor((k + 1) * bridge3) > math.floor(k * bridge3)
            traj = next(streams[want3], None) or next(streams[not want3], None)
            if traj is None:
                break
            kept.append(traj)
        stats = {"requested": n, "bridge3": bridge3, "kept": len(kept), "dropped_by_em": dropped[0],
                 "by_method": dict(sorted(Counter(t.method for t in kept).items())),
                 "by_hops": {str(h): c for h, c in sorted(Counter(t.meta["hops"] for t in kept).items())},
                 "bridge3_questions": len({t.meta["qid"] for t in kept if _is_bridge3(t.meta)}),
                 "by_noise": dict(sorted(Counter(t.agent.noise.mode for t in kept).items())),
                 "noisy_steps": sum(st.noise != "clean" for t in kept for st in t.steps)}
        return kept, stats


def _is_bridge3(meta: dict[str, Any]) -> bool:
    """A 3-hop bridge: a question record, or a trajectory's `meta` (which copies `type` and `hops`)."""
    return meta.get("type") == "bridge" and meta.get("hops") == 3


def _history(turns: Sequence[Message]) -> list[tuple[str, str, str]]:
    """(action, argument, observation) for each assistant turn answered by an Observation."""
    out = []
    for a, u in zip(turns[0::2], turns[1::2]):
        _, action = parse_model_turn(a["content"])
        parsed = parse_action(action) if action else None
        obs = u["content"].removeprefix("Observation:").strip() if u["content"].startswith("Observation:") else u["content"]
        out.append((*(parsed or ("", "")), obs))
    return out


def load(spec: str = "", **opts: Any) -> ScriptedTeacher:
    """`scripted[:METHOD|:WORLD_DIR]` → a teacher. Options: `world=` (folder), `method=`, `seed=`.

    The world folder defaults to the one holding the offline corpus (`data/world`)."""
    mode = opts.get("method") or "auto"
    world = opts.get("world")
    if spec in MODES:
        mode = spec
    elif spec:
        world = spec
    if not world:
        from fireact_core.tools.corpus import resolve_path

        world = resolve_path().parent
    return ScriptedTeacher(world, mode=mode, seed=int(opts.get("seed") or 0))
