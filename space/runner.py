"""Run two agents at once and merge their event streams into side views for the arena.

Each side runs in its own thread; its events go to one queue, and `run_battle` folds them
into `SideView`s and yields both views every `tick_s` (token deltas are batched, so a fast
model does not flood the page). A side that fails (a model that cannot load, a backend or
tool that raises) ends with an error on its own view; the other side goes on. Per-kind
semaphores (`ModelPool.slot`) cap how many agents use a model kind at once (one local
model, many API calls); the local backend has its own lock as well.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fireact_core.agent import Agent, Finished, StepDone, StepStarted, TokenDelta, TrialStarted
from fireact_core.backends.base import Model
from fireact_core.errors import FireActError
from fireact_core.methods import Prompts, load_prompts
from fireact_core.spec import AgentSpec
from fireact_core.store import redact
from fireact_core.tools.base import Tools
from fireact_core.tools.noisy import NoiseConfig
from fireact_core.trajectory import Trajectory
from space.render import SideView

log = logging.getLogger("fireact.app")
FLUSH_S = 0.03


class ModelPool:
    """Loads models through `loader(spec, adapter)` and caps concurrent use per model kind."""

    def __init__(self, loader: Callable[[str, str | None], Model], limits: dict[str, int] | None = None,
                 default_limit: int = 4) -> None:
        self.loader = loader
        self.limits = dict(limits or {})
        self.default_limit = default_limit
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def semaphore(self, kind: str) -> threading.BoundedSemaphore:
        with self._lock:
            if kind not in self._sems:
                self._sems[kind] = threading.BoundedSemaphore(self.limits.get(kind, self.default_limit))
            return self._sems[kind]

    @contextlib.contextmanager
    def slot(self, kind: str, stop: threading.Event) -> Iterator[bool]:
        """Hold one of the kind's slots; yields False if `stop` was set while waiting."""
        sem = self.semaphore(kind)
        while not sem.acquire(timeout=0.1):
            if stop.is_set():
                yield False
                return
        try:
            yield True
        finally:
            sem.release()

    @contextlib.contextmanager
    def slots(self, kind: str, n: int, stop: threading.Event) -> Iterator[bool]:
        """Hold `n` of the kind's slots, taken all at once (two battles each holding one of the two
        slots a battle needs would wait on each other forever); yields False if `stop` was set while waiting."""
        sem, held = self.semaphore(kind), 0
        n = min(n, self.limits.get(kind, self.default_limit))  # more than the kind has would wait forever
        while True:
            with self._lock:
                while held < n and sem.acquire(blocking=False):
                    held += 1
                if held < n:
                    for _ in range(held):
                        sem.release()
                    held = 0
            if held == n:
                break
            if stop.wait(0.1):
                yield False
                return
        try:
            yield True
        finally:
            for _ in range(n):
                sem.release()

    def load(self, spec: AgentSpec) -> Model:
        return self.loader(spec.model, spec.adapter)


@dataclass
class _Queued:
    message: str


@dataclass
class _Started:
    pass


@dataclass
class _Failed:
    message: str


@dataclass
class _Ended:
    pass


@dataclass
class Battle:
    """What a battle needs besides the two sides."""

    question: str
    gold: str | None = None
    task: str = ""
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    noise_pool: Sequence[str] | None = None
    max_steps: int = 8
    max_tokens: int | None = None  # per model call; None: the agent's own (on ZeroGPU: space.gpu.GPU_MAX_TOKENS)
    meta: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=8)
def _prompts(name: str = "default") -> Prompts:
    return load_prompts(name)  # parsed once per process (a YAML parse per agent costs ~8 ms)


def battle_spec(spec: AgentSpec, battle: Battle) -> AgentSpec:
    """The side's spec as it runs this battle: the battle's noise and limits (a fine-tuned side runs ReAct)."""
    return replace(spec, method="react" if spec.finetuned else spec.method, noise=battle.noise,
                   max_steps=battle.max_steps, max_tokens=battle.max_tokens or spec.max_tokens)


def agent_events(spec: AgentSpec, battle: Battle, model: Model, tools: Tools | None) -> Iterator[object]:
    """One agent's own events on `battle`; its `Finished` trajectory carries the side's spec and cost (summed
    by the agent, once) and, for a local model, the engine that decoded it (recorded by the agent)."""
    agent = Agent(model, tools, battle_spec(spec, battle), prompts=_prompts(spec.prompts), noise_pool=battle.noise_pool)
    yield from agent.run(battle.question, gold=battle.gold, task=battle.task, meta=dict(battle.meta))


def agent_events_of(spec: AgentSpec, battle: Battle, pool: ModelPool,
                    make_tools: Callable[[str], Tools | None]) -> Iterator[object]:
    """A side's agent events, its model from the pool (loaded there already on ZeroGPU's main process)."""
    yield from agent_events(spec, battle, pool.load(spec), make_tools(spec.tools))


def side_events(spec: AgentSpec, battle: Battle, pool: ModelPool, make_tools: Callable[[str], Tools | None],
                stop: threading.Event) -> Iterator[object]:
    """The events of one side that runs here: queued/started markers, then the agent's own events."""
    yield _Queued("waiting for a free model slot…")  # not the kind: in blind mode that would tell the sides apart
    with pool.slot(spec.kind, stop) as got:
        if not got:
            return
        yield _Started()
        for ev in agent_events_of(spec, battle, pool, make_tools):
            yield ev
            if stop.is_set():
                return


