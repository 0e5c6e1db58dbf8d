"""The fast CPU path on the instruction sets a Space's CPU may have: torch picks its kernels by the CPU it finds
(`ATEN_CPU_CAPABILITY` caps that choice), and the quantised decoder must run, and answer, on each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import json, torch
from fireact_core.backends.base import complete
from fireact_core.backends.local import LocalModel
model = LocalModel.from_pretrained()
done = complete(model, [{"role": "user", "content": "What is the capital of France?"}], max_tokens=10)
print(json.dumps({"cpu": torch.backends.cpu.get_cpu_capability(), "engine": model.engine, "text": done.text}))
"""


@pytest.mark.parametrize("capability", ["default", "avx2"])
def test_the_quantised_decoder_runs_and_answers_on_a_lesser_cpu(capability):
    import torch

    have = torch.backends.cpu.get_cpu_capability()
    if capability == "avx2" and have not in ("AVX2", "AVX512"):
        pytest.skip(f"this CPU has {have}, below AVX2")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["cpu"] == ("DEFAULT" if capability == "default" else "AVX2")
    assert out["engine"].startswith("torch int4"), out  # the fast path, not a fallback
    assert "Paris" in out["text"], out
