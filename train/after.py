"""After training: merge the adapter into a full model, and evaluate the trained agent.

Both load what `train.sft` wrote to the adapter folder, so they also work on an old run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from train.config import TrainConfig
from train.data import DataSummary

if TYPE_CHECKING:
    from fireact_core.spec import AgentSpec


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


def eval_spec(cfg: TrainConfig, adapter_dir: Path) -> AgentSpec:
    """The agent the post-training evaluation runs: the adapter on its base, with the recipe's `eval_args`
    (`fireact eval`'s agent options, written by a person) on top. The one place those options are parsed."""
    import shlex

    from fireact_core.models import bundled_name
    from fireact_core.options import spec_from_options

    model = bundled_name(cfg.base) or f"local:{cfg.base}"
    return spec_from_options(shlex.split(cfg.eval_args), model=model, adapter=str(adapter_dir))


def agent_eval(cfg: TrainConfig, spec: AgentSpec, summary: DataSummary, out: Path) -> dict[str, Any]:
    """EM of the agent `spec` (see `eval_spec`) on `eval_questions` questions; its trajectories go to
    `out/eval_trajectories.jsonl`, and `command` is the `fireact eval` line that reruns it."""
    import shlex

    from fireact_core.build import agent_factory
    from fireact_core.evaluate import evaluate
    from fireact_core.options import spec_argv
    from fireact_core.tasks import load_task

    task_name = cfg.eval_task or max(summary.by_task, key=summary.by_task.get)
    task = load_task(task_name, cfg.eval_split)
    examples = task.examples[: cfg.eval_questions]
    res = evaluate(agent_factory(spec), examples, out=out / "eval_trajectories.jsonl", progress=True)
    argv = ["eval", "--task", task_name, "--split", cfg.eval_split, "--limit", str(cfg.eval_questions),
            *spec_argv(spec)]
    return {"task": task.name, "split": task.split, "questions": res.n, "em": res.em, "f1": res.f1,
            "mean_steps": res.mean_steps, "command": "fireact " + shlex.join(argv)}
