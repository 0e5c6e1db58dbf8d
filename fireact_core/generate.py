"""Teacher generation, the paper's data pipeline: a teacher solves questions with several
methods, and the trajectories whose answer is right (exact match) become fine-tuning data.

    teacher = load_teacher("openai:gpt-4", tools="google")
    result = generate(teacher, load_task("hotpotqa", "dev").examples[:500], ["react", "cot"], "runs/gen")

A teacher is anything with a `name` and `solve(example, method, noise) -> Trajectory`
(`Teacher`). `AgentTeacher` makes any backend one (`openai:…`, `smollm2`, `fake`): a
few-shot prompted `Agent` with fresh tools per trajectory. `TEACHERS` registers others by
dotted path, like the factory: `scripted` is the world generator's (`worldgen.teacher`, a package beside the library),
loaded as `load(rest, seed=…)`.

Output folder:
- `trajectories.jsonl`: the kept trajectories (all fields), appended as each one ends;
- `rejected.jsonl`: wrong or missing answers, and failures (endpoint down, …) with the reason;
- `alpaca.json`, `chat.jsonl`: the kept ones in the paper's two fine-tuning formats
  (for Reflexion, the final trial's steps: the released data's shape);
- `manifest.json`: kept / rejected / failed per task × method, tokens and dollars.

Resumable: a (task, example, method) already in either JSONL is skipped, except failures,
which are retried. Concurrent (`concurrency` threads) under a shared requests-per-minute
limit. Progress goes to stderr, one line per trajectory.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Protocol

from fireact_core import metrics
from fireact_core.backends.base import BackendError, Completion, Message, Model
from fireact_core.errors import ConfigError, FormatError, InputError
from fireact_core.formats import to_alpaca, to_chat
from fireact_core.jsonl import iter_jsonl
from fireact_core.spec import AgentSpec
from fireact_core.tasks import Example
from fireact_core.tools.base import ToolError
from fireact_core.tools.noisy import NoiseConfig
from fireact_core.training_rule import final_trial_view
from fireact_core.trajectory import Trajectory

KEPT, REJECTED, FAILED = "trajectories.jsonl", "rejected.jsonl", "failed"
ALPACA, CHAT, MANIFEST = "alpaca.json", "chat.jsonl", "manifest.json"
TEACHERS: dict[str, str] = {"scripted": "worldgen.teacher:load"}


class Teacher(Protocol):
    """Writes one trajectory for an example by a method (react, cot, reflexion, …)."""

    name: str

    def solve(self, example: Example, method: str, noise: NoiseConfig) -> Trajectory: ...


# --- rate limit ------------------------------------------------------------------------------
class RequestPacer:
    """At most `rpm` call starts a minute, spaced evenly, shared by all threads; None = no limit."""

    def __init__(self, rpm: float | None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class Paced:
    """A `Model` whose calls wait for the limiter."""

    def __init__(self, model: Model, limiter: RequestPacer) -> None:
        self.inner, self.limiter, self.name = model, limiter, model.name

    def session(self) -> Paced:
        return Paced(self.inner.session(), self.limiter)

    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256) -> Iterator[str | Completion]:
        self.limiter.acquire()
        return self.inner.stream(messages, stop=stop, max_tokens=max_tokens)


# --- teachers --------------------------------------------------------------------------------
class AgentTeacher:
    """Any model as a teacher: a few-shot prompted agent, fresh tools for each trajectory."""

    def __init__(self, model: Model, tools: str = "none", *, max_steps: int = 11, max_tokens: int = 200,
                 trials: int = 3, exemplars: int = 2, rpm: float | None = None) -> None:
        from fireact_core.factory import load_tools
        from fireact_core.methods import METHODS

        self.name = model.name
        self.methods = METHODS
        self.model: Model = Paced(model, RequestPacer(rpm)) if rpm else model
        self.spec = AgentSpec(model=model.name, tools=(tools or "none").strip(), max_steps=max_steps,
                              max_tokens=max_tokens, trials=trials, exemplars=exemplars)
        if self.spec.tools.lower() != "none":
            load_tools(self.spec.tools)  # a bad spec or a missing key fails now, before any question

    def solve(self, example: Example, method: str, noise: NoiseConfig) -> Trajectory:
        from fireact_core.build import build_agent

        agent = build_agent(replace(self.spec, method=method, noise=noise), self.model)
        return agent.solve(example.question, gold=example.answer, task=example.task, id=example.id,
                           meta=dict(example.meta))


def load_teacher(spec: str, *, tools: str = "none", seed: int = 0, rpm: float | None = None,
                 **agent_options: Any) -> Teacher:
    """A registered teacher (`scripted[:…]`), or any model spec wrapped in `AgentTeacher`."""
    import importlib

    kind, _, rest = spec.partition(":")
    if kind in TEACHERS:
        module, _, fn = TEACHERS[kind].partition(":")
        try:
            loader = getattr(importlib.import_module(module), fn)
        except ModuleNotFoundError as e:
            raise ConfigError(f"teacher {kind!r} is not available here ({e})") from None
        return loader(rest, seed=seed)
    from fireact_core.factory import load_model

    return AgentTeacher(load_model(spec), tools, rpm=rpm, **agent_options)


# --- bookkeeping -----------------------------------------------------------------------------
def key_of(traj: Trajectory) -> tuple[str, str, str]:
    """(task, example id, requested method): what resuming compares."""
    gen = traj.meta.get("gen") or {}
    return traj.task, str(gen.get("example", traj.id)), str(gen.get("method", traj.method))


def read_jsonl(path: Path) -> list[Trajectory]:
    """Trajectories of a JSONL file (none when it is missing); a torn last line (an interrupted write) is ignored."""
    if not path.is_file():
        return []
    out = []
    for n, rec in iter_jsonl(path, torn_tail=True):
        try:
            out.append(Trajectory.from_dict(rec))
        except FormatError as e:
            raise FormatError(e.reason, path=str(path), line=n) from None
    return out


@dataclass
class Outcome:
    """One finished (example, method)."""

    key: tuple[str, str, str]
    verdict: str  # kept | rejected | failed
    trajectory: Trajectory


@dataclass
class Result:
    out: Path
    manifest: dict[str, Any]
    new: list[Outcome] = field(default_factory=list)
    skipped: int = 0

    def count(self, verdict: str) -> int:
        return sum(o.verdict == verdict for o in self.new)

    @property
    def cost_usd(self) -> float:
        return sum(o.trajectory.cost_usd for o in self.new)


def verdict_of(traj: Trajectory, gold: str | None) -> str:
    if traj.status == "failed":
        return FAILED
    if gold is None or traj.answer is None:
        return "rejected"
    if traj.em is None:
        traj.em = float(metrics.exact_match(traj.answer, gold, task=traj.task))
    return "kept" if traj.em == 1.0 else "rejected"


def _failed(example: Example, method: str, teacher: Teacher, reason: str) -> Trajectory:
    return Trajectory(question=example.question, id=example.id, task=example.task, gold=example.answer, method=method,
                      agent=AgentSpec.from_dict({"model": teacher.name}, method=method), status=FAILED, reason=reason,
                      started_at=time.time(), em=0.0)


def solve_one(teacher: Teacher, example: Example, method: str, noise: NoiseConfig) -> Outcome:
    """One trajectory; a failure outside the program (endpoint, tool, bad question) is recorded, not raised."""
    if noise.active:  # each (example, method) its own stable noise stream, whatever the order or resume
        noise = replace(noise, seed=noise.seed + zlib.crc32(f"{example.id}/{method}".encode()) % 1_000_003)
    try:
        traj = teacher.solve(example, method, noise)
    except (BackendError, ToolError, InputError) as e:
        traj = _failed(example, method, teacher, f"{type(e).__name__}: {e}")
    traj.task = traj.task or example.task
    if traj.gold is None:
        traj.gold = example.answer
    traj.meta = {**traj.meta, "gen": {"example": example.id, "method": method, "teacher": teacher.name}}
    return Outcome(key_of(traj), verdict_of(traj, example.answer), traj)


# --- the run ---------------------------------------------------------------------------------
def generate(teacher: Teacher, examples: Iterable[Example], methods: Sequence[str], out: str | Path, *,
             concurrency: int = 1, noise: NoiseConfig | None = None, progress: bool | IO[str] = True,
             info: dict[str, Any] | None = None) -> Result:
    """Solve each example with each method; keep the right ones; write the folder; resume from it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    noise = noise or NoiseConfig()
    examples = list(examples)
    if not methods:
        raise ConfigError("give at least one method, e.g. --methods react,cot")
    valid = getattr(teacher, "methods", None)
    unknown = [m for m in methods if valid is not None and m not in valid]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(unknown)} for {teacher.name}; choose from {', '.join(valid)}")
    if examples and all(ex.answer is None for ex in examples):
        raise ConfigError("this split has no gold answers, so trajectories cannot be filtered by exact match; "
                          "use a split with answers (e.g. dev)")
    previous = read_jsonl(out / KEPT) + read_jsonl(out / REJECTED)
    done = {key_of(t) for t in previous if t.status != FAILED}
    todo = [(ex, m) for ex in examples for m in methods if (ex.task, ex.id, m) not in done]
    result = Result(out=out, manifest={}, skipped=len(examples) * len(methods) - len(todo))
    log = (sys.stderr if progress is True else progress) or None
    started = time.time()
    if log:
        print(f"fireact generate: {teacher.name}: {len(todo)} to do, {result.skipped} already done "
              f"({len(examples)} questions x {len(methods)} methods) -> {out}", file=log, flush=True)
    try:
        with (out / KEPT).open("a", encoding="utf-8") as kept_f, (out / REJECTED).open("a", encoding="utf-8") as rej_f:
            for outcome in _run(teacher, todo, noise, concurrency):
                f = kept_f if outcome.verdict == "kept" else rej_f
                f.write(json.dumps(outcome.trajectory.to_dict(), ensure_ascii=False) + "\n")
                f.flush()
                result.new.append(outcome)
                if log:
                    _progress(log, result, len(todo), outcome)
    finally:  # also after Ctrl-C: the files reflect what was written
        result.manifest = write_outputs(out, teacher.name, info, run={
            "started_at": started, "seconds": round(time.time() - started, 3), "new": len(result.new),
            "kept": result.count("kept"), "rejected": result.count("rejected"), "failed": result.count(FAILED),
            "cost_usd": round(result.cost_usd, 6)})
    return result


