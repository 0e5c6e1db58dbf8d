"""The closed loop, one path from the arena's ratings to a new adapter the app offers.

    fireact loop --db app.duckdb --recipe smollm2-135m-world

1. export the rated set from the store (`Store.export_training_set` under a `TrainingRule`:
   by default trajectories rated up, or EM-correct and not rated down; steps labelled wrong cut);
2. train an adapter on it (the recipe's data plus the rated set; `train.sft.main`);
3. evaluate the new adapter against its predecessor (the newest earlier loop adapter in the
   adapters folder, else the bundled default) on held-out world questions (the `test` split);
4. write the model card's "Learned from" section (the battles and ratings behind it, and the
   comparison) and the same in `fireact.json` under `loop`;
5. register it: the folder lands in the app's adapters folder (`data/adapters/`), which the app
   re-scans on every page load, so a running app offers it without a restart; run from the
   app's admin button, the runtime also adds it to its choices at once and, after a push to the
   Hub, refreshes its Hub listing.

`run_loop(store, LoopConfig(...), progress=...)` is the whole loop; the CLI and the app call it.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fireact_core.errors import ConfigError
from fireact_core.paths import ADAPTERS_DIR, DEFAULT_ADAPTER  # train.commands reads ADAPTERS_DIR from here
from fireact_core.training_rule import TrainingRule

if TYPE_CHECKING:
    from fireact_core.spec import AgentSpec

Progress = Callable[[str], None]


@dataclass
class LoopConfig:
    """One turn of the loop: which recipe, which rated set, where the adapter goes, how it is compared."""

    recipe: str
    overrides: list[str] = field(default_factory=list)  # recipe `key=value` overrides
    keep: str = "rated_or_em"  # the training-set rule's `keep` over the store (fireact_core.training_rule)
    name: str | None = None  # the adapter's folder name (default: loop-<time>)
    adapters_dir: Path = ADAPTERS_DIR
    predecessor: str | None = None  # default: the newest earlier loop adapter, else the bundled default
    eval_questions: int = 20  # held-out world questions per adapter (0: no comparison)
    eval_split: str = "test"
    eval_options: str = "--max-steps 8"  # `fireact eval` agent options for both adapters
    push_to_hub: str | None = None
    work_dir: Path | None = None  # where the exported rated set goes (default: $FIREACT_CACHE/loop)


@dataclass
class LoopResult:
    adapter: Path
    data: Path
    trajectories: int
    battles: list[str]
    ratings: int
    comparison: dict[str, Any]
    hub_url: str | None = None

    def format(self) -> str:
        c = self.comparison
        lines = [f"adapter   {self.adapter}", f"learned   {self.trajectories} trajectories from {len(self.battles)} "
                 f"battles and {self.ratings} ratings ({self.data})"]
        if c.get("questions"):
            lines.append(f"EM        {_pct(c['new']['em'])} (new) vs {_pct(c['predecessor']['em'])} "
                         f"({c['predecessor']['adapter']}) on {c['questions']} {c['task']} {c['split']} questions")
        if self.hub_url:
            lines.append(f"hub       {self.hub_url}")
        return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def run_loop(store: Any, cfg: LoopConfig, *, progress: Progress = print) -> LoopResult:
    """Export the rated set from `store`, train, compare with the predecessor, write the card, register."""
    from train.config import load_config
    from train.sft import main as train

    rule = TrainingRule(keep=cfg.keep)
    name = cfg.name or f"loop-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(cfg.adapters_dir) / name
    if out.exists():
        raise ConfigError(f"{out} exists already; choose another --name")
    predecessor = cfg.predecessor or newest_adapter(cfg.adapters_dir)
    from fireact_core.models import cache_root

    # not in the adapter folder: a push would publish it
    data = Path(cfg.work_dir or cache_root() / "loop") / name / "rated.jsonl"
    progress(f"1/4 exporting the rated set ({cfg.keep}) …")
    n = store.export_training_set(data, rule)
    if n == 0:
        raise ConfigError(f"no stored trajectory passes the training-set rule {cfg.keep!r}: rate some battles first")
    learned = learned_from(store, data)
    progress(f"2/4 training on {n} rated trajectories from {len(learned['battles'])} battles …")
    base_cfg = load_config(cfg.recipe, cfg.overrides)
    values = {**base_cfg.to_dict(), "data": [*base_cfg.data, str(data)], "output_dir": str(out), "eval_questions": 0,
              "push_to_hub": None}
    tcfg = load_config(None, values)
    result = train(tcfg, log=lambda *a: progress("   " + " ".join(map(str, a))))
    trained = {k: result[k] for k in ("steps", "train_loss", "eval_loss") if k in result}
    comparison: dict[str, Any] = {}
    if cfg.eval_questions > 0 and predecessor:
        progress(f"3/4 evaluating the new adapter against {predecessor} on {cfg.eval_questions} held-out questions …")
        specs = {label: eval_spec(tcfg.base, adapter, cfg.eval_options)
                 for label, adapter in (("new", str(out)), ("predecessor", predecessor))}
        comparison = compare(specs, out, cfg)
    else:
        progress("3/4 no predecessor or no evaluation questions: skipping the comparison")
    info = {"name": name, "predecessor": predecessor, "rule": asdict(rule), "trajectories": n, **learned,
            "training": trained, "comparison": comparison, "store": str(getattr(store, "path", "")), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_card(out, info)
    hub_url = None
    if cfg.push_to_hub:
        from train.hub import push

        hub_url = push(out, cfg.push_to_hub)
    progress(f"4/4 registered {out}" + (f" and pushed to {hub_url}" if hub_url else ""))
    return LoopResult(out, data, n, learned["battles"], learned["ratings"], comparison, hub_url)


def newest_adapter(adapters_dir: str | Path) -> str | None:
    """The newest earlier loop adapter in `adapters_dir`, else the bundled default (None if neither)."""
    loops = []
    for p in Path(adapters_dir).glob("*/fireact.json"):
        try:
            at = json.loads(p.read_text(encoding="utf-8")).get("loop", {}).get("at")
        except (OSError, json.JSONDecodeError):
            continue
        if at:
            loops.append((at, p.parent))
    if loops:
        return str(max(loops)[1])
    return str(DEFAULT_ADAPTER) if (DEFAULT_ADAPTER / "adapter_config.json").is_file() else None


def learned_from(store: Any, data: Path) -> dict[str, Any]:
    """The battles and ratings behind the exported rated set."""
    from fireact_core.formats import read_trajectories

    trajs = list(read_trajectories(data))
    ids = [t.id for t in trajs]
    battles = sorted({r["battle_id"] for r in store.runs_table() if r["id"] in set(ids) and r["battle_id"]})
    evidence = [t.evidence for t in trajs if t.evidence]
    return {"runs": ids, "battles": battles, "ratings": sum(e.ratings for e in evidence),
            "step_labels": sum(len(e.steps) for e in evidence), "votes_won": sum(e.votes_won for e in evidence)}


def eval_spec(base: str, adapter: str, options: str) -> AgentSpec:
    """The comparison's agent: `adapter` on `base` with the loop's `eval_options` (agent options a person
    wrote on the command line or in the app's config), parsed here, where they come in."""
    from fireact_core.build import base_model_spec
    from fireact_core.options import spec_from_options

    return spec_from_options(shlex.split(options), model=base_model_spec(base), adapter=adapter)


def compare(specs: dict[str, AgentSpec], new: Path, cfg: LoopConfig) -> dict[str, Any]:
    """EM of each agent in `specs` (the new adapter's and its predecessor's, by label) on the same held-out
    world questions; their trajectories go to `new/eval_<label>.jsonl`."""
    from fireact_core.build import agent_factory
    from fireact_core.evaluate import evaluate
    from fireact_core.tasks import load_task

    task = load_task("world", cfg.eval_split)
    examples = task.examples[: cfg.eval_questions]
    out: dict[str, Any] = {"task": task.name, "split": task.split, "questions": len(examples),
                           "options": cfg.eval_options}
    for label, spec in specs.items():
        res = evaluate(agent_factory(spec), examples, out=new / f"eval_{label}.jsonl", progress=False)
        out[label] = {"adapter": spec.adapter, "em": res.em, "f1": res.f1, "mean_steps": res.mean_steps}
    return out


def write_card(folder: Path, info: dict[str, Any]) -> None:
    """Add the loop's record to the adapter's `fireact.json` and a "Learned from" section to its card."""
    from train.card import MANIFEST

    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest["loop"] = info
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    c = info["comparison"]
    lines = ["## Learned from", "",
             f"The arena's ratings in `{info['store']}`, exported under the training-set rule `{info['rule']['keep']}` "
             f"(`fireact loop`, {info['at']}): {info['trajectories']} trajectories from {len(info['battles'])} "
             f"battles, {info['ratings']} ratings and votes, {info['step_labels']} labelled steps.", ""]
    if info["battles"]:
        shown = info["battles"][:50]
        lines += ["Battles: " + ", ".join(f"`{b}`" for b in shown)
                  + (f" and {len(info['battles']) - len(shown)} more" if len(info["battles"]) > len(shown) else ""), ""]
    if c.get("questions"):
        lines += [f"Against its predecessor on {c['questions']} held-out {c['task']} {c['split']} questions "
                  f"(agent options `{c['options']}`):", "", "| adapter | EM | F1 | mean steps |", "| --- | --- | --- | --- |"]
        for label in ("new", "predecessor"):
            r = c[label]
            f1 = "n/a" if r["f1"] is None else f"{100 * r['f1']:.1f}%"
            lines.append(f"| {label} (`{Path(r['adapter']).name}`) | {_pct(r['em'])} | {f1} | {r['mean_steps']:.2f} |")
        lines.append("")
    card = (folder / "README.md").read_text(encoding="utf-8")
    section = "\n".join(lines)
    at = card.find("## Licence")
    card = card[:at] + section + "\n" + card[at:] if at >= 0 else card.rstrip("\n") + "\n\n" + section
    (folder / "README.md").write_text(card, encoding="utf-8")
