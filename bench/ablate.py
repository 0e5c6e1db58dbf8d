"""Ablations on the offline world: the data-scaling curve, and ReAct-only against multi-method data.

Each setting trains the default adapter's recipe (`smollm2-135m-world`: LoRA r=8 on every
linear layer, two epochs) on a seeded sample of the world's teacher trajectories, then runs the
adapter with `fireact eval` on the first `--limit` test questions (noise off), in `--jobs`
processes of one torch thread each. The default adapter (all 1,160 training trajectories) is
evaluated the same way, as the curve's last point. Samples, adapters and trajectories go to
`--out-dir`; a rerun skips every step whose output exists. Prints a Markdown table.

    python bench/ablate.py --sizes 100 200 500 --react-only 500 --limit 100
    python bench/ablate.py --default-from runs/reproduce     # reuse the reproduction's fine-tuned runs
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAJECTORIES = ROOT / "data" / "world" / "trajectories" / "train.jsonl"
RECIPE = "smollm2-135m-world"


def sample(out: Path, n: int, *, react_only: bool, seed: int) -> Path:
    """`n` teacher trajectories drawn with `seed` (all methods, or ReAct only) as JSONL."""
    if out.exists():
        return out
    lines = TRAJECTORIES.read_text(encoding="utf-8").splitlines()
    if react_only:
        lines = [ln for ln in lines if json.loads(ln)["method"] == "react"]
    if n > len(lines):
        raise SystemExit(f"asked for {n} trajectories; {'ReAct ' if react_only else ''}data has {len(lines)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(random.Random(seed).sample(lines, n)) + "\n", encoding="utf-8")
    return out


def train(data: Path, out_dir: Path, threads: int) -> float:
    """Train the recipe on `data` (no validation split: every sampled trajectory is trained on)."""
    if (out_dir / "adapter_model.safetensors").exists():
        return float("nan")
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "fireact_core.cli", "train", "--recipe", RECIPE, "--output-dir", str(out_dir),
           "--set", f"data=[{data}]", "--set", "val_size=0", "--set", f"cpu_threads={threads}"]
    with (out_dir.parent / f"{out_dir.name}.train.log").open("w") as log:
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_env())
    return time.perf_counter() - t


def evaluate(adapter: str, out_dir: Path, limit: int, jobs: int) -> list[dict]:
    """`fireact eval` on the first `limit` test questions, split over `jobs` processes."""
    parts = [(k * limit // jobs, (k + 1) * limit // jobs) for k in range(jobs)]
    procs = []
    for a, b in parts:
        out = out_dir / f"test-{a}-{b}.jsonl"
        if out.exists() and len(out.read_text(encoding="utf-8").splitlines()) == b - a:
            continue
        cmd = [sys.executable, "-m", "fireact_core.cli", "eval", "--task", "world", "--split", "test",
               "--offset", str(a), "--limit", str(b - a), "--adapter", adapter, "--out", str(out), "--no-progress"]
        log = (out_dir / f"test-{a}-{b}.log").open("w")
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      env={**_env(), "OMP_NUM_THREADS": "1"}))
    for p in procs:
        if p.wait():
            raise SystemExit(f"fireact eval failed ({p.returncode}); see the logs in {out_dir}")
    return [json.loads(ln) for a, b in parts
            for ln in (out_dir / f"test-{a}-{b}.jsonl").read_text(encoding="utf-8").splitlines()]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}


def row(name: str, data: str, n: int, trajs: list[dict], train_s: float) -> str:
    em = sum(t["em"] or 0 for t in trajs) / len(trajs)
    steps = sum(len(t["steps"]) for t in trajs) / len(trajs)
    time_s = sum(t["time_s"] for t in trajs) / len(trajs)
    finished = sum(t["status"] == "finished" for t in trajs)
    trained = "–" if train_s != train_s else f"{train_s / 60:.0f} min"
    return (f"| {name} | {data} | {n:,} | {len(trajs)} | {100 * em:.1f} | {steps:.2f} | {time_s:.2f} | "
            f"{finished} | {trained} |")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[100, 200, 500], help="multi-method sample sizes")
    p.add_argument("--react-only", type=int, nargs="*", default=[500], help="ReAct-only sample sizes")
    p.add_argument("--limit", type=int, default=100, help="the first N test questions (default: 100)")
    p.add_argument("--jobs", type=int, default=2, help="evaluation processes (default: 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for training (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "ablate")
    p.add_argument("--default-from", type=Path, help="take the default adapter's trajectories from this "
                   "bench/reproduce.py --out-dir instead of running them again")
    a = p.parse_args(argv)
    settings = [(f"multi-{n}", n, False) for n in a.sizes] + [(f"react-{n}", n, True) for n in a.react_only]
    rows = []
    for name, n, react in settings:
        d = a.out_dir / name
        data = sample(a.out_dir / f"{name}.jsonl", n, react_only=react, seed=a.seed)
        print(f"{name}: training on {n} trajectories…", file=sys.stderr, flush=True)
        secs = train(data, d, a.threads)
        print(f"{name}: evaluating…", file=sys.stderr, flush=True)
        rows.append(row(name, "ReAct only" if react else "ReAct + CoT + Reflexion", n,
                        evaluate(str(d), d, a.limit, a.jobs), secs))
    if a.default_from:  # the reproduction's fine-tuned cell already ran these questions
        wanted = {f"world-test-{i:04d}" for i in range(a.limit)}
        trajs = [t for f in sorted(a.default_from.glob("fine-tuned-off.*.jsonl"))
                 for t in map(json.loads, f.read_text(encoding="utf-8").splitlines()) if t["id"] in wanted]
        if len(trajs) != a.limit:
            raise SystemExit(f"{a.default_from} has {len(trajs)} of the first {a.limit} test questions")
    else:
        d = a.out_dir / "default"
        d.mkdir(parents=True, exist_ok=True)
        print("default adapter: evaluating…", file=sys.stderr, flush=True)
        trajs = evaluate("default", d, a.limit, a.jobs)
    rows.append(row("default", "ReAct + CoT + Reflexion", 1160, trajs, float("nan")))
    print(f"\nFirst {a.limit} world test questions, noise off; training: recipe {RECIPE} (2 epochs), "
          f"samples drawn with seed {a.seed}.\n")
    print("| setting | data | trajectories | n | EM | mean steps | time/trial (s) | finished | training |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
