"""`fireact run "question"`: solve one question and stream the trajectory to the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from fireact_core.options import add_agent_args, agent_factory, format_notice, spec_from_args

NOISE_BADGES = {"none": "[noise: replaced by None]", "random": "[noise: replaced by an earlier observation]"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="solve one question, streaming the agent's steps",
                       description="Solve one question with an agent and stream its Thought/Action/Observation "
                                   "steps as they are generated.")
    p.add_argument("question", help="the question (at most 4,000 characters)")
    p.add_argument("--gold", default=None, help="the gold answer, if known (scores the run; Reflexion uses it)")
    p.add_argument("--task", default="", help="task whose scoring rule applies to --gold (e.g. strategyqa, mmlu)")
    p.add_argument("--json", action="store_true", help="print the trajectory as JSON instead of streaming it")
    add_agent_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fireact_core.agent import Finished, StepDone, StepStarted, TokenDelta, TrialStarted
    from fireact_core.errors import check_question

    question = check_question(args.question)  # before loading anything
    spec = spec_from_args(args)
    notice = format_notice(args, spec)
    if notice:
        print(notice, file=sys.stderr)
    agent = agent_factory(spec)(0)
    out: TextIO = sys.stdout
    traj = None
    stream = not args.json
    if stream:
        out.write(f"Question: {question}\n")
    for event in agent.run(question, gold=args.gold, task=args.task,
                           meta={"prompt_format_note": notice} if notice else None):
        if isinstance(event, Finished):
            traj = event.trajectory
        elif not stream:
            continue
        elif isinstance(event, TrialStarted) and event.trial > 0:
            out.write(f"\n--- trial {event.trial + 1} (reflection: {event.reflections[-1]})\n")
        elif isinstance(event, StepStarted):
            out.write(f"\n[step {event.index + 1}]\n")
        elif isinstance(event, TokenDelta):
            out.write(event.text)
        elif isinstance(event, StepDone):
            badge = NOISE_BADGES.get(event.step.noise)
            out.write(f"\nObservation: {event.step.observation}" + (f"  {badge}" if badge else "") + "\n")
        out.flush()
    assert traj is not None
    if args.json:
        out.write(json.dumps(traj.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return 0
    out.write(f"\nAnswer: {traj.answer if traj.answer else '(none)'}\n")
    if traj.reason:
        out.write(f"Stopped: {traj.reason}\n")
    if traj.em is not None:
        out.write(f"EM {traj.em:.0f}  F1 {traj.f1:.2f}\n")
    engine = traj.meta.get("engine")
    out.write(f"{traj.num_steps} steps, {traj.time_s:.1f} s, {traj.tokens_in + traj.tokens_out} tokens"
              + (f" ({engine})" if engine else "") + "\n")
    return 0 if traj.status != "failed" else 1
