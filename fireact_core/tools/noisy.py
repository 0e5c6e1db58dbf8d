"""The paper's noisy search tool: with probability p an observation becomes "None" or a
random earlier observation. The paper describes it; its released code has no such wrapper.

Draws come from a `random.Random(seed)`, one pair of draws per tool call whether or not
noise hits, so two agents with the same seed see noise at the same call indices and a run
replays exactly. The pool of earlier observations is this run's own clean observations,
or a list supplied by the caller (the app supplies its store's).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from fireact_core.noise import NOISE_MODES, SEED_LIMIT, NoiseConfig  # the record's; re-exported for callers
from fireact_core.tools.base import ToolResult, Tools
from fireact_core.trajectory import NOISE_NONE, NOISE_RANDOM

__all__ = ["NOISE_MODES", "SEED_LIMIT", "NoiseConfig", "NoisyToolbox"]


class NoisyToolbox:
    """Wraps a `Tools`; each call that is not an error may have its observation replaced."""

    def __init__(self, inner: Tools, config: NoiseConfig, pool: Sequence[str] | None = None) -> None:
        self.inner = inner
        self.config = config
        self.rng = random.Random(config.seed)
        self.supplied_pool = list(pool) if pool is not None else None
        self.history: list[str] = []

    def names(self) -> list[str]:
        return self.inner.names()

    def describe(self) -> str:
        return self.inner.describe()

    def run(self, name: str, argument: str) -> ToolResult:
        result = self.inner.run(name, argument)
        hit = self.rng.random() < self.config.p
        pick = self.rng.random()
        if result.error is None:
            self.history.append(result.observation)
        if not (self.config.active and hit) or result.error is not None:
            return result
        if self.config.mode == NOISE_NONE:
            return ToolResult(observation="None", noise=NOISE_NONE)
        pool = self.supplied_pool if self.supplied_pool is not None else self.history[:-1]
        if not pool:  # nothing earlier to replay yet: the paper's other failure, "None"
            return ToolResult(observation="None", noise=NOISE_NONE)
        return ToolResult(observation=pool[int(pick * len(pool))], noise=NOISE_RANDOM)

