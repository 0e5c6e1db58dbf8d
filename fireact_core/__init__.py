"""FireAct core: trajectories, the agent loop, methods, tools, tasks, metrics and backends."""

from fireact_core.agent import Agent, AgentConfig, Finished, StepDone, StepStarted, TokenDelta, TrialStarted
from fireact_core.errors import ConfigError, FireActError, FormatError, InputError
from fireact_core.spec import AgentSpec, build_agent
from fireact_core.tools.noisy import NoiseConfig
from fireact_core.trajectory import Step, Trajectory

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentSpec",
    "ConfigError",
    "Finished",
    "FireActError",
    "FormatError",
    "InputError",
    "NoiseConfig",
    "Step",
    "StepDone",
    "StepStarted",
    "TokenDelta",
    "Trajectory",
    "TrialStarted",
    "build_agent",
]
