"""Decode speed of the local backend against a naive fp32 `model.generate`, side by side.

Both run greedy on the same rendered prompts, in the same process, interleaved question by
question (the machine may be shared, so each round alternates who goes first). Prints tokens/s
for each, `decode speedup: X`, and whether the answers on the fixed questions changed.

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
    print(f"device: {device}, threads: {torch.get_num_threads()}, "
          f"int8 decoder: {fast.quantized} (built in {time.perf_counter() - t:.1f}s)")
    end_ids = sorted(fast._shared.end_ids)

    def naive(q: str) -> tuple[str, int, float, float]:
        ids = torch.tensor([fast._shared.encode([{"role": "user", "content": q}])], device=model.device)
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_tokens,
                                 do_sample=False, eos_token_id=end_ids, pad_token_id=end_ids[0])
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        new = out[0, ids.shape[1]:].tolist()
        text = tok.decode([i for i in new if i not in end_ids], skip_special_tokens=True)
        return text, len(new), dt, dc

    def local(q: str) -> tuple[str, int, float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        done = None
        for item in fast.stream([{"role": "user", "content": q}], stop=(), max_tokens=args.max_tokens):
            if isinstance(item, Completion):
                done = item
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        assert done is not None
        return done.text, done.completion_tokens, dt, dc

    naive(QUESTIONS[0])  # warm both paths once (allocator, kernels)
    local(QUESTIONS[0])
    totals = {"naive": [0, 0.0, 0.0], "local": [0, 0.0, 0.0]}
    answers: dict[str, dict[str, str]] = {"naive": {}, "local": {}}
    for r in range(args.rounds):
        for i, q in enumerate(QUESTIONS):
            order = [("naive", naive), ("local", local)]
            if (r + i) % 2:
                order.reverse()
            for label, fn in order:
                text, n, dt, dc = fn(q)
                totals[label][0] += n
                totals[label][1] += dt
                totals[label][2] += dc
                answers[label][q] = text
    rate = {k: n / s for k, (n, s, _) in totals.items()}
    cpu = {k: n / c for k, (n, _, c) in totals.items()}
    print(f"naive fp32 model.generate: {rate['naive']:.1f} tok/s ({totals['naive'][0]} tokens; {cpu['naive']:.1f} per CPU-second)")
    print(f"local backend:             {rate['local']:.1f} tok/s ({totals['local'][0]} tokens; {cpu['local']:.1f} per CPU-second)")
    # Wall clock is the measure; per CPU-second is the cross-check on a shared machine.
    print(f"decode speedup (per CPU-second): {cpu['local'] / cpu['naive']:.2f}")
    print(f"decode speedup: {rate['local'] / rate['naive']:.2f}")
    same = 0
    for q in QUESTIONS:
        a, b = answers["naive"][q], answers["local"][q]
        if a == b:
            same += 1
            continue
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"\nchanged: {q!r} (first difference at char {k})\n  fp32: {a!r}\n  int8: {b!r}")
    print(f"\nanswers unchanged: {same}/{len(QUESTIONS)}")


if __name__ == "__main__":
    main()
