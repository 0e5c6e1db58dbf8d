"""Resident memory over a CPU training run, with and without `trim_memory` (freed heap pages back).

On CPU glibc keeps the pages of freed activations for reuse; with `trim_memory: true` the
trainer calls `malloc_trim(0)` after every step (`train/callbacks.py`, `memory_watch`). This runs
the default recipe (`smollm2-135m-world`: batch 8 × up to 768 tokens) for `--steps` steps each
way, in a process of its own, and prints resident memory between steps, the peak and the time,
side by side. (Over its two epochs the recipe reached 24 GB and was killed on a 24 GB machine.)

    python bench/train_memory.py --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy
from fireact_core.paths import REPO as ROOT


def rss_gb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**30


def worker(trim: bool, steps: int, threads: int) -> dict:
    from transformers import TrainerCallback

    from train import sft
    from train.config import load_config

    out = tempfile.mkdtemp(prefix="fireact-train-memory-")
    cfg = load_config("smollm2-135m-world", [f"max_steps={steps}", f"output_dir={out}", f"cpu_threads={threads}",
                                             "val_size=0", "save_steps=1000000", f"trim_memory={str(trim).lower()}"])
    run = sft.build(cfg, log=lambda *_: None)
    rss: list[float] = []

    class Record(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):  # after the previous step's trim
            rss.append(rss_gb())

    run.trainer.add_callback(Record())
    t = time.perf_counter()
    result = sft.train_run(run)
    rss.append(rss_gb())
    return {"rss": rss, "peak": result.get("peak_rss_gb"), "seconds": time.perf_counter() - t}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", choices=["trim", "keep"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker == "trim", a.steps, a.threads)))
        return 0
    if not Path("/proc/self/statm").exists():
        raise SystemExit("this benchmark reads /proc (Linux)")
    res = {}
    for mode in ("keep", "trim"):
        cmd = [sys.executable, __file__, "--worker", mode, "--steps", str(a.steps), "--threads", str(a.threads)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", **os.environ})
        if proc.returncode:
            raise SystemExit(f"{mode} failed:\n{proc.stderr[-2000:]}")
        res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    marks = sorted({1, *range(10, a.steps + 1, 10), a.steps})
    print(f"recipe smollm2-135m-world, {a.steps} steps, {a.threads} threads; resident memory (GB) after step:\n")
    print("| step | " + " | ".join(str(m) for m in marks) + " | peak | time |")
    print("| --- |" + " ---: |" * (len(marks) + 2))
    for mode, label in (("keep", "freed pages kept (the default)"), ("trim", "trim_memory: malloc_trim after each step")):
        r = res[mode]
        cells = [f"{r['rss'][m]:.1f}" for m in marks]
        print(f"| {label} | " + " | ".join(cells) + f" | {r['peak']:.1f} | {r['seconds']:.0f} s |")
    k, t = res["keep"], res["trim"]
    print(f"\ngrowth from step 1 to {a.steps}: kept {k['rss'][a.steps] - k['rss'][1]:+.1f} GB, "
          f"trimmed {t['rss'][a.steps] - t['rss'][1]:+.1f} GB; peak ratio trimmed/kept {t['peak'] / k['peak']:.2f}; "
          f"time ratio {t['seconds'] / k['seconds']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
