"""The one rule for training data: which trajectories, and which of their steps, become training examples.

Both the app's export (`Store.export_training_set`) and the trainer (`fireact train --data`,
`train.data`) apply a `TrainingRule`; so does the teacher's output (`fireact generate`, EM-kept).

Which trajectories (`keep`): the raters' evidence travels beside each trajectory (`Trajectory.evidence`, a
`fireact_core.evidence.Evidence`, written by the store's export; an old export's `meta` keys migrate to it):
its `rating`, the mean of its thumbs (up +1, down -1) and of the blind votes it took part in (won +1,
lost -1, "both bad" -1; a tie counts for nothing), and its step labels, `[right, wrong]` counts per step
index; with the trajectory's own `em`, its exact match when the question had a gold answer. Files
without evidence (the paper's data, the teacher's) pass `keep="all"`, the trainer's default.

| keep | kept when |
| --- | --- |
| `all` | always |
| `em` | EM-correct (em == 1) |
| `rated` | rated up: rating > 0, or >= `min_rating` when that is set |
| `rated_or_em` | rated up, or EM-correct and not rated down (the app's default) |
| `rated_and_em` | both |

Failed and step-limited runs are dropped unless `include_failed`.

Which steps: a step whose labels say wrong more often than right is *bad*, and the trajectory is
cut before its first bad step (`bad_steps="cut"`, the default; `"keep"` ignores the labels). Cut,
not masked: every step after a bad one was written in a context the bad step made (its
observation, its consequences), so training on it teaches the agent to act on histories it should
never produce; and TRL's assistant-only loss has no per-turn mask to hide one turn while keeping
the rest. A trajectory whose first step is bad has nothing left and is dropped.

One Reflexion view: the final trial's steps (the successful attempt, and the released data's
shape); a `finish` that is not the last step is dropped, and so is the closing `Episode finished`
observation (never shown to the model, so never trained on).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fireact_core.errors import ConfigError
from fireact_core.evidence import StepVotes
from fireact_core.trajectory import Trajectory

KEEP_MODES = ("all", "em", "rated", "rated_or_em", "rated_and_em")
BAD_STEPS = ("cut", "keep")
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class TrainingRule:
    """Which trajectories (`keep`, `min_rating`, `include_failed`) and which steps (`bad_steps`) are trained on."""

    keep: str = "all"
    min_rating: float | None = None
    include_failed: bool = False
    bad_steps: str = "cut"

    def __post_init__(self) -> None:
        if self.keep not in KEEP_MODES:
            raise ConfigError(f"unknown training-set rule {self.keep!r}; choose one of {', '.join(KEEP_MODES)}")
        if self.bad_steps not in BAD_STEPS:
            raise ConfigError(f"bad_steps must be one of {', '.join(BAD_STEPS)}, not {self.bad_steps!r}")

    def why_dropped(self, traj: Trajectory) -> str | None:
        """None when the trajectory is trained on, else the reason it is not."""
        if not traj.steps:
            return "no steps"
        if not self.include_failed and traj.status != "finished":
            return f"status {traj.status}"
        if self.keep != "all":
            rating = rating_of(traj)
            good = rating is not None and (rating >= self.min_rating if self.min_rating is not None else rating > 0)
            bad = rating is not None and rating < 0
            correct = traj.em is not None and traj.em >= 1.0
            kept = {"em": correct, "rated": good, "rated_or_em": good or (correct and not bad),
                    "rated_and_em": good and correct}[self.keep]
            if not kept:
                return {"em": "em < 1", "rated": self._not_rated(), "rated_or_em": "neither rated up nor EM-correct",
                        "rated_and_em": "not both rated up and EM-correct"}[self.keep]
        if not self.steps(traj):
            return "first step labelled bad"
        return None

    def _not_rated(self) -> str:
        return f"rating below {self.min_rating:g}" if self.min_rating is not None else "not rated up"

    def steps(self, traj: Trajectory) -> list[Any]:
        """The steps trained on: the final trial's, cut before the first step labelled bad."""
        steps = final_trial_view(traj).steps
        if self.bad_steps == "cut":
            view_start = len(traj.steps) - len(steps)  # the final trial's steps end the trajectory
            for i in range(len(steps)):
                if is_bad_step(traj, view_start + i):
                    return steps[:i]
        return steps

    def messages(self, traj: Trajectory) -> Messages:
        """The chat the fine-tuned agent is trained on: the question alone, then Thought/Action and Observation turns."""
        return training_messages(replace(traj, steps=self.steps(traj), reflections=[]))

    def example(self, traj: Trajectory, fmt: str = "chat") -> Any:
        """The training example in prompt format `fmt` (`fireact_core.prompt_formats`): chat messages, or
        raw-text segments for `alpaca`."""
        from fireact_core import prompt_formats

        return prompt_formats.training_example(fmt, replace(traj, steps=self.steps(traj), reflections=[]))

    def select(self, trajs: list[Trajectory]) -> list[Trajectory]:
        """The trajectories this rule trains on."""
        return [t for t in trajs if self.why_dropped(t) is None]


def final_trial_view(traj: Trajectory) -> Trajectory:
    """The final trial's steps, without reflections (Reflexion's successful attempt)."""
    if not traj.steps:
        return traj
    last = traj.steps[-1].trial
    return replace(traj, steps=[s for s in traj.steps if s.trial == last], reflections=[])


def training_messages(traj: Trajectory) -> Messages:
    """The `chat` training example of a trajectory (`prompt_formats.training_example`): the final trial, without a
    `finish` that is not last or the closing observation."""
    from fireact_core import prompt_formats

    return prompt_formats.training_example("chat", traj)  # type: ignore[return-value]


def rating_of(traj: Trajectory) -> float | None:
    """The mean rating of the trajectory's evidence, None when unrated."""
    return traj.evidence.rating if traj.evidence else None


def is_bad_step(traj: Trajectory, index: int) -> bool:
    """Whether raters labelled step `index` wrong more often than right."""
    return traj.evidence is not None and traj.evidence.bad_step(index)


def step_votes(labels: list[dict[str, Any]]) -> dict[int, StepVotes]:
    """Right and wrong counts per step index from the store's step labels (a label with a wrong thought
    or a useless action counts as wrong; one with only right/useful marks as right)."""
    out: dict[int, StepVotes] = {}
    for label in labels:
        marks = [v for v in (label.get("thought_ok"), label.get("action_ok")) if v is not None]
        if not marks:
            continue
        i = int(label["step_idx"])
        votes = out.get(i, StepVotes())
        out[i] = replace(votes, right=votes.right + 1) if all(marks) else replace(votes, wrong=votes.wrong + 1)
    return out
