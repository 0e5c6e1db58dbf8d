"""What raters said about one trajectory: `Evidence`, carried beside it (`Trajectory.evidence`) to the trainer.

The store's export (`Store.training_candidates`) writes it from the arena's thumbs, blind votes and step
labels; the training-set rule (`fireact_core.training_rule`) reads it. In JSON it is the trajectory's
`evidence` object, step indexes as the string keys JSON needs; in memory they are ints.

Files exported before it existed carry the same numbers loose in `meta` (`rating`, `ratings`, `votes_won`,
`votes_lost`, `step_votes` keyed by "0", "1", ...), and hand-made files may rate with a list or with words
(`up`, `down`); `Evidence.from_meta` reads all of them, so `Trajectory` migrates them when it is made.

The record layer: this module imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LEGACY_META_KEYS = ("rating", "ratings", "votes_won", "votes_lost", "step_votes")


@dataclass(frozen=True)
class StepVotes:
    """How many raters labelled one step right, and how many wrong."""

    right: int = 0
    wrong: int = 0

    @property
    def bad(self) -> bool:
        """Labelled wrong more often than right (a tie is not bad)."""
        return self.wrong > self.right


@dataclass(frozen=True)
class Evidence:
    """Ratings of one trajectory: `rating` is the mean of its thumbs (up +1, down -1) and of the blind votes it
    took part in (won +1, lost or "both bad" -1; a tie counts for nothing), None when nobody rated it;
    `ratings` how many thumbs and votes; `steps` the step labels by step index."""

    rating: float | None = None
    ratings: int = 0
    votes_won: int = 0
    votes_lost: int = 0
    steps: Mapping[int, StepVotes] = field(default_factory=dict)

    def bad_step(self, index: int) -> bool:
        """Whether raters labelled step `index` wrong more often than right."""
        votes = self.steps.get(index)
        return votes is not None and votes.bad

    @classmethod
    def from_scores(cls, thumbs: list[int], won: int = 0, lost: int = 0,
                    steps: Mapping[int, StepVotes] | None = None) -> Evidence:
        """From the store's rows: each thumb's score, the votes won and lost, the step labels."""
        scores = [*thumbs, *[1] * won, *[-1] * lost]
        return cls(rating=sum(scores) / len(scores) if scores else None, ratings=len(scores), votes_won=won,
                   votes_lost=lost, steps=dict(steps or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"rating": self.rating, "ratings": self.ratings, "votes_won": self.votes_won,
                "votes_lost": self.votes_lost, "step_votes": {str(i): [v.right, v.wrong] for i, v in
                                                              sorted(self.steps.items())}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evidence:
        """From `to_dict`'s object, or from an old record's `meta` (the same keys, `rating` in any of its forms)."""
        rating = d.get("rating")
        if isinstance(rating, list):
            scores = [s for s in map(_score, rating) if s is not None]
            mean, count = (sum(scores) / len(scores) if scores else None), len(scores)
        else:
            mean = _score(rating)
            count = 0 if mean is None else 1
        steps = {int(i): StepVotes(int(v[0]), int(v[1])) for i, v in (d.get("step_votes") or {}).items()
                 if str(i).lstrip("-").isdigit() and isinstance(v, (list, tuple)) and len(v) == 2}
        return cls(rating=mean, ratings=int(d.get("ratings") or count), votes_won=int(d.get("votes_won") or 0),
                   votes_lost=int(d.get("votes_lost") or 0), steps=steps)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Evidence | None:
        """The evidence an old export left in `meta`, None when it has none."""
        return cls.from_dict(meta) if any(k in meta for k in LEGACY_META_KEYS) else None


def _score(r: Any) -> float | None:
    """A rating as a number: a number, a bool (True: up) or a word (up, good, down, bad); None otherwise."""
    if isinstance(r, bool):
        return 1.0 if r else -1.0
    if isinstance(r, (int, float)):
        return float(r)
    if isinstance(r, str):
        return {"up": 1.0, "good": 1.0, "down": -1.0, "bad": -1.0}.get(r.strip().lower())
    return None
