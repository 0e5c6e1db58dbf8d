"""The paper's metrics as pure functions: HotpotQA normalisation, exact match and token F1.

`task` selects the paper's rule: StrategyQA scores whether the prediction starts with the
gold yes/no, MMLU whether it starts with the gold letter; every other task (HotpotQA,
Bamboogle, the offline world) uses normalised exact match.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Lower case, strip punctuation and the articles a/an/the, collapse whitespace."""
    s = str(s).lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _starts_with(pred: str, gold: str) -> bool:
    """The paper's `pred.lower().startswith(gold)`, at a word boundary and past leading
    spaces and brackets: "B. 12" and "(B)" match B, "Because" does not; "Yes, since…"
    matches yes, "yesterday" does not. Not normalised: "A" is an article there."""
    p, g = str(pred).strip().lower().lstrip("([{*\"' "), str(gold).strip().lower()
    return bool(g) and p.startswith(g) and (len(p) == len(g) or not p[len(g)].isalnum())


def _gold_str(gold: object) -> str:
    if isinstance(gold, bool):
        return "yes" if gold else "no"
    return str(gold)


def exact_match(pred: str, gold: object, task: str = "") -> bool:
    """Normalised exact match; StrategyQA/MMLU: the prediction starts with the gold."""
    g = _gold_str(gold)
    if task in ("strategyqa", "mmlu"):
        return _starts_with(pred, g)
    return normalize_answer(pred) == normalize_answer(g)


def f1(pred: str, gold: object, task: str = "") -> float:
    """Token F1 over normalised answers; a yes/no/noanswer mismatch scores 0."""
    if task in ("strategyqa", "mmlu"):
        return float(exact_match(pred, gold, task))
    p, g = normalize_answer(pred), normalize_answer(_gold_str(gold))
    special = ("yes", "no", "noanswer")
    if (p in special or g in special) and p != g:
        return 0.0
    pt, gt = p.split(), g.split()
    common = Counter(pt) & Counter(gt)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pt), same / len(gt)
    return 2 * precision * recall / (precision + recall)
