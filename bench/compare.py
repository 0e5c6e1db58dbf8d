"""Two adapters on the same questions: EM by kind of question, and the paired difference.

Reads the trajectory files `fireact eval` writes (several files per run are joined, so a run
split with `--offset` counts as one), keeps the questions every run answered, and prints a
Markdown table: each run's EM overall and per kind of question (2-hop and 3-hop bridges, yes/no
and "which" comparisons, self-contained) with 95% Wilson intervals, then each later run minus the
first, overall and per kind, with a 95% paired bootstrap interval over the questions.

    fireact eval --task world --split test --limit 200 --adapter runs/smollm2-135m-world --out runs/cmp/a.jsonl
    fireact eval --task world --split test --limit 200 --adapter runs/smollm2-135m-world-3hop --out runs/cmp/b.jsonl
    python bench/compare.py stage-1=runs/cmp/a.jsonl stage-2=runs/cmp/b.jsonl
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy
from fireact_core.paths import REPO as ROOT

sys.path.append(str(ROOT / "bench"))  # after the checkout: bench/train.py must not shadow the `train` package
from reproduce import _kind, wilson

from fireact_core.robustness import mean_interval

OVERALL = "all"


def read_run(paths: Sequence[Path]) -> dict[str, tuple[str, float]]:
    """Question id -> (kind of question, EM) over the run's files; a question seen twice keeps its last."""
    from fireact_core.formats import read_trajectories

    out: dict[str, tuple[str, float]] = {}
    for path in paths:
        for t in read_trajectories(path):
            out[t.id or t.question] = (_kind(t), float(t.em or 0.0))
    return out


def compare(runs: dict[str, dict[str, tuple[str, float]]], samples: int = 2000) -> dict[str, Any]:
    """EM per run and kind (with Wilson intervals) and each later run minus the first (paired bootstrap)."""
    names = list(runs)
    ids = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not ids:
        raise ValueError("the runs share no question")
    first = runs[names[0]]
    kinds = [OVERALL, *sorted({first[q][0] for q in ids})]
    groups = {k: [q for q in ids if k == OVERALL or first[q][0] == k] for k in kinds}
    em = {}
    for name, run in runs.items():
        for k, qs in groups.items():
            correct = sum(run[q][1] for q in qs)
            em[(name, k)] = (correct, len(qs), wilson(correct, len(qs)))
    diffs = {}
    for name in names[1:]:
        for k, qs in groups.items():
            diff = [runs[name][q][1] - first[q][1] for q in qs]
            diffs[(name, k)] = (statistics.fmean(diff), mean_interval(diff, samples))
    return {"names": names, "kinds": kinds, "n": len(ids), "em": em, "diffs": diffs}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _signed(x: float) -> str:
    return f"{100 * x:+.1f}".replace("-", "−")


def table(result: dict[str, Any]) -> str:
    names, kinds = result["names"], result["kinds"]
    lines = [f"{result['n']} questions answered by every run.", "",
             "| run | " + " | ".join(f"{k} ({result['em'][(names[0], k)][1]})" for k in kinds) + " |",
             "| --- |" + " ---: |" * len(kinds)]
    for name in names:
        cells = []
        for k in kinds:
            correct, n, (lo, hi) = result["em"][(name, k)]
            cells.append(f"{_pct(correct / n)} ({_pct(lo)}–{_pct(hi)}; {correct:g} of {n})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name in names[1:]:
        cells = []
        for k in kinds:
            mean, (lo, hi) = result["diffs"][(name, k)]
            cells.append(f"{_signed(mean)} ({_signed(lo)} to {_signed(hi)})")
        lines.append(f"| {name} − {names[0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_run(text: str) -> tuple[str, list[Path]]:
    """`NAME=FILE[,FILE…]`, or a bare file named by its stem."""
    name, sep, files = text.partition("=")
    if not sep:
        name, files = Path(text).stem, text
    return name, [Path(f) for f in files.split(",") if f]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="NAME=FILE[,FILE...]",
                   help="a run's trajectory files (the first run is the one the others are compared with)")
    p.add_argument("--samples", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    args = p.parse_args(argv)
    runs = dict(parse_run(r) for r in args.runs)
    if len(runs) < 2:
        p.error("give at least two runs")
    print(table(compare({name: read_run(paths) for name, paths in runs.items()}, args.samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
