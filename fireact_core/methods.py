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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fireact_core.errors import ConfigError
from fireact_core.spec import METHODS  # noqa: F401  (the record's; read here by callers)

PROMPTS_DIR = Path(__file__).parent / "prompts"


@dataclass
class Prompts:
    """Instructions per method and few-shot exemplars per method."""

    instructions: dict[str, str]
    examples: dict[str, list[dict[str, str]]]
    select: str = "first"  # first: the first n exemplars · nearest: the n whose questions are worded most alike
    shots: int | None = None  # the exemplar count the file is meant with (None: all of its ReAct exemplars)
    # Raw prompts given verbatim (`paper`): task -> the ReAct prompt text (instruction and exemplars), for
    # `prompt + question + "\n"`; "" is the task used when a question's task has no file of its own.
    raw: dict[str, str] = field(default_factory=dict)

    def raw_prompt(self, method: str, task: str = "") -> str | None:
        """The raw prompt text for a question of `task` (None: these prompts are instructions and exemplars)."""
        if not self.raw:
            return None
        if method != "react":
            raise ConfigError(f"the paper's prompts are given verbatim for ReAct (and Reflexion) here, not {method!r}")
        return self.raw.get(task) or self.raw[""]

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
    from fireact_core.paths import HOME as root
    from fireact_core.tasks import data_dirs

    p = Path(spec).expanduser()
    for cand in ([p] if p.is_absolute() else [prompts_file.parent / p, root / p, *(d / p for d in data_dirs())]):
        if cand.is_file():
            return cand
    raise ConfigError(f"{prompts_file}: the exemplar pool {spec!r} was not found")


PAPER = "paper"
# The paper's ReAct prompt files per task (the authors' repository, prompts/; the released data's prompts/ folder).
PAPER_FILES = {"hotpotqa": "react_hotpotqa_google.txt", "strategyqa": "react_strategyqa_google.txt",
               "mmlu": "react_mmlu_google.txt"}


def paper_prompts() -> Prompts:
    """The FireAct paper's few-shot ReAct prompts, verbatim, read from the paper's data folder
    (`$FIREACT_DATA/prompts/` or `../shared/data/fireact/prompts/`), never copied into the project.

    HotpotQA's is the one used for a question of another task (Bamboogle, a typed question), as the
    authors' Bamboogle runs did. Reflexion's extra instructions (reflect, self_eval) are the default file's.
    """
    from fireact_core.tasks import data_dirs

    dirs = [d / "prompts" for d in data_dirs()]
    folder = next((d for d in dirs if (d / PAPER_FILES["hotpotqa"]).is_file()), None)
    if folder is None:
        raise ConfigError("the paper's prompts (prompts/react_hotpotqa_google.txt of its data release) were not found in "
                          f"{', '.join(map(str, dirs)) or '(no data folder)'}; set FIREACT_DATA to the folder of the "
                          "FireAct data (anchen1011/FireAct, data/ and prompts/)")
    raw = {task: (folder / name).read_text(encoding="utf-8") for task, name in PAPER_FILES.items()
           if (folder / name).is_file()}
    raw[""] = raw["hotpotqa"]
    shots = [{"question": b.split("\n", 1)[0], "text": b.split("\n", 1)[1]}
             for b in raw["hotpotqa"].split("\n\n") if "\nThought:" in b]
    base = load_prompts("default")
    return Prompts(instructions=base.instructions, examples={"react": shots}, shots=len(shots), raw=raw)


def load_prompts(path: str | Path | None = None) -> Prompts:
    """Load a prompts YAML: a path, or the name of a bundled one (`default`, `world`: `prompts/<name>.yaml`);
    `paper` is the paper's own ReAct prompts, verbatim (`paper_prompts`)."""
    name = str(path or "default")
    if name == PAPER:
        return paper_prompts()
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