def _run(teacher: Teacher, todo: list[tuple[Example, str]], noise: NoiseConfig, concurrency: int) -> Iterator[Outcome]:
    if concurrency <= 1:
        for ex, m in todo:
            yield solve_one(teacher, ex, m, noise)
        return
    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fireact-gen")
    try:
        futures = [pool.submit(solve_one, teacher, ex, m, noise) for ex, m in todo]
        for fut in cf.as_completed(futures):
            yield fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _progress(log: IO[str], result: Result, total: int, o: Outcome) -> None:
    t = o.trajectory
    task, ex_id, method = o.key
    if o.verdict == "kept":
        what = f"kept ({t.answer})"
    elif o.verdict == FAILED:
        what = f"FAILED: {t.reason}"
    else:
        what = f"rejected (answer {t.answer!r}, gold {t.gold!r}; {t.status})"
    print(f"[{len(result.new)}/{total}] {task} {method} {ex_id}: {what} · ${result.cost_usd:.4f} so far",
          file=log, flush=True)


def summarize(trajs: Iterable[Trajectory]) -> dict[str, Any]:
    """Counts per task x method (the best record of each key), and tokens/dollars over every record."""
    best: dict[tuple[str, str, str], str] = {}
    rank = {"kept": 2, "rejected": 1, FAILED: 0}
    tokens_in = tokens_out = 0
    cost = 0.0
    records = 0
    for t in trajs:
        records += 1
        tokens_in += t.tokens_in
        tokens_out += t.tokens_out
        cost += t.cost_usd
        v = FAILED if t.status == FAILED else "kept" if t.em == 1.0 else "rejected"
        k = key_of(t)
        if rank[v] >= rank.get(best.get(k, FAILED), 0):
            best[k] = v
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for (task, _, method), v in sorted(best.items()):
        c = counts.setdefault(task, {}).setdefault(method, {"kept": 0, "rejected": 0, FAILED: 0})
        c[v] += 1
    totals = {v: sum(c[v] for m in counts.values() for c in m.values()) for v in ("kept", "rejected", FAILED)}
    return {"counts": counts, "totals": totals, "records": records, "tokens_in": tokens_in,
            "tokens_out": tokens_out, "cost_usd": round(cost, 6)}


