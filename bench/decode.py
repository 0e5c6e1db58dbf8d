"""Decode speed of the local backend against a naive fp32 `model.generate` and llama.cpp, side by side.

All decode greedily from the same rendered prompts (the same token ids), in one process,
interleaved question by question (each round rotates who goes first, since the machine may be
shared). The decode rate counts the tokens after the first one over the time from the first
token to the last, so the prompt's prefill is left out; the rate with prefill is shown too.
Prints `decode speedup: X` (against naive fp32) and whether the answers to the fixed questions
changed.

The third column is llama.cpp (`llama-cpp-python`) on the very GGUF the bundled base comes from,
with the same number of threads, when that package is importable (it is not a dependency: PyPI
has it as source only); otherwise the column is skipped with the reason. It prints
`vs llama.cpp: X` (the local backend's decode rate over llama.cpp's). `--llama-batch 1` evaluates
prompts one token at a time (a build of llama-cpp-python 0.3.36 crashed in batched prompt
evaluation on a CPU with AMX; one token at a time ran cleanly).

    .venv/bin/python bench/decode.py [--model smollm2] [--max-tokens 48] [--rounds 2] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# this checkout's packages first, not an installed copy, and not bench/train.py for the `train` package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QUESTIONS = [
    "What is the capital of France?",
    "Who wrote the play Romeo and Juliet?",
    "Explain in two sentences why the sky is blue.",
    "Question: Which planet is known as the Red Planet?\nAnswer with a Thought, then Action: finish[answer].",
    "List three uses of copper.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="", help="base model (default: the bundled SmolLM2-135M-Instruct)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch (and llama.cpp) threads (default: all cores)")
    ap.add_argument("--llama-batch", type=int, default=512, help="llama.cpp's prompt batch (n_batch)")
    args = ap.parse_args()

    import torch
    from transformers.generation.streamers import BaseStreamer

    from fireact_core import models
    from fireact_core.backends.base import Completion
    from fireact_core.backends.local import LocalModel

    model, tok = models.load_base(args.model or None)
    device = models.default_device()
    if args.threads:
        torch.set_num_threads(args.threads)
    # The default path (llama.cpp where it is installed, for a base from its GGUF) and torch's own step.
    fast = LocalModel.from_model(model, tok, name="local", gguf=models.gguf_source(args.model or None))
    t = time.perf_counter()
    fast.warm_up()
    print(f"device: {device}, threads: {torch.get_num_threads()}, quantised decoder: {fast.quantized} "
          f"(built in {time.perf_counter() - t:.1f}s), default engine: {fast.engine}")
    on_torch = None if fast.engine.startswith("torch") else LocalModel.from_model(model, tok, name="local")
    end_ids = sorted(fast._shared.end_ids)

    class Stamps(BaseStreamer):
        """Times each token `generate` emits (its first `put` is the prompt)."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value: object) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    def naive(q: str) -> tuple[str, int, float, float]:
        ids = torch.tensor([fast._shared.encode([{"role": "user", "content": q}])], device=model.device)
        stamps = Stamps()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_tokens,
                                 do_sample=False, eos_token_id=end_ids, pad_token_id=end_ids[0], streamer=stamps)
        total = time.perf_counter() - t0
        new = out[0, ids.shape[1]:].tolist()
        text = tok.decode([i for i in new if i not in end_ids], skip_special_tokens=True)
        return text, len(new), stamps.times[-1] - stamps.times[1], total

    def local(q: str, view: LocalModel = fast) -> tuple[str, int, float, float]:
        t0 = time.perf_counter()
        first = done = None
        for item in view.stream([{"role": "user", "content": q}], stop=(), max_tokens=args.max_tokens):
            if isinstance(item, Completion):
                done = item
            elif first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        assert done is not None and first is not None
        return done.text, done.completion_tokens, end - first, end - t0

    engines = [("naive", naive), ("local", local)]
    if on_torch is not None:
        on_torch.warm_up()
        engines.append(("torch", lambda q: local(q, on_torch)))
    llama = llama_cpp_engine(args, models, fast, torch.get_num_threads())
    if isinstance(llama, str):
        print(f"llama.cpp: skipped ({llama})")
    else:
        engines.append(("llama.cpp", llama))
    for _, fn in engines:  # warm every path once
        fn(QUESTIONS[0])
    totals = {k: [0, 0.0, 0.0] for k, _ in engines}  # tokens, decode seconds, total seconds
    answers: dict[str, dict[str, str]] = {k: {} for k, _ in engines}
    for r in range(args.rounds):
        for i, q in enumerate(QUESTIONS):
            shift = (r + i) % len(engines)
            for label, fn in engines[shift:] + engines[:shift]:
                text, n, decode_s, total_s = fn(q)
                totals[label][0] += n
                totals[label][1] += decode_s
                totals[label][2] += total_s
                answers[label][q] = text
    calls = args.rounds * len(QUESTIONS)
    rate = {k: (n - calls) / d for k, (n, d, _) in totals.items()}  # intervals after each first token
    overall = {k: n / s for k, (n, _, s) in totals.items()}
    labels = {"naive": "naive fp32 model.generate", "local": f"local backend ({fast.engine})",
              "torch": f"its torch path ({on_torch.engine if on_torch else ''})", "llama.cpp": "llama.cpp (same GGUF)"}
    for k in totals:
        print(f"{labels[k] + ':':30s}{rate[k]:6.1f} tok/s decoding, {overall[k]:5.1f} tok/s with prefill "
              f"({totals[k][0]} tokens)")
    print(f"speedup with prefill: {overall['local'] / overall['naive']:.2f}")
    print(f"decode speedup: {rate['local'] / rate['naive']:.2f}")
    if "llama.cpp" in totals:
        print(f"vs llama.cpp: {rate['local'] / rate['llama.cpp']:.2f} (with prefill: "
              f"{overall['local'] / overall['llama.cpp']:.2f}; goal >= 0.8 decoding)")
        if "torch" in totals:
            print(f"torch path vs llama.cpp: {rate['torch'] / rate['llama.cpp']:.2f} (with prefill: "
                  f"{overall['torch'] / overall['llama.cpp']:.2f})")
        same_llama = sum(answers["llama.cpp"][q] == answers["local"][q] for q in QUESTIONS)
        why = ("the same engine, but flash attention on here (llama.cpp's default for a context), off in "
               "llama-cpp-python's Llama" if fast.engine.startswith("llama.cpp") else
               "its own Q4_1 kernels, 8-bit activations: not the same arithmetic")
        print(f"answers equal to llama.cpp's: {same_llama}/{len(QUESTIONS)} ({why})")
    same = 0
    for q in QUESTIONS:
        a, b = answers["naive"][q], answers["local"][q]
        if a == b:
            same += 1
            continue
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"\nchanged: {q!r} (first difference at char {k})\n  fp32:  {a!r}\n  local: {b!r}")
    print(f"answers unchanged: {same}/{len(QUESTIONS)}")
    if "torch" in totals:
        same_torch = sum(answers["torch"][q] == answers["naive"][q] for q in QUESTIONS)
        print(f"torch path's answers unchanged: {same_torch}/{len(QUESTIONS)}")


