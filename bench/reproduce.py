"""Reproduce the paper's three findings on the offline world; writes a Markdown table.

Each cell is one `fireact eval` run (prompted few-shot ReAct SmolLM2 vs the default fine-tuned
adapter, noise off / "None" / random at p=0.5), run as its own process, `--jobs` at a time with
one torch thread each. Trajectories land in `--out-dir`; the table goes to stdout and to
`--out-dir/results.md`.

    python bench/reproduce.py --limit 200 --jobs 2 --out-dir runs/reproduce
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AGENTS = {
    "prompted": ["--adapter", "none", "--method", "react"],
    "fine-tuned": ["--adapter", "default"],
}
NOISES = ("off", "none", "random")


def cell_cmd(agent: str, noise: str, limit: int, split: str, out: Path, seed: int) -> list[str]:
    return [sys.executable, "-m", "fireact_core.cli", "eval", "--task", "world", "--split", split,
            "--limit", str(limit), "--noise", noise, "--p", "0.5", "--seed", str(seed),
            *AGENTS[agent], "--out", str(out)]


def run_cells(cells: list[tuple[str, str, int]], split: str, out_dir: Path, jobs: int, seed: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    pending = [(a, n, lim) for a, n, lim in cells if not (out_dir / f"{a}-{n}.jsonl").exists()]
    running: list[tuple[subprocess.Popen, str]] = []
    while pending or running:
        while pending and len(running) < jobs:
            a, n, lim = pending.pop(0)
            out = out_dir / f"{a}-{n}.jsonl"
            log = (out_dir / f"{a}-{n}.log").open("w")
            tmp = out.with_suffix(".partial")
            cmd = cell_cmd(a, n, lim, split, tmp, seed)
            print("running:", " ".join(cmd[1:]), file=sys.stderr)
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), str(out)))
        time.sleep(2)
        for proc, out in list(running):
            if proc.poll() is not None:
                running.remove((proc, out))
                tmp = Path(out).with_suffix(".partial")
                if proc.returncode == 0 and tmp.exists():
                    tmp.rename(out)
                else:
                    print(f"cell failed ({proc.returncode}): see {Path(out).with_suffix('.log')}", file=sys.stderr)


def table(out_dir: Path) -> str:
    from fireact_core.evaluate import Summary
    from fireact_core.formats import read_trajectories

    rows = ["| agent | noise | n | EM | F1 | mean steps | time/trial (s) | tokens/trial |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    summaries: dict[tuple[str, str], Summary] = {}
    for agent in AGENTS:
        for noise in NOISES:
            f = out_dir / f"{agent}-{noise}.jsonl"
            if not f.exists():  # a cell still running (or stopped): report what it has so far
                f = f.with_suffix(".partial")
                if not f.exists() or not f.read_text(encoding="utf-8").strip():
                    continue
            s = Summary.of(list(read_trajectories(f, infer=False)))
            summaries[(agent, noise)] = s
            rows.append(f"| {agent} | {noise} | {s.n} | {100 * (s.em or 0):.1f} | {100 * (s.f1 or 0):.1f} | "
                        f"{s.mean_steps:.2f} | {s.time_per_trial_s:.2f} | {s.tokens_per_trial:.0f} |")
    lines = ["\n".join(rows), ""]
    for agent in AGENTS:
        base = summaries.get((agent, "off"))
        for noise in ("none", "random"):
            s = summaries.get((agent, noise))
            if base and s and base.em:
                lines.append(f"- {agent}: relative EM drop with noise {noise!r}: {100 * (1 - (s.em or 0) / base.em):.1f}%")
    ft, pr = summaries.get(("fine-tuned", "off")), summaries.get(("prompted", "off"))
    if ft and pr:
        ratio = f"{(ft.em or 0) / pr.em:.1f}x" if pr.em else "inf (prompted EM is 0)"
        lines.append(f"- fine-tuned / prompted EM (noise off): {ratio}")
        lines.append(f"- fine-tuned / prompted time per trial (noise off): {ft.time_per_trial_s / pr.time_per_trial_s:.2f}x")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=200, help="test questions per fine-tuned cell")
    p.add_argument("--prompted-limit", type=int, default=None, help="questions per prompted cell (default: --limit)")
    p.add_argument("--split", default="test")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "reproduce")
    p.add_argument("--table-only", action="store_true", help="only summarise the cells already run")
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        plim = args.prompted_limit or args.limit
        cells = [(a, n, args.limit if a == "fine-tuned" else plim) for a in AGENTS for n in NOISES]
        run_cells(cells, args.split, args.out_dir, args.jobs, args.seed)
    text = table(args.out_dir)
    (args.out_dir / "results.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
