"""Methods and their prompts. Prompt texts and exemplars are data: `prompts/*.yaml`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fireact_core.errors import ConfigError

METHODS = ("io", "cot", "react", "reflexion")
PROMPTS_DIR = Path(__file__).parent / "prompts"


@dataclass
class Prompts:
    """Instructions per method and few-shot exemplars per method."""

    instructions: dict[str, str]
    examples: dict[str, list[dict[str, str]]]

    def instruction(self, method: str, **fmt: Any) -> str:
        if method not in self.instructions:
            raise ConfigError(f"no instruction for {method!r}; have {', '.join(self.instructions)}")
        return self.instructions[method].format(**fmt) if fmt else self.instructions[method]

    def exemplars(self, method: str, n: int) -> str:
        shots = self.examples.get(method, [])[:n]
        return "\n\n".join(f"Question: {s['question']}\n{s['text'].rstrip()}" for s in shots)


def load_prompts(path: str | Path | None = None) -> Prompts:
    """Load a prompts YAML: a path, or the name of a bundled one (`default`, `world`: `prompts/<name>.yaml`)."""
    name = str(path or "default")
    p = PROMPTS_DIR / f"{name}.yaml" if re.fullmatch(r"[\w-]+", name) else Path(name)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"prompts file not found: {p}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or "instructions" not in data:
        raise ConfigError(f"{p}: expected a mapping with 'instructions' and 'exemplars'")
    return Prompts(instructions=data["instructions"], examples=data.get("exemplars") or {})
