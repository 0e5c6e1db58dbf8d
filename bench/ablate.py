"""Ablations on the offline world: the data-scaling curve, and ReAct-only against multi-method data.

Each setting trains the default adapter's recipe (`smollm2-135m-world`: LoRA r=8 on every
linear layer, two epochs) on a seeded sample of the world's teacher trajectories, then runs the
adapter with `fireact eval` on the first `--limit` test questions (noise off), in `--jobs`
processes of one torch thread each. The default adapter (every training trajectory) is evaluated
the same way, as the curve's last point. Samples, adapters and trajectories go to `--out-dir`; a
rerun skips every step whose output exists, and a training cut short resumes from its last
checkpoint. Prints a Markdown table.

    python bench/ablate.py --sizes 100 200 500 --react-only 500 --limit 100
    python bench/ablate.py --default-from runs/reproduce     # reuse the reproduction's fine-tuned runs

Multi-method against ReAct-only over seeds and noise (issue 13, part 5): `--additive 500` adds a
mix that keeps the ReAct-only sample's 500 trajectories and adds the CoT and Reflexion ones the
multi-method sample of the same seed holds, so the mix adds data instead of replacing it; every
setting is trained once per `--seeds` value and evaluated under each `--noises` setting, and a
second table gives each setting's mean EM and its spread (sample standard deviation) over seeds,
a third each difference (ReAct-only and the additive mix against the multi-method mix) with a
paired bootstrap interval over the questions. Seed i draws the sample with seed i and trains with
seed 42 + i. `--report` trains and evaluates nothing and prints the tables from what has run.

Every evaluated run also goes into a ledger committed with the project (`bench/results/ablate.jsonl`:
one line per setting and noise, each question's EM, steps, time and status), and `--report` falls
back on it for a run that `--out-dir` does not hold, so a new checkout still has every earlier
seed's questions for the paired intervals. `--report --record` copies what `--out-dir` holds into
the ledger; `--ledger none` leaves it out.

    python bench/ablate.py --sizes 500 --react-only 500 --additive 500 --seeds 0 1 2 --noises off none \
        --limit 100 --default-from runs/reproduce-smollm2-constrained --out-dir runs/ablate-seeds

A ReAct-only size larger than an additive size (`--react-only 500 660 --additive 500`: seed 0's
additive mix holds 660 trajectories) is also paired with the additive mix: the same amount of
data, ReAct alone against ReAct plus CoT and Reflexion.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy
from fireact_core.paths import REPO as ROOT
from fireact_core.paths import TRAJECTORIES
from fireact_core.robustness import mean_interval, paired_drop_difference

RECIPE = "smollm2-135m-world"
LEDGER = ROOT / "bench" / "results" / "ablate.jsonl"


def draw(lines: list[str], n: int, kind: str, seed: int) -> list[str]:
    """The sample of a setting `kind`: `multi` (all methods), `react` (ReAct only) or `additive`
    (the `react` sample plus the CoT and Reflexion trajectories of the `multi` sample, same seed)."""
    if kind == "additive":
        extra = [ln for ln in draw(lines, n, "multi", seed) if json.loads(ln)["method"] != "react"]
        return draw(lines, n, "react", seed) + extra
    pool = [ln for ln in lines if json.loads(ln)["method"] == "react"] if kind == "react" else lines
    if n > len(pool):
        raise SystemExit(f"asked for {n} trajectories; {'ReAct ' if kind == 'react' else ''}data has {len(pool)}")
    return random.Random(seed).sample(pool, n)


def sample(out: Path, n: int, *, kind: str, seed: int) -> Path:
    """The setting's sample (`draw`) of the teacher trajectories as JSONL, unless `out` exists."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = TRAJECTORIES.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(draw(lines, n, kind, seed)) + "\n", encoding="utf-8")
    return out