def _pump(i: int, spec: AgentSpec, events: Iterator[object], out: queue.Queue, stop: threading.Event) -> None:
    # Token deltas that arrive within FLUSH_S of each other travel as one event (a fast model
    # would otherwise cost a cross-thread wake-up, or on ZeroGPU a pickled message, per token);
    # a slow one still streams per token.
    pending: TokenDelta | None = None
    since = 0.0
    try:
        for ev in events:
            if isinstance(ev, TokenDelta):
                if pending is not None and pending.index == ev.index:
                    pending = TokenDelta(ev.index, pending.text + ev.text)
                else:
                    if pending is not None:
                        out.put((i, pending))
                    pending, since = ev, time.perf_counter()
                if time.perf_counter() - since >= FLUSH_S:
                    out.put((i, pending))
                    pending = None
                continue
            if pending is not None:
                out.put((i, pending))
                pending = None
            out.put((i, ev))
            if stop.is_set():
                return
    except FireActError as e:
        out.put((i, _Failed(redact(str(e)))))
    except Exception as e:  # a side's bug or a failing backend must not take the other side down
        log.exception("side %s (%s) failed", i, spec.key)
        out.put((i, _Failed(redact(f"internal error ({type(e).__name__}): {e}"))))
    finally:
        out.put((i, _Ended()))


def _worker(i: int, spec: AgentSpec, battle: Battle, pool: ModelPool, make_tools: Callable[[str], Tools | None],
            out: queue.Queue, stop: threading.Event) -> None:
    _pump(i, spec, side_events(spec, battle, pool, make_tools, stop), out, stop)


def apply_event(view: SideView, ev: object, t0: float) -> None:
    """Fold one event into a side view."""
    view.elapsed_s = time.perf_counter() - t0
    if isinstance(ev, _Queued):
        view.status, view.message = "queued", ev.message
    elif isinstance(ev, _Started):
        view.status, view.message = "running", None
    elif isinstance(ev, TrialStarted):
        view.trial, view.reflections = ev.trial, list(ev.reflections)
    elif isinstance(ev, StepStarted):
        view.live_index, view.live_text = ev.index, ""
    elif isinstance(ev, TokenDelta):
        view.live_text += ev.text
    elif isinstance(ev, StepDone):
        view.steps.append(ev.step)
        view.live_index, view.live_text = None, ""
    elif isinstance(ev, Finished):
        view.trajectory = ev.trajectory
        view.steps = list(ev.trajectory.steps)
        view.live_index = None
        if ev.trajectory.status == "failed":
            view.status, view.message = "error", ev.trajectory.reason or "the agent failed"
        else:
            view.status = "done"
    elif isinstance(ev, _Failed):
        view.status, view.message, view.live_index = "error", ev.message, None
    elif isinstance(ev, _Ended) and view.status not in ("done", "error"):
        view.status, view.message = "error", view.message or "the agent stopped without an answer"


def failed_record(battle: Battle, spec: AgentSpec, view: SideView) -> Trajectory:
    """The trajectory of a side that ended without one (it raised, or it stopped): status `failed`,
    its error as the reason and the steps it had shown, so it is stored and can be rated like any run."""
    bspec = battle_spec(spec, battle)
    traj = Trajectory(question=battle.question, steps=list(view.steps), task=battle.task, gold=battle.gold,
                      method=bspec.method, agent=bspec, status="failed", reason=view.message or "the agent failed",
                      time_s=view.elapsed_s, meta=dict(battle.meta))
    traj.finalize_totals()
    return traj


def run_battle(battle: Battle, specs: Sequence[AgentSpec], views: Sequence[SideView], *, pool: ModelPool,
               make_tools: Callable[[str], Tools | None], tick_s: float = 0.1,
               gpu_run: Callable | None = None) -> Iterator[Sequence[SideView]]:
    """Run the sides concurrently; yield the (mutated) views as they change, last when all ended.

    Each side's thread runs in a copy of the caller's context, so what Gradio keeps in context
    variables (the request, which ZeroGPU reads to bill the right user) reaches it.
    """
    out: queue.Queue = queue.Queue()
    stop = threading.Event()
    t0 = time.perf_counter()
    # on ZeroGPU the local sides run together in one GPU call; every other side in its own thread
    on_gpu = [(i, s) for i, s in enumerate(specs) if gpu_run is not None and s.kind == "local"]
    gpu_sides = {i for i, _ in on_gpu}
    jobs: list[tuple[Callable[..., None], tuple]] = [
        (_worker, (i, s, battle, pool, make_tools, out, stop)) for i, s in enumerate(specs) if i not in gpu_sides]
    if on_gpu and gpu_run is not None:
        from space.gpu import gpu_worker

        jobs.append((gpu_worker, (on_gpu, battle, pool, out, stop, gpu_run)))
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(fn, *args), daemon=True,
                                name=f"fireact-side-{n}") for n, (fn, args) in enumerate(jobs)]
    for th in threads:
        th.start()
    ended: set[int] = set()
    last = 0.0
    try:
        while len(ended) < len(specs):
            try:
                batch = [out.get(timeout=tick_s)]
            except queue.Empty:
                for v in views:
                    if v.status in ("queued", "running"):
                        v.elapsed_s = time.perf_counter() - t0
                yield views
                last = time.perf_counter()
                continue
            while True:  # fold everything already waiting into one update
                try:
                    batch.append(out.get_nowait())
                except queue.Empty:
                    break
            for i, ev in batch:
                apply_event(views[i], ev, t0)
                if isinstance(ev, _Ended):
                    ended.add(i)
            now = time.perf_counter()
            if len(ended) < len(specs) and (now - last >= tick_s or any(
                    isinstance(ev, (StepDone, Finished, _Failed)) for _, ev in batch)):
                yield views
                last = now
        for spec, v in zip(specs, views):
            if v.trajectory is None:  # the side raised or stopped: its record says so, with the steps it showed
                v.trajectory = failed_record(battle, spec, v)
        yield views
    finally:
        stop.set()  # the page went away: the workers stop after their current event
