"""ZeroGPU: one `spaces.GPU` call per battle for its local sides, asking for the time its budget needs.

On ZeroGPU hardware (`SPACES_ZERO_GPU`) a GPU is lent per call of a function wrapped in
`spaces.GPU`, and a call is admitted only while the visitor's remaining daily quota covers the
duration it asks for (spaces 0.51, `spaces/zero/client.py: schedule`). So a battle makes one call
for both local sides (`space.runner.gpu_runner`), its duration computed from the battle's step
limit and per-call token cap (`battle_seconds`, passed to `spaces.GPU(duration=...)`, which calls
it with the wrapped function's own arguments), and the models load before it, in the main process.

The per-token time is an estimate, not a measurement on ZeroGPU (no ZeroGPU machine was at hand):
decoding one token of a small model with eager PyTorch at batch 1 is bound by the CPU launching
its kernels, not by the GPU. transformers' own daily benchmark (the `hf-internal-testing/
benchmark_results` dataset, e.g. 2024-09-04/summary.json) measured google/gemma-2b, eager with its
dynamic cache, at 19.7 ms per token; about 8 ms of that is reading its 5 GB of weights, so about
0.65 ms per decoder layer is overhead. SmolLM2-135M has 30 layers and 0.27 GB of weights: about
20 ms per token, and a bigger GPU slice does not shorten it. `FIREACT_GPU_TOKEN_S` overrides it
(measure with `bench/decode.py` on the Space's hardware).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fireact_core.spec import AgentSpec
    from space.runner import Battle

TOKEN_S = 0.020  # seconds per decoded token (see the module's docstring for where it comes from)
CALL_S = 0.05  # per model call: the prefill of the new observation (one forward pass) and the tokenizer
START_S = 10.0  # per GPU call: a fresh worker's CUDA start and the weights' move to the GPU
REFLECT_TOKENS = 100  # Reflexion, per extra trial: the self-check (4 tokens) and the reflection (96)
# Per model call on ZeroGPU: above every assistant turn of FireAct's fine-tuning data (HotpotQA:
# 1,385 turns, median 39, 99th percentile 76, longest 102 tokens with SmolLM2's tokenizer), so a
# step the paper's format allows is never cut; 200 (the agent's own default) would double the ask.
GPU_MAX_TOKENS = 128
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
    steps = max_steps if spec.method in ("react", "reflexion") else 1
    trials = spec.trials if spec.method == "reflexion" else 1
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
    from dataclasses import replace

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
