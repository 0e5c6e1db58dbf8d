"""After training: merge the adapter into a full model, and evaluate the trained agent.

Both load what `train.sft` wrote to the adapter folder, so they also work on an old run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from train.config import TrainConfig
from train.data import DataSummary


def merge(cfg: TrainConfig, adapter_dir: Path) -> Path:
    """Merge the adapter into an unquantised copy of the base, in bf16 (or `dtype`), for vLLM/TGI."""
    import torch
    from peft import PeftModel

    from fireact_core.models import chat_template, load_base

    dtype = torch.bfloat16 if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
    model, tokenizer = load_base(cfg.base, device="cpu", dtype=dtype)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    target = adapter_dir / "merged"
    merged.save_pretrained(str(target))
    tokenizer.chat_template = chat_template(cfg.base)
    tokenizer.save_pretrained(str(target))
    return target


def agent_eval(cfg: TrainConfig, adapter_dir: Path, summary: DataSummary) -> dict[str, Any]:
    """EM of the trained agent on `eval_questions` questions: the `AgentSpec` of the adapter on its base,
    with the recipe's `eval_args` (`fireact eval`'s agent options) on top."""
    import shlex

    from fireact_core.build import agent_factory
    from fireact_core.evaluate import evaluate
    from fireact_core.models import bundled_name
    from fireact_core.options import spec_from_options
    from fireact_core.tasks import load_task

    task_name = cfg.eval_task or max(summary.by_task, key=summary.by_task.get)
    model = bundled_name(cfg.base) or f"local:{cfg.base}"
    spec = spec_from_options(shlex.split(cfg.eval_args), model=model, adapter=str(adapter_dir))
    task = load_task(task_name, cfg.eval_split)
    examples = task.examples[: cfg.eval_questions]
    res = evaluate(agent_factory(spec), examples, out=adapter_dir / "eval_trajectories.jsonl", progress=True)
    argv = ["eval", "--task", task_name, "--split", cfg.eval_split, "--limit", str(cfg.eval_questions),
            "--model", model, "--adapter", str(adapter_dir), *shlex.split(cfg.eval_args)]
    return {"task": task.name, "split": task.split, "questions": res.n, "em": res.em, "f1": res.f1,
            "mean_steps": res.mean_steps, "command": "fireact " + shlex.join(argv)}
