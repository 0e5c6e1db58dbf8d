"""Reproduce the paper's three findings on the offline world; writes a Markdown table.

Prompted few-shot ReAct SmolLM2 against the default fine-tuned adapter, each with the search
tool clean, "None" and random at p=0.5, on the world's held-out test questions.

Work is split into worker processes (`--jobs` at a time, one torch thread each). A worker loads
its agent's model once and solves each of its questions under all three noise settings in turn,
so a run cut short still has every question of a worker under all three settings. The prompted
agent is slower (a few-shot prefix, and it often runs to the step limit), so its questions are
dealt to several workers (`--prompted-shards`); the fine-tuned agent gets one. Noise draws use
seed `--seed + i` for the i-th test question, as `fireact eval` does, so both agents meet the
same noise. Trajectories land in `--out-dir/<agent>-<noise>.<shard>.jsonl`; a rerun resumes.

The table has every cell over all the questions it ran, then the findings computed on the
questions that every cell ran (the paired set), with 95% Wilson intervals for EM.

    python bench/reproduce.py --limit 200 --jobs 2 --out-dir runs/reproduce
    python bench/reproduce.py --table-only --out-dir runs/reproduce
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AGENTS = {
    "prompted": ["--adapter", "none", "--method", "react"],
    "fine-tuned": ["--adapter", "default"],
}
NOISES = ("off", "none", "random")


def worker(agent: str, shard: int, shards: int, limit: int, split: str, out_dir: Path, seed: int, p: float) -> None:
    """Solve questions shard, shard + shards, ... of the first `limit` under each noise setting."""
    from fireact_core.commands._agent_opts import add_agent_args, agent_description, agent_factory, load_agent_model
    from fireact_core.tasks import load_task

    examples = load_task("world", split).examples[:limit]
    parser = argparse.ArgumentParser()
    add_agent_args(parser)
    argv = {n: [*AGENTS[agent], "--noise", n, "--p", str(p), "--seed", str(seed)] for n in NOISES}
    opts = {n: parser.parse_args(a) for n, a in argv.items()}
    model = load_agent_model(opts["off"])
    makers = {n: agent_factory(o, model=model) for n, o in opts.items()}
    files = {n: out_dir / f"{agent}-{n}.{shard}.jsonl" for n in NOISES}
    done = {n: _ids(f) for n, f in files.items()}
    sinks = {n: f.open("a", encoding="utf-8") for n, f in files.items()}
    try:
        for i in range(shard, len(examples), shards):
            ex = examples[i]
            for n in NOISES:
                if ex.id in done[n]:
                    continue
                traj = makers[n](i).solve(ex.question, gold=ex.answer, task=ex.task, id=ex.id, meta=dict(ex.meta))
                traj.agent.update(agent_description(opts[n]))
                sinks[n].write(json.dumps(traj.to_dict(), ensure_ascii=False) + "\n")
                sinks[n].flush()
                print(f"{agent}[{shard}] q{i} {n}: em={traj.em} steps={traj.num_steps} {traj.time_s:.1f}s", flush=True)
    finally:
        for s in sinks.values():
            s.close()


def _ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ids.add(json.loads(line)["id"])
        except (ValueError, KeyError):  # a line cut short by a kill: that question is run again
            continue
    return ids


def run_workers(jobs: int, limit: int, prompted_shards: int, split: str, out_dir: Path, seed: int, p: float) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    # The fine-tuned worker first: it is the shortest, and its cells are the ones every finding needs.
    pending = [("fine-tuned", 0, 1)] + [("prompted", s, prompted_shards) for s in range(prompted_shards)]
    running: list[tuple[subprocess.Popen, str]] = []
    while pending or running:
        while pending and len(running) < jobs:
            agent, shard, shards = pending.pop(0)
            cmd = [sys.executable, __file__, "--worker", agent, "--shard", str(shard), "--shards", str(shards),
                   "--limit", str(limit), "--split", split, "--out-dir", str(out_dir), "--seed", str(seed),
                   "--p", str(p)]
            log = (out_dir / f"{agent}.{shard}.log").open("a")
            print("running:", agent, f"shard {shard}/{shards}", file=sys.stderr)
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT),
                             f"{agent}.{shard}"))
        time.sleep(2)
        for proc, name in list(running):
            if proc.poll() is not None:
                running.remove((proc, name))
                if proc.returncode:
                    print(f"worker {name} failed ({proc.returncode}): see {out_dir / (name + '.log')}", file=sys.stderr)


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion k/n."""
    if n == 0:
        return 0.0, 0.0
    ph = k / n
    d = 1 + z * z / n
    c = (ph + z * z / (2 * n)) / d
    h = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _cells(out_dir: Path) -> dict[tuple[str, str], list]:
    from fireact_core.formats import read_trajectories

    cells: dict[tuple[str, str], list] = {}
    for agent in AGENTS:
        for noise in NOISES:
            trajs = {}
            for f in sorted(out_dir.glob(f"{agent}-{noise}.*.jsonl")):
                try:
                    for t in read_trajectories(f, infer=False):
                        trajs[t.id] = t
                except Exception as e:  # a line cut short by a kill: keep what parsed before it
                    print(f"note: {f}: {e}", file=sys.stderr)
            if trajs:
                cells[(agent, noise)] = list(trajs.values())
    return cells