def llama_cpp_engine(args: argparse.Namespace, models: object, fast: object, threads: int) -> object:
    """The llama.cpp column's decode function, or why there is none (a string)."""
    try:
        from llama_cpp import Llama
    except ImportError as e:
        return f"llama-cpp-python is not importable: {e}"
    from fireact_core.bundled import bundled_base, bundled_gguf

    base = bundled_base(args.model or "smollm2")
    gguf = bundled_gguf(base.name) if base else None
    if gguf is None:
        return f"no bundled GGUF for model {args.model or 'smollm2'!r}"
    llm = Llama(model_path=str(gguf), n_threads=threads, n_threads_batch=threads, n_ctx=1024,
                n_batch=args.llama_batch, verbose=False)
    sh = fast._shared
    end_ids = set(sh.end_ids)

    def run(q: str) -> tuple[str, int, float, float]:
        ids = sh.encode([{"role": "user", "content": q}])
        t0 = time.perf_counter()
        stamps: list[float] = []
        new: list[int] = []
        llm.reset()  # no prefix reuse from the last call: every column prefills its whole prompt
        for token in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            stamps.append(time.perf_counter())
            new.append(token)
            if token in end_ids or len(new) >= args.max_tokens:
                break
        total = time.perf_counter() - t0
        text = sh.decode([i for i in new if i not in end_ids])
        return text, len(new), stamps[-1] - stamps[0], total

    return run


if __name__ == "__main__":
    main()
