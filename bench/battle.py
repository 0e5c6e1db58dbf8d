"""A default world battle timed end to end, as the arena runs it: both sides, on the app's own path.

The sides are the arena's defaults (`space.sides.side_specs` with the page's default values: the
prompted SmolLM2 with the default prompting, nearest exemplars and extractive decoding; the
fine-tuned side with the bundled adapter), loaded through the app's loader (`AppConfig().load_model`,
one base shared by both sides) and run by `space.runner.run_battle`, both sides at once on the
same cores. Prints each side's load time, its steps' latencies, and the shares of prefill and
decode in its model calls; the battle's wall time, first with the decoding weights still to be
built (a fresh app's first battle) and then once loaded (`--rounds` more); the engine that served
each side; and the process's peak resident memory (`ru_maxrss`) with the default base and
adapter loaded and a battle run.

    .venv/bin/python bench/battle.py [--threads 2] [--rounds 2] [--question "..."]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# this checkout's packages first, not an installed copy, and not bench/train.py for the `train` package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
QUESTION = "In what year was the singer of the band Broken Giatan born?"


class Timed:
    """A model view that keeps every call's `Completion` (prefill and decode seconds, tokens)."""

    def __init__(self, inner: Any, calls: list) -> None:
        self.inner, self.calls, self.name = inner, calls, inner.name

    @property
    def supports_constraint(self) -> bool:
        return bool(getattr(self.inner, "supports_constraint", False))

    @property
    def engine(self) -> str | None:
        return getattr(self.inner, "engine", None)

    def session(self) -> Timed:
        return Timed(self.inner.session(), self.calls)

    def stream(self, messages: Sequence[dict], *, stop: Sequence[str] = (), max_tokens: int = 256,
               **kw: Any) -> Iterator:
        from fireact_core.backends.base import Completion

        for item in self.inner.stream(messages, stop=stop, max_tokens=max_tokens, **kw):
            if isinstance(item, Completion):
                self.calls.append(item)
            yield item


def default_specs(cfg: Any) -> list:
    """The two sides a fresh arena page runs (its form's default values), resolved as a battle resolves them."""
    from fireact_core.models import DEFAULT_ADAPTER
    from space.choices import DEFAULT_METHOD, DEFAULT_PROMPTING, DEFAULT_SHOTS, FinetunedChoice
    from space.sides import side_specs

    prompted_model = cfg.prompted_choices()[0][1]
    prompted, finetuned, _ = side_specs(prompted_model, DEFAULT_METHOD, DEFAULT_SHOTS,
                                        FinetunedChoice(adapter=str(DEFAULT_ADAPTER)).value, DEFAULT_PROMPTING)
    return [cfg.defaults.resolve(prompted), cfg.defaults.resolve(finetuned)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (a free CPU Space has 2 cores)")
    ap.add_argument("--rounds", type=int, default=2, help="battles after the first (timed once loaded)")
    ap.add_argument("--question", default=QUESTION)
    ap.add_argument("--keep-cache", action="store_true",
                    help="keep the keys/values llama.cpp holds from one battle to the next (default: drop them, "
                         "so each battle prefills in full, as a new question does)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    t_import = time.perf_counter()
    from space.config import AppConfig
    from space.render import SideView
    from space.runner import Battle, ModelPool, run_battle

    cfg = AppConfig()
    print(f"threads: {torch.get_num_threads()}, cpu: {torch.backends.cpu.get_cpu_capability()}, "
          f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"imports {time.perf_counter() - t_import:.1f}s")
    specs = default_specs(cfg)
    calls: dict[int, list] = {0: [], 1: []}
    loaded: dict[tuple[str, str | None], Any] = {}
    for i, spec in enumerate(specs):  # the app loads on a side's first battle; timed apart here
        t = time.perf_counter()
        loaded[(spec.model, spec.adapter)] = (cfg.load_model(spec.model, spec.adapter), i)
        print(f"side {i} ({spec.key}): loaded in {time.perf_counter() - t:.1f}s")
    pool = ModelPool(lambda m, a: Timed(loaded[(m, a)][0], calls[loaded[(m, a)][1]]), cfg.model_limits)

    walls = []
    for r in range(1 + args.rounds):
        for c in calls.values():
            c.clear()
        if not args.keep_cache:
            for model, _ in loaded.values():
                model.forget()
        views = [SideView(title=t) for t in ("prompted", "fine-tuned")]
        t = time.perf_counter()
        for _ in run_battle(Battle(args.question, max_steps=cfg.max_steps), specs, views, pool=pool,
                            make_tools=cfg.make_tools):
            pass
        wall = time.perf_counter() - t
        walls.append(wall)
        label = "first battle (decoders built in it)" if r == 0 else f"battle {r} (loaded)"
        print(f"\n{label}: {wall:.2f}s wall")
        for i, v in enumerate(views):
            traj = v.trajectory
            cs = calls[i]
            pre, dec = sum(c.prefill_s for c in cs), sum(c.decode_s for c in cs)
            toks = sum(max(0, c.completion_tokens - 1) for c in cs)
            steps = ", ".join(f"{s.latency_s:.2f}" for s in traj.steps)
            print(f"  {v.title:10s} {traj.status}, answer {traj.answer!r}, {traj.time_s:.2f}s, "
                  f"engine: {traj.meta.get('engine')}")
            print(f"    steps (s): {steps}")
            print(f"    model calls {pre + dec:.2f}s: prefill {pre:.2f}s ({sum(c.prefill_tokens for c in cs)} tokens), "
                  f"decode {dec:.2f}s ({sum(c.completion_tokens for c in cs)} tokens, "
                  f"{toks / dec if dec else 0:.1f} tok/s after each first)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    once = min(walls[1:]) if len(walls) > 1 else walls[0]
    print(f"\npeak memory (ru_maxrss): {peak:.0f} MiB")
    print(f"default battle once loaded: {once:.2f}s (best of {len(walls) - 1 or 1}; goal <= 8 s on 2 cores)")


if __name__ == "__main__":
    main()
