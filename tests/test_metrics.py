"""The paper's metrics: HotpotQA normalisation, EM, token F1, StrategyQA and MMLU prefix rules."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fireact_core.metrics import exact_match, f1, normalize_answer


@pytest.mark.parametrize("raw, norm", [
    ("The Eiffel Tower", "eiffel tower"),
    ("  a   Tale of Two   Cities! ", "tale of two cities"),
    ("U.S.A.", "usa"),
    ("an apple, the pear", "apple pear"),
    ("theatre", "theatre"),  # articles only as whole words
    ("", ""),
])
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


@pytest.mark.parametrize("pred, gold, em, f", [
    ("James Madison", "james madison", True, 1.0),
    ("the United States", "United States.", True, 1.0),
    ("Madison", "James Madison", False, 2 * (1 * 0.5) / 1.5),
    ("James Madison Jr", "James Madison", False, 2 * (2 / 3 * 1) / (2 / 3 + 1)),
    ("yes", "no", False, 0.0),
    ("yes", "yes sir", False, 0.0),  # a yes/no/noanswer mismatch scores 0, not partial credit
    ("no answer", "noanswer", False, 0.0),
    ("Paris", "London", False, 0.0),
])
def test_em_and_f1_hotpotqa(pred, gold, em, f):
    assert exact_match(pred, gold) is em
    assert f1(pred, gold) == pytest.approx(f)
    assert exact_match(pred, gold, task="bamboogle") is em  # Bamboogle scores like HotpotQA


@pytest.mark.parametrize("pred, gold, em", [
    ("yes", "yes", True),
    ("Yes, because bats are mammals.", "yes", True),
    ("no.", False, True),  # StrategyQA's gold is a bool
    ("yes", True, True),
    ("No", True, False),
    ("yesterday", "yes", False),
    ("maybe yes", "yes", False),
    ("", "no", False),
])
def test_strategyqa_prefix(pred, gold, em):
    assert exact_match(pred, gold, task="strategyqa") is em
    assert f1(pred, gold, task="strategyqa") == float(em)


@pytest.mark.parametrize("pred, gold, em", [
    ("A", "A", True),  # "a" is an article: the letter must not be normalised away
    ("a", "A", True),
    ("B. 12", "B", True),
    ("(C)", "C", True),
    ("D", "A", False),
    ("Because it is", "B", False),
    ("A", "B", False),
])
def test_mmlu_letter(pred, gold, em):
    assert exact_match(pred, gold, task="mmlu") is em


text = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " \t", max_size=40)


@settings(max_examples=150, deadline=None)
@given(text)
def test_normalize_is_idempotent(s):
    once = normalize_answer(s)
    assert normalize_answer(once) == once
    assert once == once.strip() and "  " not in once


@settings(max_examples=150, deadline=None)
@given(text, text)
def test_f1_bounds_symmetry_and_em_implies_full_f1(a, b):
    score = f1(a, b)
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(f1(b, a))
    if exact_match(a, b) and normalize_answer(a):
        assert score == 1.0
    if score == 1.0:
        assert sorted(normalize_answer(a).split()) == sorted(normalize_answer(b).split())


@settings(max_examples=100, deadline=None)
@given(text)
def test_answer_matches_itself_and_its_decorations(s):
    assert exact_match(s, s)
    assert exact_match(f"The {s}!", s)  # a leading article and trailing punctuation never matter
    assert exact_match(f"  {s.upper()} ", s)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["yes", "no"]), text)
def test_strategyqa_any_continuation_after_a_boundary(gold, tail):
    pred = gold + (" " + tail if tail else "")
    assert exact_match(pred, gold, task="strategyqa")
    assert not exact_match(pred, "no" if gold == "yes" else "yes", task="strategyqa")
