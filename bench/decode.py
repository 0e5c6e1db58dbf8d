"""Decode speed of the local backend against a naive fp32 `model.generate`, side by side.

Both decode greedily from the same rendered prompts, in one process, interleaved question by
question (each round alternates who goes first, since the machine may be shared). The decode
rate counts the tokens after the first one over the time from the first token to the last, so
the prompt's prefill (the same fp32 work in both) is left out; the rate with prefill is shown
too. Prints `decode speedup: X` and whether the answers to the fixed questions changed.

    .venv/bin/python bench/decode.py [--model smollm2] [--max-tokens 48] [--rounds 2] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time

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
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
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
    fast = LocalModel.from_model(model, tok, name="local")
    t = time.perf_counter()
    fast.warm_up()
    print(f"device: {device}, threads: {torch.get_num_threads()}, quantised decoder: {fast.quantized} "
          f"(built in {time.perf_counter() - t:.1f}s)")
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

    def local(q: str) -> tuple[str, int, float, float]:
        t0 = time.perf_counter()
        first = done = None
        for item in fast.stream([{"role": "user", "content": q}], stop=(), max_tokens=args.max_tokens):
            if isinstance(item, Completion):
                done = item
            elif first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        assert done is not None and first is not None
        return done.text, done.completion_tokens, end - first, end - t0

    naive(QUESTIONS[0])  # warm both paths once
    local(QUESTIONS[0])
    totals = {k: [0, 0.0, 0.0] for k in ("naive", "local")}  # tokens, decode seconds, total seconds
    answers: dict[str, dict[str, str]] = {"naive": {}, "local": {}}
    for r in range(args.rounds):
        for i, q in enumerate(QUESTIONS):
            order = [("naive", naive), ("local", local)]
            if (r + i) % 2:
                order.reverse()
            for label, fn in order:
                text, n, decode_s, total_s = fn(q)
                totals[label][0] += n
                totals[label][1] += decode_s
                totals[label][2] += total_s
                answers[label][q] = text
    calls = args.rounds * len(QUESTIONS)
    rate = {k: (n - calls) / d for k, (n, d, _) in totals.items()}  # intervals after each first token
    overall = {k: n / s for k, (n, _, s) in totals.items()}
    for k, label in (("naive", "naive fp32 model.generate"), ("local", "local backend")):
        print(f"{label + ':':27s}{rate[k]:6.1f} tok/s decoding, {overall[k]:5.1f} tok/s with prefill "
              f"({totals[k][0]} tokens)")
    print(f"speedup with prefill: {overall['local'] / overall['naive']:.2f}")
    print(f"decode speedup: {rate['local'] / rate['naive']:.2f}")
    same = 0
    for q in QUESTIONS:
        a, b = answers["naive"][q], answers["local"][q]
        if a == b:
            same += 1
            continue
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"\nchanged: {q!r} (first difference at char {k})\n  fp32:  {a!r}\n  local: {b!r}")
    print(f"answers unchanged: {same}/{len(QUESTIONS)}")


if __name__ == "__main__":
    main()
