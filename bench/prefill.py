"""Prefill per trajectory with key/value reuse against re-encoding every step, on a real ReAct run.

Runs the Agent (ReAct, the project's exemplars) with the local backend on SmolLM2 and a tiny
in-memory encyclopedia as its `search` tool, records every model call, and prints the tokens
prefilled with reuse, the tokens a re-encoding backend would prefill (every call's whole context),
both divided by the final context length, and `prefill ratio: X` (reuse). Target: <= 1.1.

    .venv/bin/python bench/prefill.py [--adapter default] [--max-steps 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

# this checkout's packages first, not an installed copy, and not bench/train.py for the `train` package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CORPUS = {
    "velmora library": "The Velmora Library is a public library in Ostrand, designed by the architect Idris Kallum.",
    "idris kallum": "Idris Kallum (1888-1960) was an architect born in Tessary. He designed the Velmora Library.",
    "ostrand": "Ostrand is a port city on the Amber coast, the capital of the province of Lune.",
    "tessary": "Tessary is a mountain country east of Ostrand. Its capital is Hollin.",
}
# The prompted 135M base rarely searches; on this question it runs the full step limit (its turns
# lack an Action, so each step is re-asked and gets an "Invalid action" observation), which
# exercises the cache over many calls. A fine-tuned adapter (--adapter) searches for real.
QUESTION = "In which country was the architect of the Velmora Library born?"


def search(query: str) -> str:
    """Look a title up in a small encyclopedia."""
    q = query.strip().lower()
    for title, text in CORPUS.items():
        if title in q or q in title:
            return text
    return f"Could not find [{query}]. Similar: {', '.join(t.title() for t in CORPUS)}."


class Recording:
    """Wraps a model session and keeps every call's `Completion`."""

    def __init__(self, inner, calls: list) -> None:
        self.inner, self.calls, self.name = inner, calls, inner.name

    def session(self) -> Recording:
        return Recording(self.inner.session(), self.calls)

    def stream(self, messages: Sequence[dict], *, stop: Sequence[str] = (), max_tokens: int = 256) -> Iterator:
        from fireact_core.backends.base import Completion

        for item in self.inner.stream(messages, stop=stop, max_tokens=max_tokens):
            if isinstance(item, Completion):
                self.calls.append(item)
            yield item


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--adapter", default=None, help="a fine-tuned adapter (then the agent runs in fine-tuned mode)")
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--question", default=QUESTION)
    args = ap.parse_args()

    from fireact_core.agent import Agent, AgentConfig
    from fireact_core.factory import load_model
    from fireact_core.tools.base import Toolbox

    model = load_model(args.model, adapter=args.adapter)
    calls: list = []
    config = AgentConfig(method="react", max_steps=args.max_steps, max_tokens=96, finetuned=bool(args.adapter))
    agent = Agent(Recording(model, calls), Toolbox({"search": search}), config)
    t = time.perf_counter()
    traj = agent.solve(args.question)
    dt = time.perf_counter() - t
    for i, s in enumerate(traj.steps):
        action = f"{s.action}[{s.argument}]" if s.action else (s.error or "")[:60]
        print(f"step {i + 1}: {action}  (prefilled {s.prefill_tokens} of {s.tokens_in} context tokens)")
    print(f"answer: {traj.answer!r}; {len(traj.steps)} steps, {len(calls)} model calls, {dt:.1f}s")
    final = calls[-1].prompt_tokens + calls[-1].completion_tokens
    reuse = sum(c.prefill_tokens for c in calls)
    reencode = sum(c.prompt_tokens for c in calls)
    print(f"final context: {final} tokens")
    print(f"re-encoding every call: {reencode} tokens prefilled ({reencode / final:.2f} x final context)")
    print(f"with key/value reuse:   {reuse} tokens prefilled")
    print(f"prefill ratio: {reuse / final:.3f}")


if __name__ == "__main__":
    main()