def train(data: Path, out_dir: Path, threads: int, seed: int = 0) -> float:
    """Train the recipe on `data` (no validation split: every sampled trajectory is trained on) with
    training seed 42 + `seed`, so seed 0 is the recipe's own and the others vary the order as well."""
    if (out_dir / "adapter_model.safetensors").exists():
        return trained_seconds(out_dir)
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "fireact_core.cli", "train", "--recipe", RECIPE, "--output-dir", str(out_dir),
           "--set", f"data=[{data}]", "--set", "val_size=0", "--set", f"cpu_threads={threads}",
           "--set", f"seed={42 + seed}"]
    resumed = interrupted(out_dir)
    if resumed:  # a run cut short goes on from its last checkpoint (every 50 steps) instead of step 0
        cmd += ["--set", "resume_from_checkpoint=true"]
        print(f"{out_dir.name}: resuming from {resumed.name}", file=sys.stderr, flush=True)
    with (out_dir.parent / f"{out_dir.name}.train.log").open("a" if resumed else "w") as log:
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_env())
    secs = float("nan") if resumed else time.perf_counter() - t  # a resumed run's whole time is not known
    (out_dir / "train_s.txt").write_text(f"{secs:.1f}\n")  # so that a rerun's table still shows it
    return secs


def interrupted(out_dir: Path) -> Path | None:
    """The last checkpoint a training cut short left in `out_dir`, if any."""
    steps = {int(n): c for c in (out_dir / "checkpoints").glob("checkpoint-*")
             if (n := c.name.removeprefix("checkpoint-")).isdigit()}
    return steps[max(steps)] if steps else None


def summary(traj: dict) -> dict:
    """What the tables and the ledger keep of one trajectory."""
    return {"id": traj["id"], "em": traj["em"] or 0.0, "steps": len(traj["steps"]),
            "time_s": round(traj["time_s"], 3), "status": traj["status"]}


def read_ledger(path: Path | None) -> dict[tuple[str, str], dict]:
    """The ledger's runs by (setting, noise); a line that is not a run is refused with its number."""
    if path is None or not path.exists():
        return {}
    runs = {}
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
            key = (str(run["setting"]), str(run["noise"]))
            if not isinstance(run["questions"], dict) or not all(
                    {"em", "steps", "time_s", "status"} <= q.keys() for q in run["questions"].values()):
                raise ValueError("each question needs em, steps, time_s and status")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise SystemExit(f"{path}:{no}: not a ledger run ({e})") from None
        runs[key] = run
    return runs


def record(path: Path | None, tag: str, noise: str, trajectories: int, train_s: float,
           rows: list[dict]) -> None:
    """Keep one evaluated run in the ledger, replacing that setting and noise's earlier line."""
    if path is None:
        return
    runs = read_ledger(path)
    line = {"setting": tag, "noise": noise, "trajectories": trajectories,
            "train_s": None if train_s != train_s else round(train_s, 1), "recorded": time.strftime("%Y-%m-%d"),
            "questions": {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in rows}}
    earlier = runs.get((tag, noise), {})
    if {**earlier, "recorded": line["recorded"]} == line:  # a rerun that skipped every step: keep its date
        return
    runs[(tag, noise)] = line
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(runs[k]) + "\n" for k in sorted(runs)), encoding="utf-8")
    tmp.replace(path)


def ledgered(runs: dict[tuple[str, str], dict], tag: str, noise: str, limit: int) -> dict | None:
    """The ledger's run of `tag` under `noise` if it holds all of the first `limit` test questions."""
    run = runs.get((tag, noise))
    ids = [f"world-test-{i:04d}" for i in range(limit)]
    if run is None or any(q not in run["questions"] for q in ids):
        return None
    return {**run, "rows": [{"id": q, **run["questions"][q]} for q in ids]}


def trained_seconds(out_dir: Path) -> float:
    """The training time an earlier `train` kept beside its adapter (NaN when not kept)."""
    took = out_dir / "train_s.txt"
    return float(took.read_text()) if took.exists() else float("nan")


