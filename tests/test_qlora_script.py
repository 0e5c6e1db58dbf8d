"""bench/qlora_cuda.py, the prepared CUDA QLoRA script, run here with `--cpu` on its tiny Llama.

The script trains through the project's trainer (4-bit NF4, double quantisation, paged 8-bit AdamW,
gradient checkpointing), checks every LoRA B tensor moved, loads the adapter in 4-bit and runs one
agent step; its summary says what ran, read back from the layers and the optimiser. (~15 s on CPU.)
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "qlora_cuda.py"

pytest.importorskip("bitsandbytes")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _run(*args: str, out: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    cmd = [sys.executable, str(SCRIPT), *args, *(["--out", str(out)] if out else [])]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def _script() -> object:
    spec = importlib.util.spec_from_file_location("qlora_cuda", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> dict:
    if _cuda():
        pytest.skip("a CUDA device is present: run bench/qlora_cuda.py itself, --cpu is for machines without one")
    out = tmp_path_factory.mktemp("qlora")
    proc = _run("--cpu", out=out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all checks passed" in proc.stdout
    return json.loads((out / "qlora_summary.json").read_text())


def test_the_cpu_run_trains_in_4bit_with_8bit_adamw_and_every_lora_b_moves(summary):
    assert summary["ran_on"] == "cpu" and summary["passed"] is True and all(summary["checks"].values())
    t = summary["train"]
    q, o = t["quantisation"], t["optimiser"]
    assert t["four_bit"] and q["linear4bit_layers"] == 14  # 2 layers x (q k v o gate up down)
    assert q["quant_types"] == ["nf4"] and q["double_quant"] and q["compute_dtypes"] == ["bfloat16"]
    assert o["optim_bits"] == 8 and o["is_paged"] and o["tensors"] == 8 and o["state_8bit"] == 8
    assert o["state_paged"] == 0  # no paging on CPU: listed as a substitution
    assert any("paged" in s for s in summary["substituted"])
    assert t["gradient_checkpointing"] and t["bf16_autocast"] and t["steps"] == 4
    assert t["lora_b_tensors"] == 4 and t["lora_b_unchanged"] == [] and t["lora_tensors_changed"] == 8
    assert t["losses"][-1] < t["losses"][0]
    assert set(summary["versions"]) == {"torch", "bitsandbytes", "peft", "trl", "transformers"}
    assert summary["peak_gpu_memory_mib"] is None and t["peak_rss_gb"] > 0


def test_the_adapter_runs_one_agent_step_on_the_4bit_base(summary):
    i = summary["inference"]
    assert i["model"].endswith(":4bit+adapter") and i["adapter_active"] == "adapter"
    assert i["prompt_format"] == "alpaca" and i["steps"] == 1
    assert i["quantisation"]["linear4bit_layers"] == 14 and i["quantisation"]["quant_types"] == ["nf4"]


def test_a_frozen_b_or_a_32bit_optimiser_fails_the_checks(summary):
    checks = _script().checks
    frozen = copy.deepcopy(summary)
    frozen["train"]["lora_b_unchanged"] = ["base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"]
    assert checks(frozen, cuda=False)["every_lora_b_moved"] is False
    plain = copy.deepcopy(summary)
    plain["train"]["optimiser"].update({"class": "torch.optim.adamw.AdamW", "optim_bits": None, "state_8bit": 0})
    assert checks(plain, cuda=False)["adamw_8bit"] is False
    assert checks(summary, cuda=True)["paged_optimizer"] is False  # on CUDA the state must really be paged


def test_without_cuda_and_without_cpu_nothing_runs(tmp_path):
    if _cuda():
        pytest.skip("a CUDA device is present")
    proc = _run(out=tmp_path)
    assert proc.returncode == 0 and "no CUDA device: nothing ran" in proc.stdout
    assert not (tmp_path / "qlora_summary.json").exists()
