"""Reproduce the paper's three findings on the offline world; writes a Markdown table.

A prompted few-shot ReAct agent against the fine-tuned adapter on the same base (`--model`:
`smollm2` or `gemma3`), each with the search tool clean, "None" and random at p=0.5, on the
world's held-out test questions. `--prompted` sets the prompted agent's options (`fireact run`'s:
the prompts, the number of exemplars, `--prompt-format scratchpad`, `--constrained`), so every
prompted configuration is its own run in its own `--out-dir`.

Work is split into worker processes (`--jobs` at a time, one torch thread each; `--workers` per
agent, started alternately). A worker loads its agent's model once, claims the next unclaimed
question and solves it under all three noise settings in turn, so a run cut short still has
each question it ran under all three. Noise draws use seed `--seed + i` for the i-th test
question, as `fireact eval` does, so both agents meet the same noise. Trajectories land in
`--out-dir/<agent>-<noise>.<worker>.jsonl`; a rerun resumes where the files end.

The table has every cell over all the questions it ran, then the findings computed on the
questions that every cell ran (the paired set), with 95% Wilson intervals for EM.

    python bench/reproduce.py --limit 200 --jobs 2 --out-dir runs/reproduce
    python bench/reproduce.py --model gemma3 --prompted "--prompts world --exemplars 6 --prompt-format scratchpad --constrained" \
        --limit 40 --noises off,none --out-dir runs/reproduce-gemma3-constrained
    python bench/reproduce.py --adapter runs/smollm2-135m-world --limit 100 --out-dir runs/reproduce-new-adapter
    python bench/reproduce.py --table-only --out-dir runs/reproduce
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy
from fireact_core.paths import REPO as ROOT

if TYPE_CHECKING:
    from fireact_core.spec import AgentSpec

AGENTS = ("prompted", "fine-tuned")
NOISES = ("off", "none", "random")


@dataclass(frozen=True)
class RunConfig:
    """What one run compares: the base, the prompted agent's extra options, the fine-tuned agent's
    adapter and the noise settings. Saved in `out_dir/config.json`, so a resumed run, its workers
    and `--table-only` read the same settings back."""

    model: str = "smollm2"
    prompted: str = ""
    adapter: str = "default"
    noises: tuple[str, ...] = NOISES

    def spec(self, agent: str) -> AgentSpec:
        """The agent `agent` ("prompted" or "fine-tuned") runs, noise off: `prompted` (options a person wrote)
        is parsed here, once; the workers pass the record on."""
        from fireact_core.options import spec_from_options

        if agent == "prompted":
            return spec_from_options(["--method", "react", *shlex.split(self.prompted)], model=self.model,
                                     adapter="none")
        return spec_from_options([], model=self.model, adapter=self.adapter)

    @classmethod
    def load(cls, out_dir: Path, **given: str | None) -> RunConfig:
        """The saved settings of `out_dir`, overridden by the `given` ones that are not None."""
        saved = out_dir / "config.json"
        cfg = {**asdict(cls()), "noises": ",".join(NOISES)}
        if saved.is_file():
            cfg.update(json.loads(saved.read_text()))
        cfg.update({k: v for k, v in given.items() if v is not None})
        return cls(model=cfg["model"], prompted=cfg["prompted"], adapter=cfg["adapter"],
                   noises=tuple(n.strip() for n in cfg["noises"].split(",") if n.strip()))

    def save(self, out_dir: Path) -> None:
        """Write `out_dir/config.json` atomically (only the main process does)."""
        tmp = out_dir / f"config.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({**asdict(self), "noises": ",".join(self.noises)}, indent=1) + "\n")
        os.replace(tmp, out_dir / "config.json")


def worker(cfg: RunConfig, agent: str, wid: int, limit: int, split: str, out_dir: Path, seed: int, p: float) -> None:
    """Claim the first `limit` questions one at a time, and solve each under every noise setting.

    Workers of one agent share the questions through claim files (created exclusively), so any
    number of them split the work without a plan; each writes its own files.
    """
    from fireact_core.build import agent_factory, load_spec_model
    from fireact_core.noise import NoiseConfig
    from fireact_core.tasks import load_task

    examples = load_task("world", split).examples[:limit]
    clean = cfg.spec(agent)
    specs = {n: replace(clean, noise=NoiseConfig(mode=n, p=p, seed=seed)) for n in cfg.noises}
    model = load_spec_model(specs["off"])
    makers = {n: agent_factory(spec, model) for n, spec in specs.items()}
    done = {n: set().union(*(_ids(f) for f in out_dir.glob(f"{agent}-{n}.*.jsonl"))) for n in cfg.noises}
    claims = out_dir / "claims"
    claims.mkdir(exist_ok=True)
    sinks = {n: (out_dir / f"{agent}-{n}.{wid}.jsonl").open("a", encoding="utf-8") for n in cfg.noises}
    try:
        for i, ex in enumerate(examples):
            if all(ex.id in done[n] for n in cfg.noises):
                continue
            try:
                os.close(os.open(claims / f"{agent}.{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:  # another worker has it
                continue
            for n in cfg.noises:
                if ex.id in done[n]:
                    continue
                traj = makers[n](i).solve(ex.question, gold=ex.answer, task=ex.task, id=ex.id, meta=dict(ex.meta))
                sinks[n].write(json.dumps(traj.to_dict(), ensure_ascii=False) + "\n")
                sinks[n].flush()
                print(f"{agent}[{wid}] q{i} {n}: em={traj.em} steps={traj.num_steps} {traj.time_s:.1f}s", flush=True)
    finally:
        for s in sinks.values():
            s.close()


def _ids(path: Path) -> set[str]:
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ids.add(json.loads(line)["id"])
        except (ValueError, KeyError):  # a line cut short by a kill: that question is run again
            continue
    return ids


def run_workers(jobs: int, workers: int, limit: int, split: str, out_dir: Path, seed: int, p: float) -> None:
    import shutil

    # No worker runs now: claims of questions left unfinished by an earlier run are void.
    shutil.rmtree(out_dir / "claims", ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    # Alternate the agents, so that both progress from the start and a worker that runs out of
    # questions hands its core to the other agent's next worker.
    pending = [(a, w) for w in range(workers) for a in AGENTS]
    running: list[tuple[subprocess.Popen, str]] = []
    while pending or running:
        while pending and len(running) < jobs:
            agent, wid = pending.pop(0)
            cmd = [sys.executable, __file__, "--worker", agent, "--worker-id", str(wid), "--limit", str(limit),
                   "--split", split, "--out-dir", str(out_dir), "--seed", str(seed), "--p", str(p)]
            log = (out_dir / f"{agent}.{wid}.log").open("a")
            print("running:", agent, f"worker {wid}", file=sys.stderr)
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT),
                             f"{agent}.{wid}"))
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


def _cells(out_dir: Path, noises: Sequence[str]) -> dict[tuple[str, str], list]:
    from fireact_core.formats import read_trajectories

    cells: dict[tuple[str, str], list] = {}
    for agent in AGENTS:
        for noise in noises:
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


def table(out_dir: Path, cfg: RunConfig | None = None) -> str:
    """The Markdown report: all cells, then the findings on the paired question set (`cfg`: the
    run's settings, by default those saved in `out_dir`)."""
    cfg = cfg or RunConfig.load(out_dir)
    cells = _cells(out_dir, cfg.noises)
    if not cells:
        return "no trajectories yet\n"
    rows, _ = _rows(cells, None)
    out = ["All questions each cell ran:", "", *rows, ""]
    paired = set.intersection(*({t.id for t in ts} for ts in cells.values()))
    if len(cells) < len(AGENTS) * len(cfg.noises) or not paired:
        return "\n".join(out) + "\n(the findings need every cell with questions in common)\n"
    rows, s = _rows(cells, paired)
    out += [f"The paired set: the {len(paired)} questions every cell ran:", "", *rows, ""]
    noisy = [n for n in cfg.noises if n != "off"]
    for agent in AGENTS:
        base = s[(agent, "off")].em or 0
        for noise in noisy:
            em = s[(agent, noise)].em or 0
            drop = f"{100 * (1 - em / base):.1f}%" if base else "n/a (EM 0 without noise)"
            out.append(f"- {agent}: relative EM drop with noise {noise!r}: {drop}")
    out += _drop_differences(cells, paired, noisy)
    ft, pr = s[("fine-tuned", "off")], s[("prompted", "off")]
    ratio = f"{(ft.em or 0) / pr.em:.1f}x" if pr.em else "inf (prompted EM is 0)"
    out.append(f"- fine-tuned / prompted EM (noise off): {ratio}")
    out.append(f"- fine-tuned / prompted time per trial (noise off): {_ratio(ft.time_per_trial_s, pr.time_per_trial_s)}")
    out.append(f"- fine-tuned / prompted tokens per trial (noise off): {_ratio(ft.tokens_per_trial, pr.tokens_per_trial)}")
    out += ["", "Behaviour on the paired set:", "", *_behaviour(cells, paired)]
    out += ["", "EM by question kind on the paired set:", "", *_by_kind(cells, paired, cfg.noises)]
    return "\n".join(out) + "\n"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def _drop_differences(cells: dict[tuple[str, str], list], ids: set[str], noisy: Sequence[str]) -> list[str]:
    """Prompted minus fine-tuned relative drop, with a paired bootstrap interval over the questions."""
    from fireact_core.robustness import paired_drop_difference

    order = sorted(ids)
    em = {c: {t.id: float(t.em or 0) for t in ts} for c, ts in cells.items()}
    lines = []
    for noise in noisy:
        cols = [[em[(a, n)][i] for i in order] for a in ("prompted", "fine-tuned") for n in ("off", noise)]
        d = paired_drop_difference(*cols)
        lines.append(f"- prompted drop minus fine-tuned drop, noise {noise!r}: {d.format()}")
    return lines


def _behaviour(cells: dict[tuple[str, str], list], ids: set[str]) -> list[str]:
    """How often each cell searched at all, finished, and answered in one step."""
    rows = ["| agent | noise | searched | finished | one-step answer |", "| --- | --- | ---: | ---: | ---: |"]
    for (agent, noise), trajs in cells.items():
        ts = [t for t in trajs if t.id in ids]
        if ts:
            pct = [100 * sum(f(t) for t in ts) / len(ts) for f in (
                lambda t: any(s.action == "search" for s in t.steps), lambda t: t.status == "finished",
                lambda t: len(t.steps) == 1 and t.steps[0].action == "finish")]
            rows.append(f"| {agent} | {noise} | {pct[0]:.0f}% | {pct[1]:.0f}% | {pct[2]:.0f}% |")
    return rows


def _kind(t: Any) -> str:
    m = t.meta or {}
    if m.get("type") == "bridge":
        return f"bridge {m.get('hops')}-hop"
    if m.get("type") == "comparison":
        return "comparison: " + ("yes/no" if m.get("kind", "").startswith("same") else "which")
    return str(m.get("type") or "?")


def _by_kind(cells: dict[tuple[str, str], list], ids: set[str], noises: Sequence[str]) -> list[str]:
    kinds = sorted({_kind(t) for ts in cells.values() for t in ts if t.id in ids})
    cols = [(a, n) for a in AGENTS for n in noises]
    rows = ["| kind | n | " + " | ".join(f"{a} {n}" for a, n in cols) + " |",
            "| --- | ---: |" + " ---: |" * len(cols)]
    for k in kinds:
        per = [[t for t in cells[c] if t.id in ids and _kind(t) == k] for c in cols]
        rows.append(f"| {k} | {len(per[0])} | " + " | ".join(
            f"{100 * sum(t.em or 0 for t in ts) / len(ts):.0f}" if ts else "–" for ts in per) + " |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=200, help="the first N test questions (default: 200)")
    p.add_argument("--split", default="test")
    p.add_argument("--jobs", type=int, default=2, help="worker processes at a time (default: 2)")
    p.add_argument("--workers", type=int, default=None, help="workers per agent (default: --jobs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p", type=float, default=0.5, help="noise probability (default: 0.5)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "reproduce")
    p.add_argument("--table-only", action="store_true", help="only summarise what has been run")
    p.add_argument("--model", default=None, help="the base of both agents: smollm2 (default) or gemma3")
    p.add_argument("--prompted", default=None, help="extra `fireact run` options for the prompted agent")
    p.add_argument("--noises", default=None, help="comma-separated noise settings (default: off,none,random)")
    p.add_argument("--adapter", default=None,
                   help="the fine-tuned agent's adapter: 'default' (the base's bundled one), a folder or a hub id")
    p.add_argument("--worker", choices=AGENTS, help=argparse.SUPPRESS)
    p.add_argument("--worker-id", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig.load(args.out_dir, model=args.model, prompted=args.prompted, adapter=args.adapter,
                         noises=args.noises)
    if args.worker:
        worker(cfg, args.worker, args.worker_id, args.limit, args.split, args.out_dir, args.seed, args.p)
        return 0
    cfg.save(args.out_dir)
    if not args.table_only:
        run_workers(args.jobs, args.workers or args.jobs, args.limit, args.split, args.out_dir, args.seed, args.p)
    text = table(args.out_dir, cfg)
    (args.out_dir / "results.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
