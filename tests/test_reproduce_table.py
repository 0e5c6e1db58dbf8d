"""bench/reproduce.py's report on trajectories it did not run: the cells, the drops and their difference."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from fireact_core.trajectory import Step, Trajectory

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "bench" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _write(out: Path, agent: str, noise: str, ems: list[int], search: bool) -> None:
    with (out / f"{agent}-{noise}.0.jsonl").open("w") as f:
        for i, em in enumerate(ems):
            steps = [Step(action="search", argument="x", observation="o")] if search else []
            steps.append(Step(action="finish", argument="a", observation="Episode finished"))
            t = Trajectory(question=f"q{i}", id=f"q{i}", gold="a", task="world", steps=steps, answer="a", em=float(em), time_s=2.0 if search else 1.0,
                           meta={"type": "bridge", "hops": 2})
            f.write(json.dumps(t.to_dict()) + "\n")


def test_the_table_reports_drops_their_paired_difference_and_behaviour(tmp_path):
    bench = _bench()
    cfg = bench.RunConfig.load(tmp_path, model="gemma3", prompted="--constrained", noises="off,none")
    prompted, tuned = cfg.spec("prompted"), cfg.spec("fine-tuned")  # the options a person wrote, parsed once
    assert cfg.noises == ("off", "none") and prompted.constrained and not prompted.finetuned
    assert (prompted.model, prompted.adapter, prompted.method) == ("gemma3", None, "react")
    assert (tuned.model, tuned.adapter, tuned.finetuned, tuned.constrained) == ("gemma3", "default", True, False)
    cfg.save(tmp_path)
    _write(tmp_path, "prompted", "off", [1] * 30 + [0] * 30, search=True)
    _write(tmp_path, "prompted", "none", [1] * 10 + [0] * 50, search=True)
    _write(tmp_path, "fine-tuned", "off", [1] * 40 + [0] * 20, search=False)
    _write(tmp_path, "fine-tuned", "none", [1] * 36 + [0] * 24, search=False)
    text = bench.table(tmp_path)
    assert "- prompted: relative EM drop with noise 'none': 66.7%" in text
    assert "- fine-tuned: relative EM drop with noise 'none': 10.0%" in text
    assert "prompted drop minus fine-tuned drop, noise 'none': +56.7 points (95% CI +" in text
    assert "| prompted | off | 100% | 100% | 0% |" in text and "| fine-tuned | off | 0% | 100% | 100% |" in text
    assert "- fine-tuned / prompted time per trial (noise off): 0.50x" in text
    again = bench.RunConfig.load(tmp_path, adapter="runs/x")  # a later run reads the saved settings back
    assert again.noises == ("off", "none") and again.spec("prompted").model == "gemma3"
    assert again.spec("prompted").constrained and again.spec("fine-tuned").adapter == "runs/x"
    assert bench.table(tmp_path) == text
