"""Relative EM drops and the paired bootstrap of their difference."""

from __future__ import annotations

import pytest

from fireact_core.robustness import paired_drop_difference, relative_drop


def test_relative_drop():
    assert relative_drop([1, 1, 0, 1], [1, 0, 0, 0]) == pytest.approx(2 / 3)
    assert relative_drop([0, 0], [1, 0]) is None
    assert relative_drop([1, 0], [1, 1]) == pytest.approx(-1.0)  # noise can help: a negative drop


def test_a_clear_difference_has_an_interval_that_excludes_zero():
    n = 100
    p_off, p_noisy = [1] * 60 + [0] * 40, [1] * 20 + [0] * 80  # drops 2/3
    f_off, f_noisy = [1] * 60 + [0] * 40, [1] * 55 + [0] * 45  # drops 1/12
    d = paired_drop_difference(p_off, p_noisy, f_off, f_noisy, rounds=500, seed=1)
    assert d.prompted == pytest.approx(2 / 3) and d.finetuned == pytest.approx(1 / 12)
    assert d.difference == pytest.approx(2 / 3 - 1 / 12) and 0 < d.low < d.difference < d.high
    assert d.rounds == 500 and "+58.3 points" in d.format() and len(p_off) == n


def test_equal_drops_give_an_interval_around_zero_and_the_seed_replays():
    off, noisy = [1, 0] * 30, [1, 0, 0, 0] * 15
    d = paired_drop_difference(off, noisy, off, noisy, rounds=300, seed=2)
    assert d.difference == 0 and d.low <= 0 <= d.high
    assert paired_drop_difference(off, noisy, off, noisy, rounds=300, seed=2) == d


def test_undefined_drops_and_unpaired_lists():
    d = paired_drop_difference([0, 0], [0, 0], [1, 1], [1, 0], rounds=50)
    assert d.difference is None and d.low is None and "n/a" in d.format()
    rare = paired_drop_difference([1] + [0] * 29, [0] * 30, [0, 1] + [0] * 28, [1] * 2 + [0] * 28, rounds=200)
    assert rare.difference == pytest.approx(2.0) and rare.low is None and "no interval" in rare.format()
    with pytest.raises(ValueError, match="paired"):
        paired_drop_difference([1], [1, 0], [1], [1])
