"""ZeroGPU: one `spaces.GPU` call per battle for its local sides, asking for the time its budget needs.

On ZeroGPU hardware (`SPACES_ZERO_GPU`) a GPU is lent per call of a function wrapped in
`spaces.GPU`, and a call is admitted only while the visitor's remaining daily quota covers the
duration it asks for (spaces 0.51, `spaces/zero/client.py: schedule`). So a battle makes one call
for both local sides (`gpu_runner`), its duration computed from the battle's step
limit and per-call token cap (`battle_seconds`, passed to `spaces.GPU(duration=...)`, which calls
it with the wrapped function's own arguments), and the models load before it, in the main process.
`gpu_worker` is the battle's thread for those sides (`space.runner.run_battle` starts it); the
API sides run in their own threads and never take the GPU.

The per-token time is an estimate, not a measurement on ZeroGPU (no ZeroGPU machine was at hand):
decoding one token of a small model with eager PyTorch at batch 1 is bound by the CPU launching
its kernels, layer after layer, not by the GPU. transformers' own daily benchmark (the
`hf-internal-testing/benchmark_results` dataset, e.g. 2024-09-04/summary.json) measured
google/gemma-2b (18 layers, 5 GB of bf16 weights), eager with its dynamic cache, at 19.7 ms per
token. Assuming its runner's GPU reads about 600 GB/s (an A10G-class card: an assumption, the
file does not say), 8 ms of that is weights and 0.65 ms per layer is overhead; SmolLM2-135M has
30 layers and 0.27 GB of weights, so about 20 ms per token, which a bigger GPU slice does not
shorten. `FIREACT_GPU_TOKEN_S` overrides it: measure it on the Space's hardware with
`bench/decode.py` (seconds per token = 1 / its decoding tok/s).
"""

from __future__ import annotations

import contextvars
import functools
import importlib.util
import itertools
import logging
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from fireact_core.agent import Finished
from fireact_core.errors import FireActError
from fireact_core.redact import redact
from fireact_core.spec import AgentSpec
from fireact_core.tools.base import Tools
from space.runner import Battle, ModelPool, _Ended, _Failed, _pump, _Queued, _Started, agent_events_of

log = logging.getLogger("fireact.app")

TOKEN_S = 0.020  # seconds per decoded token (see the module's docstring for where it comes from)
CALL_S = 0.05  # per model call: the prefill of the new observation (one forward pass) and the tokenizer
START_S = 10.0  # per GPU call: a fresh worker's CUDA start and the weights' move to the GPU
REFLECT_TOKENS = 100  # Reflexion, per extra trial: the self-check (4 tokens) and the reflection (96)
# Per model call on ZeroGPU: above every assistant turn of FireAct's fine-tuning data (HotpotQA:
# 1,385 turns, median 39, 99th percentile 76, longest 102 tokens with SmolLM2's tokenizer), so a
# step the paper's format allows is never cut; 200 (the agent's own default) would double the ask.
GPU_MAX_TOKENS = 128
# spaces forks its GPU worker inside the first step of a call. A fork copies every lock as it is at
# that moment, and loading a model or adapter holds the loader's lock and the base's lock (adapters
# load onto the shared base under it): a worker forked then would wait on them forever. So loads in
# this process and the first step of a GPU call never overlap.
FORK_GUARD = threading.Lock()
TRAINING_REFUSED = ("Training is refused on ZeroGPU hardware: ZeroGPU lends a GPU only inside one visitor's call, "
                    "for seconds, and training needs one for minutes. Train on a machine with a GPU (`fireact train`, "
                    "or `fireact loop --db` on a copy of the database) and push the adapter to the Hub tagged "
                    "fireact: the fine-tuned side offers it. Or switch the Space to dedicated GPU hardware.")


