"""The CUDA 4-bit QLoRA path, end to end, on a tiny Llama made on the spot (no download, no network).

    python bench/qlora_cuda.py --out DIR        # on a machine with a CUDA GPU
    python bench/qlora_cuda.py --cpu --out DIR  # the same path as far as a CPU allows (the test runs this)

1. makes a tiny random Llama and its tokenizer (`tests/tiny_llama.py`) and eight finished ReAct
   trajectories of the offline world (`data/world`), trained in the paper's Alpaca text;
2. trains a LoRA through the project's trainer (`train.sft.build` / `train_run` / `save`) with
   `load_in_4bit: true` (NF4, double quantisation, bf16 compute), `optim: paged_adamw_8bit` and
   gradient checkpointing;
3. checks that every LoRA B tensor moved (B starts at zero: a B that stayed put means no learning);
4. loads the adapter on the base in 4-bit through the local backend (`local:<base>:4bit`) and runs
   one agent step, greedy;
5. prints a JSON summary and writes it to `<out>/qlora_summary.json`: versions, device, peak GPU
   memory, what actually ran (read back from the model's layers and the optimiser's state, not from
   the config), the training time and each check.

bitsandbytes keeps optimiser state in 8 bits only for tensors of >= 4096 elements and pages it only
for tensors of >= 1e5 elements on CUDA; so on CUDA the tiny Llama is made wide enough (hidden 1024,
LoRA r 256) that every LoRA tensor is paged and 8-bit, and on CPU (hidden 256, r 32) 8-bit. Paging
does not exist on CPU (bitsandbytes falls back to plain buffers), and the local backend's `:4bit`
refuses a CPU, so `--cpu` loads the 4-bit base with the trainer's own bitsandbytes config instead;
the summary lists these substitutions. Without CUDA and without `--cpu` nothing runs (exit 0).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages, not an installed copy
sys.path.insert(1, str(ROOT / "tests"))  # tiny_llama: the tests' tiny Llama builder, shared, not copied

QUESTION = "Who designed the Velmora Library?"


def examples(folder: Path, n: int = 8) -> Path:
    """`n` finished ReAct trajectories of the offline world, written where the trainer reads them."""
    from fireact_core.formats import read_trajectories, write_trajectories
    from fireact_core.training_rule import TrainingRule

    trajs = [t for t in itertools.islice(read_trajectories(ROOT / "data/world/trajectories/train.jsonl"), 200)
             if t.method == "react" and TrainingRule().why_dropped(t) is None][:n]
    out = folder / "world.jsonl"
    write_trajectories(trajs, out, "trajectories")
    return out


def quantisation(model: Any) -> dict[str, Any]:
    """What the model's 4-bit layers are, read from the layers themselves."""
    from train.qlora_guard import linear4bit_modules

    layers = linear4bit_modules(model)
    states = [layer.weight.quant_state for layer in layers]
    return {"linear4bit_layers": len(layers),
            "quant_types": sorted({s.quant_type for s in states}),
            "double_quant": bool(states) and all(bool(s.nested) for s in states),
            "compute_dtypes": sorted({str(layer.compute_dtype).removeprefix("torch.") for layer in layers}),
            "weight_devices": sorted({str(layer.weight.device) for layer in layers})}


def optimiser(trainer: Any) -> dict[str, Any]:
    """Which optimiser ran, and in what its LoRA state is kept, read from the optimiser after training."""
    opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    states = [s for s in opt.state.values() if "state1" in s]
    return {"class": f"{type(opt).__module__}.{type(opt).__name__}",
            "is_paged": bool(getattr(opt, "is_paged", False)),
            "optim_bits": getattr(getattr(opt, "args", None), "optim_bits", None),
            "tensors": len(states),
            "state_8bit": sum(s["state1"].dtype.itemsize == 1 for s in states),
            "state_paged": sum(bool(getattr(s["state1"], "is_paged", False)) for s in states)}


