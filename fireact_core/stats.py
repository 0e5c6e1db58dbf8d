"""The leaderboard's statistics as pure functions of plain lists.

- `win_rates`: blind win rate per agent (a tie or "both bad" counts half).
- `bradley_terry`: Bradley–Terry strengths by Hunter's MM algorithm (ties count half a win
  each), regularised by `prior` pseudo-games against a fixed reference so an undefeated
  agent stays finite; reported on the Elo scale (reference = 1000, 400 points = 10× odds).
- `bootstrap_bt`: percentile confidence intervals by resampling the comparisons.
- `krippendorff_alpha` (nominal, any number of raters per item, missing ratings allowed) and
  `fleiss_kappa` (a constant number of raters per item): inter-rater agreement.
- `rating_em_agreement`: do human thumbs agree with exact match? (agreement and Cohen's kappa).
- `summarise_runs`, `em_by_noise`: per-agent means of EM, steps, time and tokens.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

Comparison = tuple[str, str, str]  # (agent A, agent B, outcome: a | b | tie | bad)
OUTCOME_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5, "bad": 0.5}


def _score(outcome: str) -> float:
    if outcome not in OUTCOME_SCORE:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOME_SCORE)}")
    return OUTCOME_SCORE[outcome]


def win_rates(comparisons: Iterable[Comparison]) -> dict[str, dict[str, float]]:
    """Per agent: battles, wins, losses, ties (incl. both bad) and win rate (ties count half)."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"battles": 0, "wins": 0, "losses": 0, "ties": 0})
    for a, b, outcome in comparisons:
        s = _score(outcome)
        if a == b:  # the same configuration on both sides says nothing about it
            continue
        for name, mine in ((a, s), (b, 1.0 - s)):
            row = out[name]
            row["battles"] += 1
            row["wins" if mine == 1.0 else "losses" if mine == 0.0 else "ties"] += 1
    for row in out.values():
        row["win_rate"] = (row["wins"] + 0.5 * row["ties"]) / row["battles"]
    return dict(out)


def bradley_terry(comparisons: Sequence[Comparison], *, prior: float = 1.0, iters: int = 500,
                  tol: float = 1e-9) -> dict[str, float]:
    """Bradley–Terry scores on the Elo scale (a reference player at 1000)."""
    players = sorted({p for a, b, _ in comparisons for p in (a, b)})
    if not players:
        return {}
    wins: dict[str, float] = defaultdict(float)
    games: dict[tuple[str, str], float] = defaultdict(float)
    for a, b, outcome in comparisons:
        if a == b:
            continue
        s = _score(outcome)
        wins[a] += s
        wins[b] += 1.0 - s
        games[(a, b)] += 1.0
        games[(b, a)] += 1.0
    p = dict.fromkeys(players, 1.0)
    for _ in range(iters):
        new = {}
        for i in players:
            # `prior` games against a reference of strength 1, half of them won.
            denom = prior / (p[i] + 1.0) + sum(n / (p[i] + p[j]) for (x, j), n in games.items() if x == i)
            w = wins[i] + prior / 2.0
            new[i] = w / denom if denom > 0 else p[i]
        delta = max(abs(math.log(new[i]) - math.log(p[i])) for i in players if new[i] > 0 and p[i] > 0)
        p = new
        if delta < tol:
            break
    return {i: 1000.0 + 400.0 * math.log10(max(p[i], 1e-12)) for i in players}