def _rows(cells: dict[tuple[str, str], list], ids: set[str] | None) -> tuple[list[str], dict]:
    from fireact_core.evaluate import Summary

    rows = ["| agent | noise | n | EM (95% CI) | F1 | mean steps | time/trial (s) | tokens/trial |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    sums = {}
    for (agent, noise), trajs in cells.items():
        trajs = [t for t in trajs if ids is None or t.id in ids]
        s = Summary.of(trajs)
        sums[(agent, noise)] = s
        lo, hi = wilson((s.em or 0) * s.scored, s.scored)
        rows.append(f"| {agent} | {noise} | {s.n} | {100 * (s.em or 0):.1f} ({100 * lo:.0f}–{100 * hi:.0f}) | "
                    f"{100 * (s.f1 or 0):.1f} | {s.mean_steps:.2f} | {s.time_per_trial_s:.2f} | {s.tokens_per_trial:.0f} |")
    return rows, sums


def table(out_dir: Path) -> str:
    """The Markdown report: all cells, then the findings on the paired question set."""
    cells = _cells(out_dir)
    if not cells:
        return "no trajectories yet\n"
    rows, _ = _rows(cells, None)
    out = ["All questions each cell ran:", "", *rows, ""]
    paired = set.intersection(*({t.id for t in ts} for ts in cells.values()))
    if len(cells) < len(AGENTS) * len(NOISES) or not paired:
        return "\n".join(out) + "\n(the findings need all six cells with questions in common)\n"
    rows, s = _rows(cells, paired)
    out += [f"The paired set: the {len(paired)} questions every cell ran:", "", *rows, ""]
    for agent in AGENTS:
        base = s[(agent, "off")].em or 0
        for noise in ("none", "random"):
            em = s[(agent, noise)].em or 0
            drop = f"{100 * (1 - em / base):.1f}%" if base else "n/a (EM 0 without noise)"
            out.append(f"- {agent}: relative EM drop with noise {noise!r}: {drop}")
    ft, pr = s[("fine-tuned", "off")], s[("prompted", "off")]
    ratio = f"{(ft.em or 0) / pr.em:.1f}x" if pr.em else "inf (prompted EM is 0)"
    out.append(f"- fine-tuned / prompted EM (noise off): {ratio}")
    out.append(f"- fine-tuned / prompted time per trial (noise off): {ft.time_per_trial_s / pr.time_per_trial_s:.2f}x")
    out.append(f"- fine-tuned / prompted tokens per trial (noise off): {ft.tokens_per_trial / pr.tokens_per_trial:.2f}x")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=200, help="the first N test questions (default: 200)")
    p.add_argument("--split", default="test")
    p.add_argument("--jobs", type=int, default=2, help="worker processes at a time (default: 2)")
    p.add_argument("--prompted-shards", type=int, default=None, help="prompted workers (default: --jobs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p", type=float, default=0.5, help="noise probability (default: 0.5)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "reproduce")
    p.add_argument("--table-only", action="store_true", help="only summarise what has been run")
    p.add_argument("--worker", choices=AGENTS, help=argparse.SUPPRESS)
    p.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--shards", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker(args.worker, args.shard, args.shards, args.limit, args.split, args.out_dir, args.seed, args.p)
        return 0
    if not args.table_only:
        run_workers(args.jobs, args.limit, args.prompted_shards or args.jobs, args.split, args.out_dir, args.seed, args.p)
    text = table(args.out_dir)
    (args.out_dir / "results.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