def _parts(limit: int, jobs: int) -> list[tuple[int, int]]:
    return [(k * limit // jobs, (k + 1) * limit // jobs) for k in range(jobs)]


def stored(out_dir: Path, limit: int, jobs: int, noise: str = "off") -> list[dict] | None:
    """The summaries of the trajectories an earlier `evaluate` left in `out_dir`, or None if any part is
    missing or short."""
    tag = "" if noise == "off" else f"{noise}-"
    out = []
    for a, b in _parts(limit, jobs):
        f = out_dir / f"test-{tag}{a}-{b}.jsonl"
        part = f.read_text(encoding="utf-8").splitlines() if f.exists() else []
        if len(part) != b - a:
            return None
        out += [summary(json.loads(ln)) for ln in part]
    return out


def evaluate(adapter: str, out_dir: Path, limit: int, jobs: int, noise: str = "off") -> list[dict]:
    """`fireact eval` on the first `limit` test questions, split over `jobs` processes (noise p=0.5,
    seed i for the i-th question, as `fireact eval` and `bench/reproduce.py` draw it)."""
    parts = _parts(limit, jobs)
    tag = "" if noise == "off" else f"{noise}-"
    procs = []
    for a, b in parts:
        out = out_dir / f"test-{tag}{a}-{b}.jsonl"
        if out.exists() and len(out.read_text(encoding="utf-8").splitlines()) == b - a:
            continue
        cmd = [sys.executable, "-m", "fireact_core.cli", "eval", "--task", "world", "--split", "test",
               "--offset", str(a), "--limit", str(b - a), "--adapter", adapter, "--out", str(out), "--no-progress",
               "--noise", noise, "--p", "0.5", "--seed", str(a)]
        log = (out_dir / f"test-{tag}{a}-{b}.log").open("w")
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      env={**_env(), "OMP_NUM_THREADS": "1"}))
    for p in procs:
        if p.wait():
            raise SystemExit(f"fireact eval failed ({p.returncode}); see the logs in {out_dir}")
    trajs = stored(out_dir, limit, jobs, noise)
    if trajs is None:
        raise SystemExit(f"fireact eval left fewer trajectories than questions in {out_dir}")
    return trajs


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}


def row(name: str, data: str, n: int, trajs: list[dict], train_s: float) -> str:
    """One table row from a run's question summaries (`summary`)."""
    em = sum(t["em"] for t in trajs) / len(trajs)
    steps = sum(t["steps"] for t in trajs) / len(trajs)
    time_s = sum(t["time_s"] for t in trajs) / len(trajs)
    finished = sum(t["status"] == "finished" for t in trajs)
    trained = "–" if train_s != train_s else f"{train_s / 60:.0f} min"
    return (f"| {name} | {data} | {n:,} | {len(trajs)} | {100 * em:.1f} | {steps:.2f} | {time_s:.2f} | "
            f"{finished} | {trained} |")


def spread(ems: dict[tuple[str, str], list[float]]) -> list[str]:
    """Table rows: each (setting, noise) with its mean EM and the standard deviation over seeds."""
    out = []
    for (name, noise), xs in ems.items():
        sd = f"{100 * statistics.stdev(xs):.1f}" if len(xs) > 1 else "–"
        out.append(f"| {name} | {noise} | {len(xs)} | {100 * statistics.fmean(xs):.1f} | {sd} | "
                   f"{', '.join(f'{100 * x:.0f}' for x in xs)} |")
    return out


def differences(runs: dict[tuple[str, str], list[dict[str, float]]], pairs: Sequence[tuple[str, str]],
                samples: int = 2000, seed: int = 0) -> list[str]:
    """Table rows: EM of setting A minus setting B per noise, each averaged over its seeds first,
    with a paired bootstrap 95% interval over the questions (training seeds are not resampled:
    their spread is the other table's sd)."""
    out = []
    for first, second in pairs:
        for noise in dict.fromkeys(n for _, n in runs):
            if (first, noise) not in runs or (second, noise) not in runs:
                continue
            mean = {name: _per_question(runs[(name, noise)]) for name in (first, second)}
            ids = sorted(mean[first].keys() & mean[second].keys())
            diff = [mean[first][q] - mean[second][q] for q in ids]
            lo, hi = mean_interval(diff, samples, seed)
            out.append(f"| {first} − {second} | {noise} | {len(runs[(first, noise)])} / "
                       f"{len(runs[(second, noise)])} | {len(ids)} | {_signed(statistics.fmean(diff))} | "
                       f"{_signed(lo)} to {_signed(hi)} |")
    return out