def train(base: Path, data: Path, out: Path, *, r: int, steps: int, log: Any) -> dict[str, Any]:
    """Train through the project's trainer; return what ran and whether every LoRA B moved."""
    import torch

    from train import qlora_guard
    from train.config import load_config
    from train.sft import build, save, train_run

    cfg = load_config(None, {
        "base": str(base), "data": [str(data)], "prompt_format": "alpaca", "output_dir": str(out),
        "load_in_4bit": True, "optim": "paged_adamw_8bit", "activation_checkpointing": True, "dtype": "auto",
        "lora_r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
        "max_steps": steps, "learning_rate": 5e-3, "warmup_steps": 0, "lr_scheduler_type": "constant",
        "per_device_train_batch_size": 2, "max_length": 384, "val_size": 0, "logging_steps": 1,
        "save_steps": 10_000, "seed": 0, "cpu_threads": 1})
    run = build(cfg, log=log)
    inner = run.trainer.model.get_base_model()
    before = qlora_guard.lora_snapshot(run.trainer.model)
    if run.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = train_run(run)
    b_names = [n for n in before if ".lora_B." in n]
    frozen_b = qlora_guard.unchanged_lora(run.trainer.model, {n: before[n] for n in b_names})
    save(run, {**result, **run.info})
    return {"device": run.device, "four_bit": run.four_bit, "steps": result["steps"],
            "train_seconds": result["train_seconds"], "losses": result["losses"],
            "peak_gpu_bytes": torch.cuda.max_memory_allocated() if run.device == "cuda" else None,
            "peak_rss_gb": result.get("peak_rss_gb"),
            "lora_tensors_changed": result.get("lora_tensors_changed"),
            "lora_b_tensors": len(b_names), "lora_b_unchanged": frozen_b,
            "quantisation": quantisation(inner), "optimiser": optimiser(run.trainer),
            "gradient_checkpointing": bool(getattr(inner, "is_gradient_checkpointing", False)),
            "bf16_autocast": bool(run.trainer.args.bf16),
            "lora_dtypes": sorted({str(p.dtype).removeprefix("torch.") for n, p in run.trainer.model.named_parameters()
                                   if "lora_" in n})}


def infer(base: Path, adapter: Path, *, cuda: bool) -> dict[str, Any]:
    """Load the adapter on the base in 4-bit and run one greedy agent step with it."""
    import torch

    from fireact_core.backends import local
    from fireact_core.build import build_agent
    from fireact_core.options import spec_from_options

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        model = local.load(f"{base}{local.FOUR_BIT}", adapter=str(adapter))  # what `local:<base>:4bit` loads
    else:  # `:4bit` refuses a CPU: the trainer's 4-bit config, loaded the same way, on the CPU
        from fireact_core.models import load_base
        from train.qlora_guard import bnb_4bit_config

        net, tok = load_base(str(base), device="cpu", quantization_config=bnb_4bit_config())
        model = local.LocalModel.from_model(net, tok, name=f"local:{base}:4bit", quantize=False).load_adapter(
            str(adapter))
    spec = spec_from_options(["--adapter", str(adapter), "--tools", "none", "--max-steps", "1",
                              "--max-tokens", "24"])  # the local backend decodes greedily by default
    agent = build_agent(spec, model)
    # read before decoding: on a CPU with avx512_bf16 bitsandbytes repacks 4-bit weights for inference on the
    # first forward pass, and the repacked state is no longer double-quantised
    loaded = quantisation(model._shared.model)
    t0 = time.perf_counter()
    traj = agent.solve(QUESTION)
    seconds = time.perf_counter() - t0
    step = traj.steps[0] if traj.steps else None
    return {"model": model.name, "adapter_active": model.adapter, "prompt_format": agent.format,
            "quantisation": loaded, "steps": len(traj.steps),
            "thought": step.thought if step else None, "action": step.action if step else None,
            "seconds": round(seconds, 2),
            "peak_gpu_bytes": torch.cuda.max_memory_allocated() if cuda else None}


def versions() -> dict[str, str]:
    import bitsandbytes
    import peft
    import torch
    import transformers
    import trl

    return {m.__name__: m.__version__ for m in (torch, bitsandbytes, peft, trl, transformers)}


