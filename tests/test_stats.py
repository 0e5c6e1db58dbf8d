"""Leaderboard statistics against published worked examples and closed forms."""

from __future__ import annotations

import math
import random

import pytest

from fireact_core import stats


def test_krippendorff_alpha_matches_krippendorffs_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal example: α = 0.743.
    n = None
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3]
    c = [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]
    assert stats.krippendorff_alpha(list(zip(a, b, c, d))) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_edge_cases():
    assert stats.krippendorff_alpha([[1, 1], [2, 2], [1, 1]]) == pytest.approx(1.0)
    assert stats.krippendorff_alpha([[1], [2, None]]) is None  # nothing pairable
    assert stats.krippendorff_alpha([[1, 1], [1, 1]]) is None  # one label throughout
    assert stats.krippendorff_alpha([[1, 2], [2, 1]]) < 0


def test_fleiss_kappa_matches_the_wikipedia_example():
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert stats.fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    with pytest.raises(ValueError, match="same number"):
        stats.fleiss_kappa([[1, 1], [3, 0]])


def test_bradley_terry_two_players_is_the_odds_ratio():
    comps = [("x", "y", "a")] * 7 + [("x", "y", "b")] * 3
    s = stats.bradley_terry(comps, prior=0.0)
    assert s["x"] - s["y"] == pytest.approx(400 * math.log10(7 / 3), abs=1e-3)
    # Ties count half a win each: 5 wins + 2 ties of 10 → odds 6:4.
    t = stats.bradley_terry([("x", "y", "a")] * 5 + [("x", "y", "tie")] * 2 + [("x", "y", "b")] * 3, prior=0.0)
    assert t["x"] - t["y"] == pytest.approx(400 * math.log10(6 / 4), abs=1e-3)


def test_bradley_terry_recovers_the_order_of_simulated_strengths_and_stays_finite():
    rng = random.Random(1)
    strength = {"weak": 0.5, "mid": 1.0, "strong": 3.0}
    names = list(strength)
    comps = []
    for _ in range(600):
        a, b = rng.sample(names, 2)
        comps.append((a, b, "a" if rng.random() < strength[a] / (strength[a] + strength[b]) else "b"))
    s = stats.bradley_terry(comps)
    assert s["strong"] > s["mid"] > s["weak"]
    undefeated = stats.bradley_terry([("x", "y", "a")] * 5)
    assert math.isfinite(undefeated["x"]) and undefeated["x"] > undefeated["y"]


def test_bootstrap_interval_contains_the_point_and_narrows_with_data():
    rng = random.Random(0)
    small = [("x", "y", "a" if rng.random() < 0.7 else "b") for _ in range(20)]
    big = [("x", "y", "a" if rng.random() < 0.7 else "b") for _ in range(400)]
    s, lo, hi = stats.bootstrap_bt(small, rounds=100)["x"]
    assert lo <= s <= hi
    _, lo2, hi2 = stats.bootstrap_bt(big, rounds=100)["x"]
    assert hi2 - lo2 < hi - lo


def test_win_rates_count_ties_and_both_bad_as_half():
    wr = stats.win_rates([("x", "y", "a"), ("x", "y", "tie"), ("y", "x", "bad"), ("y", "x", "a")])
    assert wr["x"] == {"battles": 4, "wins": 1, "losses": 1, "ties": 2, "win_rate": 0.5}
    assert wr["y"]["wins"] == 1 and wr["y"]["win_rate"] == 0.5
    with pytest.raises(ValueError):
        stats.win_rates([("x", "y", "maybe")])


def test_rating_em_agreement_and_cohen_kappa():
    r = stats.rating_em_agreement([(1.0, 1.0), (-1.0, 0.0), (0.5, 0.0), (-1.0, 1.0), (0.0, 1.0)])
    assert r["n"] == 4 and r["agreement"] == 0.5  # the 0.0 mean rating is skipped
    assert stats.cohen_kappa([(1, 1), (0, 0), (1, 1), (0, 0)]) == pytest.approx(1.0)
    assert stats.rating_em_agreement([])["agreement"] is None


def test_run_summaries_and_em_by_noise():
    runs = [{"agent_key": "a", "gold": "x", "em": 1.0, "num_steps": 2, "time_s": 1.0, "tokens_in": 10, "tokens_out": 5,
             "noise_mode": "off", "noise_p": 0.5},
            {"agent_key": "a", "gold": "x", "em": 0.0, "num_steps": 4, "time_s": 3.0, "tokens_in": 20, "tokens_out": 5,
             "noise_mode": "none", "noise_p": 0.5},
            {"agent_key": "b", "gold": None, "em": None, "num_steps": 1, "time_s": 0.5, "tokens_in": 1, "tokens_out": 1,
             "noise_mode": "off", "noise_p": None},
            {"agent_key": "a", "gold": "x", "em": None, "num_steps": 0, "time_s": 0.1, "tokens_in": 0, "tokens_out": 0,
             "noise_mode": "off", "noise_p": 0.5, "status": "failed"}]  # its endpoint was down
    s = stats.summarise_runs(runs)
    assert s["a"]["em"] == 0.5 and s["a"]["steps"] == 3 and s["a"]["tokens"] == 20 and s["b"]["em"] is None
    assert s["a"]["runs"] == 3 and s["a"]["time_s"] == 2.0  # the failed run counts, but not in the means
    rows = stats.em_by_noise(runs)
    assert rows == [{"agent": "a", "noise": "clean", "runs": 1, "em": 1.0},
                    {"agent": "a", "noise": "none p=0.5", "runs": 1, "em": 0.0}]
