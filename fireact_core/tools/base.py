"""Tools are plain typed functions `(argument: str) -> str` with a docstring.

A `Toolbox` maps action names to tools, runs one with a timeout, and turns any failure
into an observation (`ToolResult.error`) so the agent loop goes on. Noise is applied by
`fireact_core.tools.noisy.NoisyToolbox`, which wraps a `Toolbox`.
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fireact_core.trajectory import NOISE_CLEAN

ToolFn = Callable[[str], str]


class ToolError(Exception):
    """A tool failed for a reason outside the program (service down, bad reply, missing key)."""


@dataclass
class ToolResult:
    observation: str
    noise: str = NOISE_CLEAN
    error: str | None = None


class Tools(Protocol):
    """What the agent loop needs from a set of tools."""

    def names(self) -> list[str]: ...

    def run(self, name: str, argument: str) -> ToolResult: ...

    def describe(self) -> str: ...


def describe_tool(name: str, fn: ToolFn) -> str:
    doc = inspect.getdoc(fn) or ""
    return f"{name}[...]: {doc.splitlines()[0] if doc else name}"


class Toolbox:
    """A set of named tools. `finish` is handled by the agent loop, not here."""

    def __init__(self, tools: Mapping[str, ToolFn], timeout_s: float = 30.0) -> None:
        self.tools = dict(tools)
        self.timeout_s = timeout_s
        # One worker thread; a tool that times out is abandoned, not killed.
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fireact-tool")

    def names(self) -> list[str]:
        return list(self.tools)

    def describe(self) -> str:
        return "\n".join(describe_tool(n, f) for n, f in self.tools.items())

    def run(self, name: str, argument: str) -> ToolResult:
        fn = self.tools.get(name)
        if fn is None:
            valid = ", ".join([*self.tools, "finish"])
            msg = f"Invalid action: unknown tool '{name}'. Valid actions: {valid}."
            return ToolResult(observation=msg, error=msg)
        future = self._pool.submit(fn, argument)
        try:
            out = future.result(timeout=self.timeout_s)
        except cf.TimeoutError:
            self._pool.shutdown(wait=False)
            self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fireact-tool")
            msg = f"Tool error: {name} timed out after {self.timeout_s:g} s."
            return ToolResult(observation=msg, error=msg)
        except ToolError as e:
            msg = f"Tool error: {name} failed: {e}"
            return ToolResult(observation=msg, error=msg)
        except Exception as e:  # a tool is user-supplied code: its failure must not end the run
            msg = f"Tool error: {name} raised {type(e).__name__}: {e}"
            return ToolResult(observation=msg, error=msg)
        return ToolResult(observation=str(out))