def checks(s: dict[str, Any], *, cuda: bool) -> dict[str, bool]:
    """Each claim of the run, true or false, from what was read back."""
    t, i = s["train"], s["inference"]
    q, o = t["quantisation"], t["optimiser"]
    out = {"trained_in_4bit": t["four_bit"] and q["linear4bit_layers"] > 0,
           "nf4": q["quant_types"] == ["nf4"],
           "double_quant": q["double_quant"],
           "bf16_compute": q["compute_dtypes"] == ["bfloat16"] and t["bf16_autocast"],
           # transformers builds paged_adamw_8bit as bitsandbytes' AdamW(optim_bits=8, is_paged=True)
           "adamw_8bit": o["class"].startswith("bitsandbytes.optim.") and "AdamW" in o["class"]
           and o["optim_bits"] == 8 and o["state_8bit"] == o["tensors"] > 0,
           "gradient_checkpointing": t["gradient_checkpointing"],
           "every_lora_b_moved": t["lora_b_tensors"] > 0 and not t["lora_b_unchanged"],
           "inference_in_4bit": i["quantisation"]["linear4bit_layers"] > 0 and i["quantisation"]["quant_types"] == ["nf4"],
           "agent_step_ran": i["steps"] == 1 and i["adapter_active"] is not None}
    if cuda:  # paging exists only on CUDA
        out["paged_optimizer"] = o["is_paged"] and o["state_paged"] == o["tensors"] > 0
    else:  # asked for, and kept in plain buffers by bitsandbytes on CPU
        out["paged_optimizer_requested"] = o["is_paged"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="where the summary and the adapter go (default: $OUT, "
                                                           "else a temporary folder)")
    p.add_argument("--cpu", action="store_true", help="run on CPU when there is no CUDA device (substitutions listed)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--hidden", type=int, default=None, help="tiny Llama width (default: 1024 on CUDA, 256 on CPU)")
    p.add_argument("--lora-r", type=int, default=None, help="LoRA rank (default: 256 on CUDA, 32 on CPU)")
    a = p.parse_args(argv)

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not a.cpu:
        print("no CUDA device: nothing ran (add --cpu to run the same path on this CPU)")
        return 0
    if cuda and a.cpu:
        p.error("--cpu is for machines without CUDA; the trainer uses the GPU when there is one")
    out = a.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(tempfile.mkdtemp(prefix="qlora-")))
    out.mkdir(parents=True, exist_ok=True)
    hidden, r = a.hidden or (1024 if cuda else 256), a.lora_r or (256 if cuda else 32)

    from tiny_llama import make_tiny_llama

    work = Path(tempfile.mkdtemp(prefix="qlora-work-"))
    base = make_tiny_llama(work / "tiny-llama", hidden=hidden)
    data = examples(work)
    summary: dict[str, Any] = {
        "ran_on": "cuda" if cuda else "cpu",
        "device_name": torch.cuda.get_device_name(0) if cuda else "cpu",
        "versions": versions(), "model": {"hidden": hidden, "layers": 2, "lora_r": r, "prompt_format": "alpaca"},
        "substituted": [] if cuda else [
            "paged optimiser state: bitsandbytes has no paging on CPU and keeps plain buffers",
            "4-bit loading for inference: the trainer's NF4 config on CPU, as `local:<base>:4bit` refuses a CPU"]}
    summary["train"] = train(base, data, out / "adapter", r=r, steps=a.steps, log=lambda *m: print(*m, file=sys.stderr))
    summary["inference"] = infer(base, out / "adapter", cuda=cuda)
    peaks = [x for x in (summary["train"]["peak_gpu_bytes"], summary["inference"]["peak_gpu_bytes"]) if x is not None]
    summary["peak_gpu_memory_mib"] = round(max(peaks) / 2**20, 1) if peaks else None
    summary["checks"] = checks(summary, cuda=cuda)
    summary["passed"] = all(summary["checks"].values())
    (out / "qlora_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))
    print(f"summary written to {out / 'qlora_summary.json'}: {'all checks passed' if summary['passed'] else 'FAILED: ' + ', '.join(k for k, v in summary['checks'].items() if not v)}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
