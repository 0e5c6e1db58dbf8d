"""Run an agent over a task's examples and summarise: the logic behind `fireact eval`.

    from fireact_core.evaluate import evaluate
    summary = evaluate(lambda i: Agent(model, tools, config), task.examples[:50], out="runs/dev.jsonl")
    print(summary.format())

`agent_factory(i)` gives the agent for the i-th example (a fresh one each time: tools keep
per-agent state, and noise draws from its own seed). Each trajectory is written as one JSON
line as soon as it ends, so an interrupted run keeps what it did.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from fireact_core.agent import Agent
from fireact_core.tasks import Example
from fireact_core.trajectory import Trajectory


@dataclass
class Summary:
    """Aggregate results of a run. EM/F1 are means over the examples with a gold answer."""

    n: int = 0
    scored: int = 0  # examples with a gold answer
    em: float | None = None
    f1: float | None = None
    mean_steps: float = 0.0
    time_per_trial_s: float = 0.0
    tokens_per_trial: float = 0.0  # prompt + completion tokens
    tokens_in_per_trial: float = 0.0
    tokens_out_per_trial: float = 0.0
    cost_usd: float = 0.0
    status: dict[str, int] = field(default_factory=dict)  # finished / step_limit / failed → count
    engines: dict[str, int] = field(default_factory=dict)  # what decoded them (local models say) → count
    out: str | None = None

    @classmethod
    def of(cls, trajs: Sequence[Trajectory], out: str | None = None) -> Summary:
        n = len(trajs)
        s = cls(n=n, out=out)
        if not n:
            return s
        scored = [t for t in trajs if t.gold is not None]
        s.scored = len(scored)
        if scored:
            s.em = sum(t.em or 0.0 for t in scored) / len(scored)
            s.f1 = sum(t.f1 or 0.0 for t in scored) / len(scored)
        s.mean_steps = sum(t.num_steps for t in trajs) / n
        s.time_per_trial_s = sum(t.time_s for t in trajs) / n
        s.tokens_in_per_trial = sum(t.tokens_in for t in trajs) / n
        s.tokens_out_per_trial = sum(t.tokens_out for t in trajs) / n
        s.tokens_per_trial = s.tokens_in_per_trial + s.tokens_out_per_trial
        s.cost_usd = sum(t.cost_usd for t in trajs)
        for t in trajs:
            s.status[t.status] = s.status.get(t.status, 0) + 1
            engine = t.meta.get("engine") if isinstance(t.meta, dict) else None
            if engine:
                s.engines[str(engine)] = s.engines.get(str(engine), 0) + 1
        return s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """The lines `fireact eval` prints."""
        def pct(x: float | None) -> str:
            return "n/a (no gold answers)" if x is None else f"{100 * x:.1f}"

        lines = [
            f"examples        {self.n}" + (f" ({self.scored} with gold)" if self.scored != self.n else ""),
            f"EM              {pct(self.em)}",
            f"F1              {pct(self.f1)}",
            f"mean steps      {self.mean_steps:.2f}",
            f"time/trial      {self.time_per_trial_s:.2f} s",
            f"tokens/trial    {self.tokens_per_trial:.0f} (in {self.tokens_in_per_trial:.0f}, "
            f"out {self.tokens_out_per_trial:.0f})",
            "status          " + ", ".join(f"{k} {v}" for k, v in sorted(self.status.items())),
        ]
        if len(self.engines) == 1:  # the time per trial depends on it
            lines.append(f"engine          {next(iter(self.engines))}")
        elif self.engines:
            lines.append("engines         " + ", ".join(f"{k} ({v})" for k, v in sorted(self.engines.items())))
        if self.cost_usd:
            lines.append(f"cost            ${self.cost_usd:.4f}")
        if self.out:
            lines.append(f"trajectories    {self.out}")
        return "\n".join(lines)


def evaluate(agent_factory: Callable[[int], Agent], examples: Iterable[Example], *,
             out: str | Path | IO[str] | None = None, progress: bool = True,
             on_trajectory: Callable[[Trajectory], None] | None = None) -> Summary:
    """Solve each example with a fresh agent; write trajectories (JSONL) to `out`; summarise.

    Each trajectory's `agent` is the `AgentSpec` its agent was built from (`build_agent`);
    `progress` shows a tqdm bar on stderr; `on_trajectory` sees each trajectory as it ends.
    """
    examples = list(examples)
    trajs: list[Trajectory] = []
    sink: IO[str] | None
    if out is None or hasattr(out, "write"):
        sink, close, out_name = out, False, getattr(out, "name", None)  # type: ignore[assignment]
    else:
        path = Path(out)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        sink, close, out_name = path.open("w", encoding="utf-8"), True, str(path)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(examples), file=sys.stderr, unit="q", dynamic_ncols=True)
    try:
        for i, ex in enumerate(examples):
            traj = agent_factory(i).solve(ex.question, gold=ex.answer, task=ex.task, id=ex.id,
                                          meta=dict(ex.meta))
            trajs.append(traj)
            if sink is not None:
                sink.write(json.dumps(traj.to_dict(), ensure_ascii=False) + "\n")
                sink.flush()
            if on_trajectory is not None:
                on_trajectory(traj)
            if bar is not None:
                scored = [t for t in trajs if t.gold is not None]
                if scored:
                    bar.set_postfix(EM=f"{100 * sum(t.em or 0 for t in scored) / len(scored):.1f}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if close and sink is not None:
            sink.close()
    return Summary.of(trajs, out=out_name)


__all__ = ["Summary", "evaluate"]