def on_zero_gpu() -> bool:
    """Whether this is ZeroGPU hardware (`SPACES_ZERO_GPU` true, as `spaces.config` reads it)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def token_seconds() -> float:
    """The per-token decode time the durations assume: `$FIREACT_GPU_TOKEN_S`, else `TOKEN_S`."""
    try:
        value = float(os.environ.get("FIREACT_GPU_TOKEN_S") or TOKEN_S)
    except ValueError:
        return TOKEN_S
    return value if 0 < value < 10 else TOKEN_S


def side_seconds(spec: AgentSpec, max_steps: int, max_tokens: int) -> float:
    """The most one side can decode in a battle: every step at the token cap, every Reflexion trial."""
    method = "react" if spec.finetuned else spec.method  # as the battle runs it (`space.runner.battle_spec`)
    steps = max_steps if method in ("react", "reflexion") else 1
    trials = spec.trials if method == "reflexion" else 1
    per_token = token_seconds()
    trial = steps * (max_tokens * per_token + CALL_S)
    return trials * trial + (trials - 1) * (REFLECT_TOKENS * per_token + 2 * CALL_S)


def battle_seconds(sides: Sequence[tuple[int, AgentSpec]], battle: Battle) -> int:
    """`spaces.GPU`'s dynamic duration for one battle's GPU call (the wrapped function's arguments).

    The local sides share one base and its lock, so their forward passes take turns: their
    budgets add up. A default battle (two SmolLM2 sides, 8 steps, 128 tokens a call) asks 52 s."""
    max_tokens = battle.max_tokens or GPU_MAX_TOKENS
    return math.ceil(START_S + sum(side_seconds(spec, battle.max_steps, max_tokens) for _, spec in sides))


def gpu_battle(battle: Battle) -> Battle:
    """The battle as its GPU call runs it: each model call capped at `GPU_MAX_TOKENS`."""
    cap = min(battle.max_tokens or GPU_MAX_TOKENS, GPU_MAX_TOKENS)
    return battle if battle.max_tokens == cap else replace(battle, max_tokens=cap)


def gpu_decorator() -> Callable[[Callable], Callable] | None:
    """`spaces.GPU` with the battle's duration on ZeroGPU hardware; None elsewhere (`spaces` is imported only if installed)."""
    if not on_zero_gpu() or importlib.util.find_spec("spaces") is None:
        return None
    import spaces

    return functools.partial(spaces.GPU, duration=battle_seconds)


def gpu_failure(error: BaseException) -> str:
    """What a side says when its GPU call failed: ZeroGPU's own words (quota spent, no GPU free, the task
    stopped), or the error. spaces raises `gr.Error(message, title=...)` (`spaces/zero/gradio.py: error`)."""
    message = getattr(error, "message", None)
    title = getattr(error, "title", None)
    if not isinstance(message, str):
        return f"the GPU call failed ({type(error).__name__}): {error}"
    text = f"{title}: {message}" if isinstance(title, str) and title and title != "Error" else message
    if "quota" in text.lower():
        return (f"No GPU time for this side: {text.strip()} A side that needs no GPU still runs; "
                "signed-in visitors get a larger daily ZeroGPU quota.")
    if "aborted" in text.lower():
        return f"ZeroGPU stopped this side's GPU task ({text.strip()}): it ran past its time, or its worker failed."
    return f"No GPU for this side: {text.strip()}"


def describe_request(sides: Sequence[tuple[int, AgentSpec]], battle: Battle) -> dict[str, Any]:
    """The GPU call's ask, for the log: sides, step limit, token cap and seconds."""
    return {"sides": len(sides), "max_steps": battle.max_steps, "max_tokens": battle.max_tokens or GPU_MAX_TOKENS,
            "seconds": battle_seconds(sides, battle)}


# --- the battle's GPU call -----------------------------------------------------------------
Side = tuple[int, AgentSpec]  # a side's index in the battle, and its spec
GpuRun = Callable[[list[Side], Battle], Iterator[tuple[int, object]]]


def gpu_runner(gpu: Callable[[Callable], Callable], pool: ModelPool, make_tools: Callable[[str], Tools | None]) -> GpuRun:
    """The battle's local sides, together, wrapped once in `spaces.GPU` (ZeroGPU), for the process's lifetime.

    One call per battle runs every local side (each in its own thread inside it) and yields
    `(side index, event)`: ZeroGPU admits a call only while the visitor's quota covers the time it
    asks for, so two calls would ask twice. ZeroGPU runs the wrapped generator in a forked worker
    that it reuses across calls: the arguments and every event travel pickled, while the pool (and
    any model it holds) and the tool factory come with the fork. It keys its workers by the
    function, so wrapping a fresh closure per battle would fork a new worker each time.
    """

    def on_gpu(sides: list[Side], battle: Battle) -> Iterator[tuple[int, object]]:
        yield from interleave(sides, battle, pool, make_tools)

    return gpu(on_gpu)


def interleave(sides: Sequence[Side], battle: Battle, pool: ModelPool,
               make_tools: Callable[[str], Tools | None]) -> Iterator[tuple[int, object]]:
    """Run several sides at once (a thread each) and yield their events as `(index, event)`, token
    deltas batched per side; a side that raises ends with `_Failed`. Closing the generator stops them."""
    out: queue.Queue = queue.Queue()
    stop = threading.Event()

    def run(i: int, spec: AgentSpec) -> None:
        _pump(i, spec, agent_events_of(spec, battle, pool, make_tools), out, stop)

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(run, i, spec), daemon=True,
                                name=f"fireact-gpu-side-{i}") for i, spec in sides]
    for th in threads:
        th.start()
    ended = 0
    try:
        while ended < len(threads):
            i, ev = out.get()
            if isinstance(ev, _Ended):
                ended += 1
                continue
            yield i, ev
    finally:
        stop.set()