def write_outputs(out: Path, teacher: str, info: dict[str, Any] | None, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rewrite alpaca.json, chat.jsonl and manifest.json from the two JSONL files."""
    kept_all = read_jsonl(out / KEPT)
    kept: dict[tuple[str, str, str], Trajectory] = {}
    for t in kept_all:
        kept.setdefault(key_of(t), t)
    views = [final_trial_view(t) for t in kept.values()]  # the trainer's view (fireact_core.training_rule)
    (out / ALPACA).write_text(json.dumps([to_alpaca(t) for t in views], indent=4, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    with (out / CHAT).open("w", encoding="utf-8") as f:
        for t in views:
            f.write(json.dumps(to_chat(t), ensure_ascii=False) + "\n")
    manifest_path = out / MANIFEST
    old: dict[str, Any] = {}
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
    manifest = {
        "teacher": teacher, **(info or {}),
        **summarize([*kept_all, *read_jsonl(out / REJECTED)]),
        "files": {"kept": KEPT, "rejected": REJECTED, "alpaca": ALPACA, "chat": CHAT},
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": [*old.get("runs", []), *([{"teacher": teacher, **run}] if run else [])],
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(manifest_path)
    return manifest


def parse_methods(text: str) -> list[str]:
    """`react,cot,reflexion` → a list without repeats."""
    methods = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not methods:
        raise ConfigError("give at least one method, e.g. --methods react,cot")
    return methods