def bootstrap_bt(comparisons: Sequence[Comparison], *, rounds: int = 200, seed: int = 0, prior: float = 1.0,
                 level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """{agent: (score, low, high)}: BT on all comparisons, with a percentile bootstrap interval."""
    point = bradley_terry(comparisons, prior=prior)
    if not point:
        return {}
    rng = random.Random(seed)
    samples: dict[str, list[float]] = defaultdict(list)
    n = len(comparisons)
    for _ in range(rounds):
        resample = [comparisons[rng.randrange(n)] for _ in range(n)]
        scores = bradley_terry(resample, prior=prior, iters=200, tol=1e-6)
        for name in point:
            samples[name].append(scores.get(name, 1000.0))  # absent from the resample: no information
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    out = {}
    for name, s in point.items():
        xs = sorted(samples[name])
        out[name] = (s, _quantile(xs, lo_q), _quantile(xs, hi_q))
    return out


def _quantile(xs: Sequence[float], q: float) -> float:
    if not xs:
        return float("nan")
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def krippendorff_alpha(units: Iterable[Sequence[Hashable | None]]) -> float | None:
    """Krippendorff's alpha for nominal labels.

    `units` holds, per rated item, the labels its raters gave (None = not rated by that rater).
    Items with fewer than two labels are not pairable and are ignored. Returns None when alpha
    is undefined (no pairable item, or a single label used throughout).
    """
    coincidence: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        labels = [x for x in unit if x is not None]
        m = len(labels)
        if m < 2:
            continue
        counts = Counter(labels)
        for c, nc in counts.items():
            for k, nk in counts.items():
                pairs = nc * (nk - 1) if c == k else nc * nk
                coincidence[(c, k)] += pairs / (m - 1)
    if not coincidence:
        return None
    marg: dict[Hashable, float] = defaultdict(float)
    for (c, _), v in coincidence.items():
        marg[c] += v
    n = sum(marg.values())
    observed = sum(v for (c, k), v in coincidence.items() if c != k)
    expected = sum(marg[c] * marg[k] for c in marg for k in marg if c != k) / (n - 1)
    if expected == 0:
        return None
    return 1.0 - observed / expected


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa from an items × categories table of counts (same number of raters per item)."""
    rows = [list(r) for r in table if sum(r) > 0]
    if not rows:
        return None
    n = sum(rows[0])
    if n < 2 or any(sum(r) != n for r in rows):
        raise ValueError("Fleiss' kappa needs the same number (≥ 2) of ratings for every item")
    items = len(rows)
    p_j = [sum(r[j] for r in rows) / (items * n) for j in range(len(rows[0]))]
    p_i = [(sum(c * c for c in r) - n) / (n * (n - 1)) for r in rows]
    p_bar = sum(p_i) / items
    p_e = sum(p * p for p in p_j)
    if p_e == 1.0:
        return None
    return (p_bar - p_e) / (1 - p_e)


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two label sequences given as pairs; None when undefined."""
    if not pairs:
        return None
    n = len(pairs)
    po = sum(1 for a, b in pairs if a == b) / n
    ca, cb = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    pe = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if pe == 1.0:
        return None
    return (po - pe) / (1 - pe)


def rating_em_agreement(items: Iterable[tuple[float, float]]) -> dict[str, Any]:
    """Agreement between human judgement and EM over (mean thumbs in [-1, 1], em in {0, 1}).

    An item counts as judged good when its mean thumbs is > 0, bad when < 0 (0 is skipped).
    """
    pairs = [(r > 0, em >= 1.0) for r, em in items if r != 0 and em is not None]
    if not pairs:
        return {"n": 0, "agreement": None, "kappa": None}
    agree = sum(1 for a, b in pairs if a == b) / len(pairs)
    return {"n": len(pairs), "agreement": agree, "kappa": cohen_kappa(pairs)}


def _mean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else None


def summarise_runs(runs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per agent key: runs, EM, mean steps, time (s), tokens (in+out) and cost over its runs.

    A failed run (its model raised, or its endpoint was down) counts as a run and has no EM; the
    means of steps, time, tokens and cost leave it out, so an outage does not pass for a fast agent."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        groups[r["agent_key"]].append(r)
    out = {}
    for key, rs in groups.items():
        ran = [r for r in rs if r.get("status") != "failed"]
        out[key] = {
            "runs": len(rs),
            "em": _mean([r["em"] for r in rs if r.get("gold") is not None]),
            "steps": _mean([r["num_steps"] for r in ran]),
            "time_s": _mean([r["time_s"] for r in ran]),
            "tokens": _mean([(r["tokens_in"] or 0) + (r["tokens_out"] or 0) for r in ran]),
            "cost_usd": _mean([r.get("cost_usd") or 0.0 for r in ran]),
        }
    return out


def noise_label(mode: str | None, p: float | None) -> str:
    if not mode or mode == "off" or not p:
        return "clean"
    return f"{mode} p={p:g}"


def em_by_noise(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (agent, noise, runs, em) over runs that have a gold answer."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in runs:
        if r.get("gold") is None or r.get("em") is None:
            continue
        groups[(r["agent_key"], noise_label(r.get("noise_mode"), r.get("noise_p")))].append(r["em"])
    return [{"agent": a, "noise": n, "runs": len(v), "em": sum(v) / len(v)} for (a, n), v in sorted(groups.items())]


def em_by_chosen_method(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (agent, method, runs, em) over runs that have a gold answer: what each agent chose to do
    (`Trajectory.chosen_method`: a one-step `answer`, a `react` search, `cot`, ...) and how right it was."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in runs:
        if r.get("gold") is None or r.get("em") is None:
            continue
        groups[(r["agent_key"], r.get("chosen_method") or "unknown")].append(r["em"])
    return [{"agent": a, "method": m, "runs": len(v), "em": sum(v) / len(v)} for (a, m), v in sorted(groups.items())]
