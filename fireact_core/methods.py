"""Methods and their prompts. Prompt texts and exemplars are data: `prompts/*.yaml`.

A prompts file gives each method its instruction and a fixed list of exemplars, or (`select:
nearest`, `pool: <trajectory file>`) draws each question's ReAct exemplars from a pool of correct
teacher trajectories: the ones whose questions are worded most alike, the entities left out
(nearest-neighbour few-shot selection, `prompts/nearest.yaml`).
"""

from __future__ import annotations

import functools
import itertools
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
    select: str = "first"  # first: the first n exemplars · nearest: the n whose questions are worded most alike
    shots: int | None = None  # the exemplar count the file is meant with (None: all of its ReAct exemplars)

    def react_shots(self) -> int:
        """How many ReAct exemplars a prompt from this file should hold (`shots`, else all of them)."""
        return self.shots if self.shots is not None else len(self.examples.get("react", []))

    def instruction(self, method: str, **fmt: Any) -> str:
        if method not in self.instructions:
            raise ConfigError(f"no instruction for {method!r}; have {', '.join(self.instructions)}")
        return self.instructions[method].format(**fmt) if fmt else self.instructions[method]

    def exemplars(self, method: str, n: int, question: str = "") -> str:
        """The prompt's few-shot block: `n` exemplars of `method` (those nearest to `question` under `select: nearest`)."""
        pool = self.examples.get(method, [])
        shots = nearest(pool, question, n) if self.select == "nearest" and question else pool[:n]
        return "\n\n".join(f"Question: {s['question']}\n{s['text'].rstrip()}" for s in shots)


_WORD = re.compile(r"[A-Za-z]+|\d+")


def wording(question: str) -> tuple[str, ...]:
    """A question's words without its names and numbers: "Which country is the director of Tovarin Sels
    from?" -> (which, country, is, the, director, of, from). Capitalised words after the first are names."""
    words = _WORD.findall(question)
    return tuple(w.lower() for i, w in enumerate(words) if not w.isdigit() and (i == 0 or not w[0].isupper()))


def similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Jaccard overlap of two wordings' words and word pairs (pairs keep the order: "born in" is not "in born")."""
    def grams(w: tuple[str, ...]) -> set[Any]:
        return set(w) | set(itertools.pairwise(w))

    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb) if ga or gb else 0.0


def nearest(pool: list[dict[str, str]], question: str, n: int) -> list[dict[str, str]]:
    """The `n` exemplars whose questions are worded most like `question` (ties: pool order); never the question itself."""
    want = wording(question)
    scored = [(-similarity(want, wording(s["question"])), i) for i, s in enumerate(pool) if s["question"] != question]
    return [pool[i] for _, i in sorted(scored)[:n]]


@functools.lru_cache(maxsize=4)
def _pool(path: Path, mtime: float, max_steps: int) -> tuple[dict[str, str], ...]:
    """The pool file's correct, noise-free ReAct trajectories as exemplars (read once per file version)."""
    from fireact_core.formats import read_trajectories

    out = []
    for t in read_trajectories(path):
        clean = all(s.noise in ("clean", None) for s in t.steps)
        if t.method == "react" and t.em == 1.0 and clean and 1 < len(t.steps) <= max_steps:
            out.append({"question": t.question, "text": t.render_react(final_observation=False)})
    if not out:
        raise ConfigError(f"{path}: no correct, noise-free ReAct trajectory to draw exemplars from")
    return tuple(out)


def _pool_path(spec: str, prompts_file: Path) -> Path:
    from fireact_core.tasks import data_dirs

    p = Path(spec).expanduser()
    root = Path(__file__).resolve().parents[1]
    for cand in ([p] if p.is_absolute() else [prompts_file.parent / p, root / p, *(d / p for d in data_dirs())]):
        if cand.is_file():
            return cand
    raise ConfigError(f"{prompts_file}: the exemplar pool {spec!r} was not found")


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
    examples, select = data.get("exemplars") or {}, data.get("select", "first")
    if select not in ("first", "nearest"):
        raise ConfigError(f"{p}: select is first or nearest, not {select!r}")
    if data.get("pool"):
        path = _pool_path(str(data["pool"]), p)
        examples = {**examples, "react": list(_pool(path, path.stat().st_mtime, int(data.get("pool_max_steps", 5))))}
    shots = data.get("shots")
    if shots is not None and (not isinstance(shots, int) or shots < 0):
        raise ConfigError(f"{p}: shots is a count of exemplars, not {shots!r}")
    return Prompts(instructions=data["instructions"], examples=examples, select=select, shots=shots)