def gpu_worker(sides: list[Side], battle: Battle, pool: ModelPool, out: queue.Queue, stop: threading.Event,
               gpu_run: GpuRun) -> None:
    """The local sides of a battle on ZeroGPU: their slots taken together, their models (adapters
    included) loaded here in the main process, then ONE GPU call for all that loaded. A side whose
    model fails to load fails alone, before the call; a refused or failed call (quota spent, no GPU)
    fails the sides in it, with ZeroGPU's reason; the API sides run on in their own threads."""
    ended: set[int] = set()
    try:
        for i, _ in sides:
            out.put((i, _Queued("waiting for a free model slot…")))
        with pool.slots("local", len(sides), stop) as got:
            if not got:
                return
            ready: list[Side] = []
            for i, spec in sides:
                out.put((i, _Started()))
                try:
                    with FORK_GUARD:
                        pool.load(spec)
                    ready.append((i, spec))
                except FireActError as e:
                    out.put((i, _Failed(redact(str(e)))))
                    ended.add(i)
                except Exception as e:
                    log.exception("side %s (%s) failed to load", i, spec.key)
                    out.put((i, _Failed(redact(f"internal error ({type(e).__name__}): {e}"))))
                    ended.add(i)
            if not ready:
                return
            on_gpu = gpu_battle(battle)
            log.info("ZeroGPU call: %s", describe_request(ready, on_gpu))
            events = gpu_run(ready, on_gpu)
            try:
                with FORK_GUARD:  # the first step schedules the call and may fork a worker
                    first = next(events, None)
                for i, ev in itertools.chain([first] if first is not None else [], events):
                    out.put((i, ev))
                    if isinstance(ev, (Finished, _Failed)):
                        ended.add(i)
                    if stop.is_set():
                        return
            except Exception as e:  # spaces raises gr.Error: quota spent, no GPU free, the task aborted
                log.warning("the GPU call failed: %s", gpu_failure(e))
                for i, _ in ready:
                    if i not in ended:
                        out.put((i, _Failed(redact(gpu_failure(e)))))
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()  # the page went away: spaces tells its worker to stop
    finally:
        for i, _ in sides:
            out.put((i, _Ended()))
