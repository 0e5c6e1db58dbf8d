"""Write the world to a folder, and read it back.

Layout (all UTF-8 JSON Lines, sorted, no timestamps, so a seed gives the same bytes):

    corpus.jsonl                  {"title", "text"} per article, sorted by title
    entities.jsonl                {"title", "kind", "facts"} per entity (what the teacher knows)
    questions/{train,dev,test}.jsonl
    trajectories/train.jsonl      scripted-teacher trajectories (optional, `--trajectories N`)
    manifest.json                 seed, size, counts and the SHA-256 of every file
    README.md
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError, FormatError
from worldgen.articles import corpus
from worldgen.generator import Entity, World, build_world
from worldgen.questions import SPLITS, make_questions


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"{path} not found: generate the world with `fireact world --out {path.parent}`")
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise FormatError(f"invalid JSON: {e.msg}", path=str(path), line=n) from None
    return out


def write_world(seed: int, out: str | Path, size: float = 1.0, targets: dict[str, int] | None = None) -> dict[str, Any]:
    """Generate the world for `seed` into `out`; return the manifest (without the trajectories)."""
    out = Path(out)
    w = build_world(seed, size)
    qs = make_questions(w, seed, targets)
    _jsonl(out / "corpus.jsonl", corpus(w))
    _jsonl(out / "entities.jsonl", [{"title": t, "kind": w[t].kind, "facts": w[t].facts} for t in sorted(w.entities)])
    for split in SPLITS:
        _jsonl(out / "questions" / f"{split}.jsonl", qs[split])
    return write_manifest(out, seed, size)


def write_manifest(out: Path, seed: int, size: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """manifest.json and README.md from what is in `out` now."""
    entities = read_jsonl(out / "entities.jsonl")
    questions = {s: read_jsonl(out / "questions" / f"{s}.jsonl") for s in SPLITS}
    files = sorted(p for p in out.rglob("*.jsonl"))
    manifest: dict[str, Any] = {
        "seed": seed, "size": size,
        "command": f"fireact world --seed {seed} --out DIR" + (f" --size {size:g}" if size != 1.0 else "")
                   + (_trajectory_flags(extra["trajectories"]) if extra and "trajectories" in extra else ""),
        "entities": dict(sorted(Counter(e["kind"] for e in entities).items())), "n_entities": len(entities),
        "questions": {s: dict(sorted(Counter(q["kind"].split(":")[0] if q["type"] != "bridge" else f"bridge{q['hops']}"
                                             for q in qs).items())) for s, qs in questions.items()},
        "n_questions": {s: len(qs) for s, qs in questions.items()},
        **(extra or {}),
        "files": {p.relative_to(out).as_posix(): {"bytes": p.stat().st_size,
                                                  "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(manifest), encoding="utf-8")
    return manifest


def _trajectory_flags(stats: dict[str, Any]) -> str:
    """The `fireact world` flags that regenerate these trajectories (`--bridge3` only when not the default)."""
    from worldgen.teacher import BRIDGE3_SHARE

    share = stats.get("bridge3", BRIDGE3_SHARE)
    return f" --trajectories {stats['requested']}" + (f" --bridge3 {share:g}" if share != BRIDGE3_SHARE else "")


def read_world(folder: str | Path) -> World:
    """The entities of a generated world (for the teacher), from `entities.jsonl`."""
    folder = Path(folder)
    seed = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("seed", 0) if (folder / "manifest.json").is_file() else 0
    w = World(seed)
    for r in read_jsonl(folder / "entities.jsonl"):
        w.add(Entity(r["title"], r["kind"], r["facts"]))
    return w


def read_questions(folder: str | Path, split: str) -> list[dict[str, Any]]:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return read_jsonl(Path(folder) / "questions" / f"{split}.jsonl")


def _readme(m: dict[str, Any]) -> str:
    counts = ", ".join(f"{n:,} {k}" for k, n in m["entities"].items())
    qs = "\n".join(f"| {s} | {m['n_questions'][s]:,} | " + ", ".join(f"{k} {n}" for k, n in m["questions"][s].items()) + " |"
                   for s in SPLITS)
    traj = m.get("trajectories")
    traj_md = ""
    if traj:
        traj_md = ("\n## Teacher trajectories\n\n`trajectories/train.jsonl`: " + f"{traj['kept']:,} scripted-teacher trajectories "
                   "(trajectory JSONL, `fireact_core.formats`), all with EM = 1 (filtered by answer, as for an LLM teacher).\n"
                   "By method: " + ", ".join(f"{k} {n}" for k, n in traj["by_method"].items()) + "; by noise: "
                   + ", ".join(f"{k} {n}" for k, n in traj["by_noise"].items())
                   + ("; by hops: " + ", ".join(f"{k} {n}" for k, n in traj["by_hops"].items())
                      + f" (3-hop: {traj['by_hops'].get('3', 0):,} trajectories of {traj['bridge3_questions']:,} questions, "
                      f"a share of {traj['bridge3']:g} set by `--bridge3`; a question can have more than one trajectory; "
                      "after each article it reads, a bridge Thought names the hops still to go)"
                      if "by_hops" in traj else "") + ".\n\n"
                   "Reflexion trajectories are stored in their training form, one clean episode: the first attempt's steps "
                   "(a planned mistake), then a Thought that says \"let me do a reflection\" (the phrase of the paper's own "
                   "Reflexion data) and states the lesson (also in `reflections`), then the corrected steps. The first "
                   "attempt's wrong `finish` is left out, since a fine-tuned agent's episode ends at `finish`; being one "
                   "episode, its steps are all trial 0, and `meta.reflection_step` indexes the reflecting step.\n")
    files = "\n".join(f"| {p} | {f['bytes']:,} |" for p, f in m["files"].items())
    return f"""# The offline world (seed {m['seed']})

A generated encyclopedia whose facts no model knows, with HotpotQA-style questions about it.
Regenerate it byte for byte with (DIR = this folder, e.g. `data/world`):

    {m['command']}

Entities: {m['n_entities']:,} ({counts}). Every entity has a 2–4 sentence article in `corpus.jsonl`,
searched by the offline `corpus` tool (`fireact_core/tools/corpus.py`).

| split | questions | kinds |
| --- | --- | --- |
{qs}

Question records: `id, question, answer, type (bridge | comparison | self-contained), kind, hops,
supporting (titles of the articles needed), bridge (the intermediate entities), entities` and,
for the scripted teacher, `chain`, `compare` or `solution`. No bridge entity of a test (dev)
question appears in any train question: held-out entities never occur in the train split.
{traj_md}
| file | bytes |
| --- | --- |
{files}
"""
