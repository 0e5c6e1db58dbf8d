"""Training throughput and peak memory: LoRA on fp32 and on bf16 weights, and 4-bit NF4 QLoRA, side by side.

    python bench/train.py                       # CPU: SmolLM2-135M, 6 steps each, batch 2 x <=256 tokens
    python bench/train.py --steps 10 --batch 4 --max-length 384
    python bench/train.py --base meta-llama/Llama-2-7b-chat-hf --only 4bit    # on a CUDA GPU: 7B QLoRA

Each setting runs in its own process (so peak memory is its own): the real trainer (`train.sft`)
on real trajectories (the paper's HotpotQA file when present, else the offline world's). The
first optimiser step is a warm-up and is not timed; tokens/s counts every token fed to the
model (padding included, as the trainer sees them). Peak memory is the process's max RSS, and
on CUDA also `torch.cuda.max_memory_allocated`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy
from fireact_core.paths import REPO as ROOT
from fireact_core.paths import SHARED, TRAJECTORIES

SETTINGS = {"fp32": {"load_in_4bit": False, "activation_checkpointing": False, "dtype": "float32"},
            # What `dtype: auto` picks on a CPU with native bf16 (and on CUDA): bf16 weights under autocast.
            "bf16": {"load_in_4bit": False, "activation_checkpointing": False, "dtype": "bfloat16"},
            "4bit": {"load_in_4bit": True, "activation_checkpointing": True}}


def default_data() -> str:
    shared = Path(os.environ.get("FIREACT_SHARED_DATA", SHARED))
    paper = shared / "finetune" / "alpaca_format" / "hotpotqa.json"
    return str(paper if paper.exists() else TRAJECTORIES)


def worker(args: argparse.Namespace) -> dict:
    import torch
    from transformers import TrainerCallback

    sys.path.insert(0, str(ROOT))
    from train.config import load_config
    from train.sft import build, train_run

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.t: list[float] = []
            self.tokens: list[int] = []

        def on_step_end(self, a, state, control, **kw):  # type: ignore[no-untyped-def]
            self.t.append(time.perf_counter())
            self.tokens.append(state.num_input_tokens_seen)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, {**SETTINGS[args.worker], "base": args.base, "data": [args.data],
                                 "val_size": 0, "max_length": args.max_length, "max_steps": args.steps,
                                 "per_device_train_batch_size": args.batch, "learning_rate": 1e-3,
                                 "warmup_steps": 0, "logging_steps": 1, "save_steps": 10_000, "seed": 0,
                                 "target_modules": args.targets.split(","), "lora_r": 8, "lora_alpha": 16,
                                 "cpu_threads": args.threads, "output_dir": tmp})
        t0 = time.perf_counter()
        run = build(cfg, log=lambda *_: None)
        load_s = time.perf_counter() - t0
        clock = Clock()
        run.trainer.add_callback(clock)
        if run.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        result = train_run(run)
    steps = len(clock.t) - 1
    timed_tokens = clock.tokens[-1] - clock.tokens[0]
    timed_s = clock.t[-1] - clock.t[0]
    out = {"setting": args.worker, "device": run.device, "load_s": round(load_s, 1),
           "tokens_per_s": round(timed_tokens / timed_s, 1), "step_s": round(timed_s / steps, 2),
           "timed_steps": steps, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "loss_first": round(result["losses"][0], 3), "loss_last": round(result["losses"][-1], 3),
           "lora_tensors_changed": result.get("lora_tensors_changed")}
    if run.device == "cuda":
        out["cuda_peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="smollm2")
    p.add_argument("--data", default=default_data())
    p.add_argument("--steps", type=int, default=6, help="optimiser steps (the first is not timed)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--targets", default="q_proj,v_proj")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: every core; 1 is best on a busy CPU)")
    p.add_argument("--only", choices=list(SETTINGS), help="run one setting")
    p.add_argument("--worker", choices=list(SETTINGS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0
    rows = []
    for name in [args.only] if args.only else list(SETTINGS):
        cmd = [sys.executable, __file__, "--worker", name, "--base", args.base, "--data", args.data,
               "--steps", str(args.steps), "--batch", str(args.batch), "--max-length", str(args.max_length),
               "--targets", args.targets, "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")})
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            print(f"{name}: failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        rows.append(json.loads(line[7:]))
    print(f"base {args.base}, data {Path(args.data).name}, batch {args.batch} x <= {args.max_length} tokens, "
          f"LoRA r=8 on {args.targets}, {args.steps} steps ({rows[0]['device']}, {os.cpu_count()} cores, "
          f"threads {args.threads or 'all'})")
    cols = ["setting", "tokens_per_s", "step_s", "peak_rss_mb", "load_s", "loss_first", "loss_last"]
    if "cuda_peak_gb" in rows[0]:
        cols.append("cuda_peak_gb")
    print("  ".join(f"{c:>13}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]!s:>13}" for c in cols))
    by = {r["setting"]: r for r in rows}
    if "fp32" in by:
        a = by["fp32"]
        for name in ("bf16", "4bit"):
            if name in by:
                b = by[name]
                print(f"{name} / fp32: speed x{b['tokens_per_s'] / a['tokens_per_s']:.2f}, "
                      f"peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
