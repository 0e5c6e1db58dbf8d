"""The paper's robustness finding as numbers: relative EM drops under a noisy tool, with intervals.

Pure functions of per-question EM (0/1) lists that are paired: the i-th entry of every list is
the same question, under the same noise draws for both agents.

- `relative_drop(off, noisy)`: 1 - EM(noisy) / EM(off); None when EM(off) is 0 (no drop to measure).
- `paired_drop_difference(...)`: the prompted agent's relative drop minus the fine-tuned agent's,
  with a percentile interval from a paired bootstrap over questions (each resample keeps a
  question's four outcomes together). A positive difference means the prompted agent loses
  more of its EM to the noise, the paper's finding.
- `mean_interval(diffs)`: a 95% percentile interval for the mean of per-question differences (one
  run's EM minus another's on the same questions), from a bootstrap over questions.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def relative_drop(off: Sequence[float], noisy: Sequence[float]) -> float | None:
    base = sum(off)
    return None if base == 0 else 1.0 - sum(noisy) / base


@dataclass(frozen=True)
class DropDifference:
    prompted: float | None  # relative drop
    finetuned: float | None
    difference: float | None  # prompted - finetuned
    low: float | None  # 95% percentile interval of the difference
    high: float | None
    rounds: int  # resamples in which both drops were defined

    def format(self) -> str:
        if self.difference is None:
            return "n/a (an agent has EM 0 without noise)"
        if self.low is None:
            return (f"{100 * self.difference:+.1f} points (no interval: in most resamples an agent has EM 0 "
                    "without noise, so the drop is undefined)")
        return f"{100 * self.difference:+.1f} points (95% CI {100 * self.low:+.1f} to {100 * self.high:+.1f})"


def paired_drop_difference(prompted_off: Sequence[float], prompted_noisy: Sequence[float],
                           finetuned_off: Sequence[float], finetuned_noisy: Sequence[float], *,
                           rounds: int = 2000, seed: int = 0) -> DropDifference:
    """Prompted minus fine-tuned relative EM drop, with a paired bootstrap interval."""
    cols = (prompted_off, prompted_noisy, finetuned_off, finetuned_noisy)
    n = len(prompted_off)
    if any(len(c) != n for c in cols):
        raise ValueError("the four EM lists must be paired: one entry per question in each")
    p, f = relative_drop(prompted_off, prompted_noisy), relative_drop(finetuned_off, finetuned_noisy)
    diff = None if p is None or f is None else p - f
    rng = random.Random(seed)
    samples: list[float] = []
    for _ in range(rounds if n else 0):
        idx = [rng.randrange(n) for _ in range(n)]
        rp = relative_drop([prompted_off[i] for i in idx], [prompted_noisy[i] for i in idx])
        rf = relative_drop([finetuned_off[i] for i in idx], [finetuned_noisy[i] for i in idx])
        if rp is not None and rf is not None:
            samples.append(rp - rf)
    samples.sort()
    if diff is None or len(samples) < rounds // 2:  # too few resamples with a defined drop
        return DropDifference(p, f, diff, None, None, len(samples))
    lo, hi = samples[int(0.025 * (len(samples) - 1))], samples[int(0.975 * (len(samples) - 1))]
    return DropDifference(p, f, diff, lo, hi, len(samples))


def mean_interval(diffs: Sequence[float], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `diffs`, resampling its items (`rounds` times, seeded)."""
    rng = random.Random(seed)
    boot = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(rounds))
    return boot[int(0.025 * rounds)], boot[int(0.975 * rounds) - 1]