def drops(runs: dict[tuple[str, str], list[dict[str, float]]], pairs: Sequence[tuple[str, str]],
          samples: int = 2000) -> list[str]:
    """Table rows: each pair's relative EM drop from noise off to each noisy setting (each question's
    EM averaged over its seeds first), and A's drop minus B's with a paired bootstrap 95% interval
    over the questions (`fireact_core.robustness`). Negative: A loses less of its EM to the noise."""
    out = []
    for first, second in pairs:
        for noise in dict.fromkeys(n for _, n in runs if n != "off"):
            keys = [(first, "off"), (first, noise), (second, "off"), (second, noise)]
            if any(k not in runs for k in keys):
                continue
            means = [_per_question(runs[k]) for k in keys]
            ids = sorted(set.intersection(*(set(m) for m in means)))
            d = paired_drop_difference(*([m[q] for q in ids] for m in means), rounds=samples)
            if d.difference is None:
                continue
            interval = "–" if d.low is None else f"{_signed(d.low)} to {_signed(d.high)}"
            out.append(f"| {first} − {second} | {noise} | {len(runs[keys[1]])} / {len(runs[keys[3]])} | "
                       f"{len(ids)} | {100 * d.prompted:.1f}% | {100 * d.finetuned:.1f}% | "
                       f"{_signed(d.difference)} | {interval} |")
    return out


def _signed(x: float) -> str:
    """Percentage points with their sign, a real minus as the docs print it."""
    return f"{100 * x:+.1f}".replace("-", "−")


def _per_question(seed_runs: list[dict[str, float]]) -> dict[str, float]:
    """Each question's EM averaged over the seeds that ran it."""
    ids = set.intersection(*(set(r) for r in seed_runs))
    return {q: statistics.fmean(r[q] for r in seed_runs) for q in ids}


