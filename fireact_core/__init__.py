"""FireAct core: trajectories, the agent loop, methods, tools, tasks, metrics and backends.

The names below load on first use (PEP 562), so importing a record (`fireact_core.trajectory`) loads
the record alone, not the agent loop above it; the layers are in `.importlinter`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fireact_core.agent import Agent, AgentConfig, Finished, StepDone, StepStarted, TokenDelta, TrialStarted
    from fireact_core.build import build_agent
    from fireact_core.errors import ConfigError, FireActError, FormatError, InputError
    from fireact_core.noise import NoiseConfig
    from fireact_core.spec import AgentSpec
    from fireact_core.trajectory import Step, Trajectory

__version__ = "0.1.0"

_WHERE = {
    "Agent": "agent", "Finished": "agent", "StepDone": "agent", "StepStarted": "agent", "TokenDelta": "agent",
    "TrialStarted": "agent", "AgentConfig": "spec", "AgentSpec": "spec", "build_agent": "build",
    "ConfigError": "errors", "FireActError": "errors", "FormatError": "errors", "InputError": "errors",
    "NoiseConfig": "noise", "Step": "trajectory", "Trajectory": "trajectory",
}
__all__ = ["Agent", "AgentConfig", "AgentSpec", "ConfigError", "Finished", "FireActError", "FormatError", "InputError",
           "NoiseConfig", "Step", "StepDone", "StepStarted", "TokenDelta", "Trajectory", "TrialStarted", "build_agent"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'fireact_core' has no attribute {name!r}")
    return getattr(importlib.import_module(f"fireact_core.{_WHERE[name]}"), name)
