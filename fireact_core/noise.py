"""The noisy search tool's configuration, part of the agent record (`AgentSpec.noise`).

The tool itself, which applies it, is `fireact_core.tools.noisy.NoisyToolbox`; what it did to each
observation is `Step.noise` (`fireact_core.trajectory`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fireact_core.errors import ConfigError

NOISE_MODES = ("off", "none", "random")
SEED_LIMIT = 2**31  # the store keeps the seed in an INTEGER column


@dataclass(frozen=True)
class NoiseConfig:
    """Noisy search: with probability `p` an observation becomes "None" or a random earlier one; `seed` replays it.

    Each field's `flag` and `help` are its CLI option (`fireact_core.options`)."""

    mode: str = field(default="off", metadata={
        "flag": "--noise", "choices": NOISE_MODES,
        "help": "noisy search: off, none (observation → 'None'), random (→ an earlier observation)"})
    p: float = field(default=0.5, metadata={"flag": "--p", "probability": True, "help": "noise probability"})
    seed: int = field(default=0, metadata={"flag": "--seed", "help": "noise seed; the same seed replays a run"})

    def __post_init__(self) -> None:
        if self.mode not in NOISE_MODES:
            raise ConfigError(f"unknown noise mode {self.mode!r}; choose one of {', '.join(NOISE_MODES)}")
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"noise probability must be within [0, 1], got {self.p}")
        if not isinstance(self.seed, int) or not -SEED_LIMIT <= self.seed < SEED_LIMIT:
            raise ConfigError(f"the noise seed must be a whole number within ±{SEED_LIMIT:,}")

    @classmethod
    def from_values(cls, mode: str | None, p: float | None, seed: float | None) -> NoiseConfig:
        """From a form's values (a number may be NaN or infinite): a clear `ConfigError` for anything out of range."""
        p_, seed_ = float(p or 0.0), float(seed or 0)
        if not math.isfinite(seed_) or seed_ != int(seed_):
            raise ConfigError(f"the noise seed must be a whole number within ±{SEED_LIMIT:,}")
        return cls(mode or "off", p_, int(seed_))

    @property
    def active(self) -> bool:
        return self.mode != "off" and self.p > 0