DATA = {"multi": "ReAct + CoT + Reflexion", "react": "ReAct only", "additive": "ReAct + added CoT + Reflexion"}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", help="multi-method sample sizes (default: 100 200 500 "
                   "when no setting is named)")
    p.add_argument("--react-only", type=int, nargs="*", help="ReAct-only sample sizes (default: 500 when no "
                   "setting is named)")
    p.add_argument("--limit", type=int, default=100, help="the first N test questions (default: 100)")
    p.add_argument("--jobs", type=int, default=2, help="evaluation processes (default: 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for training (default: 2)")
    p.add_argument("--additive", type=int, nargs="*", default=[], help="ReAct sample sizes that the "
                   "multi-method sample's CoT and Reflexion trajectories are added to")
    p.add_argument("--seeds", type=int, nargs="*", default=[0], help="sampling seeds (default: 0)")
    p.add_argument("--noises", nargs="*", default=["off"], choices=("off", "none", "random"),
                   help="evaluation noise settings (default: off)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "ablate")
    p.add_argument("--default-from", type=Path, help="take the default adapter's trajectories from this "
                   "bench/reproduce.py --out-dir instead of running them again")
    p.add_argument("--report", action="store_true", help="train and evaluate nothing: the tables from "
                   "what --out-dir already holds, naming each setting and seed not run yet")
    p.add_argument("--ledger", type=Path, default=LEDGER, help="the committed per-question record of every "
                   "evaluated run, read by --report for runs --out-dir lacks ('none': neither read nor "
                   f"written; default: {LEDGER.relative_to(ROOT)})")
    p.add_argument("--record", action="store_true", help="with --report: copy the runs --out-dir holds into "
                   "the ledger")
    a = p.parse_args(argv)
    if a.sizes is None and a.react_only is None and not a.additive:  # the data-scaling curve
        a.sizes, a.react_only = [100, 200, 500], [500]
    a.sizes, a.react_only = a.sizes or [], a.react_only or []
    settings = ([(f"multi-{n}", n, "multi") for n in a.sizes] + [(f"react-{n}", n, "react") for n in a.react_only]
                + [(f"additive-{n}", n, "additive") for n in a.additive])
    ledger_path = None if str(a.ledger) == "none" else a.ledger
    ledger = read_ledger(ledger_path)  # a broken ledger stops the run before hours of training, not after
    rows, runs, missing, kept = [], {}, [], []

    def take(tag: str, noise: str, size: int, secs: float, trajs: list[dict] | None) -> tuple | None:
        """The run as (summaries, trajectories, training seconds): what ran here, recorded in the
        ledger (on a report only with --record), else the ledger's own line, else None."""
        if trajs is not None:
            if not a.report or a.record:
                record(ledger_path, tag, noise, size, secs, trajs)
            return trajs, size, secs
        if (line := ledgered(ledger, tag, noise, a.limit)) is None:
            return None
        kept.append(f"{tag} ({noise})")
        return line["rows"], line["trajectories"], float("nan") if line["train_s"] is None else line["train_s"]

    # seeds outermost: an interrupted run has every setting at the first seeds, a comparison already
    for seed in a.seeds:
        for name, n, kind in settings:
            tag = name if seed == 0 else f"{name}-s{seed}"  # seed 0 keeps the earlier runs' folders
            d = a.out_dir / tag
            data = a.out_dir / f"{tag}.jsonl"
            if not a.report:
                sample(data, n, kind=kind, seed=seed)
            size = len(data.read_text(encoding="utf-8").splitlines()) if data.exists() else n
            if a.report:
                secs = trained_seconds(d)
            else:
                print(f"{tag}: training on {size} trajectories…", file=sys.stderr, flush=True)
                secs = train(data, d, a.threads, seed)
            for noise in a.noises:
                if a.report:
                    trajs = stored(d, a.limit, a.jobs, noise) if (d / "adapter_model.safetensors").exists() else None
                else:
                    print(f"{tag}: evaluating, noise {noise}…", file=sys.stderr, flush=True)
                    trajs = evaluate(str(d), d, a.limit, a.jobs, noise)
                if (got := take(tag, noise, size, secs, trajs)) is None:
                    missing.append(f"{tag} ({noise})")
                    continue
                trajs, trained_on, took = got
                rows.append(row(f"{tag} ({noise})", DATA[kind], trained_on, trajs, took))
                runs.setdefault((name, noise), []).append({t["id"]: t["em"] for t in trajs})
    everything = len(TRAJECTORIES.read_text(encoding="utf-8").splitlines())
    if a.default_from:  # the reproduction's fine-tuned cell already ran these questions
        wanted = {f"world-test-{i:04d}" for i in range(a.limit)}
        trajs = [summary(t) for f in sorted(a.default_from.glob("fine-tuned-off.*.jsonl"))
                 for t in map(json.loads, f.read_text(encoding="utf-8").splitlines()) if t["id"] in wanted]
        if len(trajs) != a.limit:
            raise SystemExit(f"{a.default_from} has {len(trajs)} of the first {a.limit} test questions")
    else:
        d = a.out_dir / "default"
        if a.report:
            trajs = stored(d, a.limit, a.jobs)
        else:
            d.mkdir(parents=True, exist_ok=True)
            print("default adapter: evaluating…", file=sys.stderr, flush=True)
            trajs = evaluate("default", d, a.limit, a.jobs)
    if got := take("default", "off", everything, float("nan"), trajs):
        rows.append(row("default (off)", "ReAct + CoT + Reflexion", got[1], got[0], float("nan")))
    print(f"\nFirst {a.limit} world test questions; training: recipe {RECIPE} (2 epochs), "
          f"samples drawn with seeds {', '.join(map(str, a.seeds))}.\n")
    print("| setting (noise) | data | trajectories | n | EM | mean steps | time/trial (s) | finished | training |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    ems = {k: [statistics.fmean(r.values()) for r in v] for k, v in runs.items()}
    if any(len(v) > 1 for v in ems.values()):
        print("\n| setting | noise | seeds | mean EM | sd | EM per seed |")
        print("| --- | --- | ---: | ---: | ---: | --- |")
        print("\n".join(spread(ems)))
    pairs = [(f"{x}-{n}", f"{y}-{n}") for n in sorted({n for _, n, _ in settings})
             for x, y in (("react", "multi"), ("additive", "multi"), ("additive", "react"))]
    # a larger ReAct-only sample, as large as the additive mix, tells more data from more methods
    pairs += [(f"additive-{n}", f"react-{m}") for n in a.additive for m in a.react_only if m > n]
    if diffs := differences(runs, pairs):
        print("\n| difference | noise | seeds (A / B) | questions | EM points | 95% interval (questions) |")
        print("| --- | --- | --- | ---: | ---: | --- |")
        print("\n".join(diffs))
    if falls := drops(runs, pairs):
        print("\n| relative drop, A − B | noise | seeds (A / B) | questions | drop A | drop B | points | "
              "95% interval (questions) |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
        print("\n".join(falls))
    if kept:
        print(f"\nFrom the ledger ({ledger_path}), not in {a.out_dir}: {', '.join(kept)}.")
    if missing:
        print(f"\nNot run yet: {', '.join(missing)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
