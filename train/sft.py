"""Fine-tune a base model on agent trajectories with LoRA / 4-bit QLoRA (TRL `SFTTrainer`).

    python -m train.sft --recipe smollm2-135m-world --set max_steps=50
    fireact train --recipe paper-llama2-7b-hotpotqa --push-to-hub me/fireact-llama2-7b
    accelerate launch -m train.sft --recipe smollm2-360m-multitask    # several GPUs (DDP/FSDP by accelerate)

The examples are rendered in the recipe's `prompt_format` by the agent's own renderer
(`fireact_core.prompt_formats`). In `chat` the loss covers only the agent's tokens: each assistant
turn (Thought + Action) and its `<|im_end|>`; the question and every Observation are labelled -100.
This is TRL's `assistant_only_loss` with our ChatML template (`train/templates/chatml_generation.jinja`),
whose `{% generation %}` block wraps the assistant content and renders byte-identical to the inference
template `fireact_core/templates/chatml.jinja`. In `alpaca` (the paper's text) the examples are
tokenised here, as the agent's prompt is, with the loss on the agent's pieces (`train_on_inputs`:
everything, and `append_eos`, as the paper's LoRA script did).

`main(cfg)` returns a dict of results; the output folder holds the PEFT adapter, the tokenizer
with the inference template, a model card `README.md` and the `fireact.json` manifest.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fireact_core import chat_markers
from fireact_core.errors import ConfigError, FireActError
from train import callbacks, card, qlora_guard
from train.config import TrainConfig
from train.data import DataSummary, TrainingExample, prepare, to_dataset
from train.device import device as current_device
from train.device import dtype as weight_dtype
from train.device import optim as optimizer_name
from train.device import use_4bit
from train.lineage import check_init, continued, continued_from

TEMPLATES = Path(__file__).parent / "templates"


class TrainingError(FireActError):
    """Training ran but produced something unusable (out of memory, frozen LoRA weights)."""


def generation_template(base: str | None = None) -> str:
    """The training template for a base: its inference template (ChatML, or Gemma's turns) with
    `{% generation %}` around each assistant turn and its end-of-turn token."""
    from fireact_core.models import template_name

    name = "gemma_generation.jinja" if template_name(base) == "gemma.jinja" else "chatml_generation.jinja"
    return (TEMPLATES / name).read_text(encoding="utf-8")


def inference_template(base: str | None = None) -> str:
    from fireact_core.models import chat_template

    return chat_template(base)


@dataclass
class Run:
    """Everything `build` prepared; `train_and_save` consumes it."""

    cfg: TrainConfig
    model: Any
    tokenizer: Any
    trainer: Any
    train: list[TrainingExample]
    val: list[TrainingExample]
    summary: DataSummary
    four_bit: bool
    device: str
    guarded: int = 0  # Linear4bit layers the CPU guard touched
    info: dict[str, Any] = field(default_factory=dict)


def load_tokenizer(base: str) -> Any:
    """The base's tokenizer with the training template and a pad token."""
    from transformers import AutoTokenizer

    from fireact_core.models import resolve_base

    tok = AutoTokenizer.from_pretrained(resolve_base(base))
    tok.chat_template = generation_template(base)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: TrainConfig, device: str, four_bit: bool) -> Any:
    """The base model, 4-bit and prepared for k-bit training when asked."""
    from fireact_core.models import load_base

    qconf = qlora_guard.bnb_4bit_config() if four_bit else None
    # Under `accelerate launch` each process owns one GPU: place a quantised model on it, not on cuda:0.
    place = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if device == "cuda" else device
    model, _ = load_base(cfg.base, dtype=weight_dtype(cfg, device, four_bit), device=place, quantization_config=qconf)
    if four_bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.activation_checkpointing)
    model.config.use_cache = False
    return model


def sft_config(cfg: TrainConfig, device: str, four_bit: bool, has_val: bool) -> Any:
    """TRL's `SFTConfig` for a recipe: loss on the assistant's tokens only, no packing, bf16 where it pays."""
    import torch
    from trl import SFTConfig

    bf16 = torch.cuda.is_bf16_supported() if device == "cuda" else weight_dtype(cfg, device, four_bit) == torch.bfloat16
    eval_strategy = "no" if not has_val else ("steps" if cfg.eval_steps else "epoch")
    return SFTConfig(
        output_dir=str(checkpoint_dir(cfg)),
        assistant_only_loss=cfg.prompt_format == "chat" and not cfg.train_on_inputs,  # raw text: masks built here
        max_length=cfg.max_length,
        packing=False,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        weight_decay=cfg.weight_decay,
        optim=optimizer_name(cfg, device, four_bit),
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        seed=cfg.seed,
        data_seed=cfg.seed,
        activation_checkpointing=cfg.activation_checkpointing,
        bf16=bf16,
        fp16=False,
        use_cpu=device == "cpu",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to=cfg.report_to,
        include_num_input_tokens_seen=True,
        disable_tqdm=False,
        dataloader_pin_memory=device == "cuda",
    )


def checkpoint_dir(cfg: TrainConfig) -> Path:
    """Checkpoints live in a subfolder, so the adapter folder holds only what gets published."""
    return Path(cfg.output_dir) / "checkpoints"


def lora_config(cfg: TrainConfig, extra: tuple[dict[str, list[int]], list[str]] | None = None) -> Any:
    """The LoRA; `extra`: embedding rows and whole modules trained beside it (turn markers added to the vocabulary)."""
    from fireact_core.models import quiet_peft_import

    quiet_peft_import()
    from peft import LoraConfig

    rows, modules = extra or (None, None)
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules, bias="none", task_type="CAUSAL_LM",
                      trainable_token_indices=rows or None, modules_to_save=modules or None)


def build(cfg: TrainConfig, *, log: Any = print) -> Run:
    """Read the data, print its summary, load the model and make the `SFTTrainer` (no training yet)."""
    import torch
    from trl import SFTTrainer

    if cfg.init_adapter:
        check_init(cfg.init_adapter, cfg.base)
    device = current_device()
    four_bit = use_4bit(cfg, device)
    tokenizer = load_tokenizer(cfg.base)
    # chat on a base whose vocabulary lacks the template's turn markers: they become tokens (chat_markers)
    added = [] if cfg.prompt_format != "chat" or cfg.init_adapter else \
        chat_markers.missing_markers(tokenizer, inference_template(cfg.base))
    marker_ids = chat_markers.add_markers(tokenizer, added)
    train, val, summary = prepare(cfg.data, tokenizer=tokenizer, template=generation_template(cfg.base),
                                  max_length=cfg.max_length, val_size=cfg.val_size, seed=cfg.seed,
                                  data_dir=cfg.data_dir, rule=cfg.rule(), **_format_kw(cfg))
    log(summary.format())
    try:
        model = load_model(cfg, device, four_bit)
    except torch.OutOfMemoryError as e:
        raise TrainingError(_oom_message(cfg, four_bit).replace("while training", "while loading the model")) from e
    if device == "cpu" and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    if added:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    peft_config = lora_config(cfg, chat_markers.trainable_rows(model, marker_ids) if added else None)
    if cfg.init_adapter:
        model, peft_config = continued(model, cfg.init_adapter), None
        log(f"continuing adapter {cfg.init_adapter} (r={model.peft_config['default'].r}; the recipe's LoRA keys "
            "do not apply)")
    loss_kw = {"train_on_inputs": cfg.train_on_inputs, "append_eos": cfg.append_eos}
    trainer = SFTTrainer(model=model, args=sft_config(cfg, device, four_bit, bool(val)),
                         train_dataset=to_dataset(train, tokenizer, **loss_kw),
                         eval_dataset=to_dataset(val, tokenizer, **loss_kw) if val else None,
                         processing_class=tokenizer, peft_config=peft_config)
    run = Run(cfg, trainer.model, tokenizer, trainer, train, val, summary, four_bit, device)
    run.info["base_dtype"] = str(weight_dtype(cfg, device, four_bit)).removeprefix("torch.")
    if added:
        run.info["added_tokens"] = added
    lora = trainer.model.peft_config[trainer.model.active_adapter]
    modules = lora.target_modules if isinstance(lora.target_modules, str) else sorted(lora.target_modules)  # a regex stays one
    run.info["lora"] = {"r": lora.r, "alpha": lora.lora_alpha, "target_modules": modules}
    if cfg.init_adapter:
        run.info["continued_from"] = continued_from(cfg.init_adapter, cfg.base)
    run.info["lora_dtype"] = next((str(p.dtype).removeprefix("torch.") for n, p in trainer.model.named_parameters()
                                   if p.requires_grad and "lora_" in n), None)
    if four_bit and device == "cpu":
        run.guarded = qlora_guard.guard_cpu_4bit(trainer.model)
    return run


def _oom_message(cfg: TrainConfig, four_bit: bool) -> str:
    tips = [f"a smaller batch (--set per_device_train_batch_size={max(1, cfg.per_device_train_batch_size // 2)} "
            f"gradient_accumulation_steps={cfg.gradient_accumulation_steps * 2})",
            f"shorter sequences (--set max_length={max(128, cfg.max_length // 2)})"]
    if not four_bit:
        tips.append("4-bit loading (--set load_in_4bit=true)")
    if not cfg.activation_checkpointing:
        tips.append("activation checkpointing (--set activation_checkpointing=true)")
    return "CUDA ran out of memory while training; try " + ", ".join(tips) + "."


def train_run(run: Run) -> dict[str, Any]:
    """Train; check that every LoRA tensor moved; evaluate on the validation split."""
    import torch

    cfg, trainer = run.cfg, run.trainer
    if run.four_bit and run.device == "cpu":  # again: something may have run a no-grad forward since build()
        run.guarded = qlora_guard.guard_cpu_4bit(trainer.model)
    watch, memory = callbacks.lora_watch(), callbacks.memory_watch(trim=cfg.trim_memory and run.device == "cpu")
    trainer.add_callback(watch)
    trainer.add_callback(memory)
    t0 = time.perf_counter()
    try:
        out = trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    except torch.OutOfMemoryError as e:
        raise TrainingError(_oom_message(cfg, run.four_bit)) from e
    except ValueError as e:
        if "checkpoint" in str(e).lower() and cfg.resume_from_checkpoint:
            raise ConfigError(f"cannot resume: {e}") from None
        raise
    finally:
        trainer.remove_callback(watch)
        trainer.remove_callback(memory)
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {"steps": trainer.state.global_step, "train_seconds": round(seconds, 1),
                              "train_loss": out.training_loss, "losses": callbacks.losses(trainer)}
    if run.device == "cpu" and (rss := callbacks.peak_rss_gb()) is not None:
        result["peak_rss_gb"] = rss
    tokens = (trainer.state.num_input_tokens_seen or 0) - memory.start_tokens
    if tokens and seconds:
        result["tokens_per_s"] = round(tokens / seconds, 1)
    if memory.start_step:
        result["resumed_at_step"] = memory.start_step  # train_seconds and tokens_per_s cover the steps after it
    if cfg.check_lora_changed and watch.moving_steps >= 2:
        frozen = qlora_guard.unchanged_lora(trainer.model, watch.before)
        if frozen:
            hint = (" On a CPU with avx512_bf16 this is bitsandbytes repacking 4-bit weights after a forward pass "
                    "without gradients; the trainer's guard should prevent it." if run.four_bit else "")
            raise TrainingError(f"{len(frozen)} of {len(watch.before)} LoRA tensors did not change during training "
                                f"(first: {frozen[0]}).{hint}")
        result["lora_tensors_changed"] = len(watch.before)
    if run.val:
        last = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
        if last is None or last.get("step") != trainer.state.global_step:
            last = trainer.evaluate()
        result["eval_loss"] = last["eval_loss"]
        result["eval_perplexity"] = math.exp(min(last["eval_loss"], 50))
    return result


def save(run: Run, result: dict[str, Any]) -> Path:
    """Write the adapter, tokenizer (inference template), model card and manifest."""
    import shutil
    import warnings

    from fireact_core.models import canonical_base

    out = Path(run.cfg.output_dir)
    with warnings.catch_warnings():  # PEFT looks the base up on the Hub to see if embeddings changed; they did not
        warnings.filterwarnings("ignore", message="Could not find a config file")
        run.trainer.save_model(str(out))
    (out / "training_args.bin").unlink(missing_ok=True)
    if not run.cfg.keep_checkpoints:
        shutil.rmtree(checkpoint_dir(run.cfg), ignore_errors=True)
    run.tokenizer.chat_template = inference_template(run.cfg.base)
    run.tokenizer.save_pretrained(str(out))
    base_id = canonical_base(run.cfg.base)
    card.fix_adapter_config(out, base_id)
    card.write(out, cfg=run.cfg, summary=run.summary, results=result, base_id=base_id,
               four_bit=run.four_bit)
    return out


def summarize(cfg: TrainConfig) -> DataSummary:
    """Read and check the data as `main` would, without loading the model."""
    tokenizer = load_tokenizer(cfg.base)
    return prepare(cfg.data, tokenizer=tokenizer, template=generation_template(cfg.base), max_length=cfg.max_length,
                   val_size=cfg.val_size, seed=cfg.seed, data_dir=cfg.data_dir, rule=cfg.rule(), **_format_kw(cfg))[2]


def _format_kw(cfg: TrainConfig) -> dict[str, Any]:
    return {"prompt_format": cfg.prompt_format, "train_on_inputs": cfg.train_on_inputs, "append_eos": cfg.append_eos}


def main(cfg: TrainConfig, *, log: Any = print) -> dict[str, Any]:
    """Train one adapter as `cfg` says; return the results (also written to the model card)."""
    run = build(cfg, log=log)
    lora = run.info["lora"]
    log(f"base {cfg.base} · {'4-bit NF4 QLoRA' if run.four_bit else 'LoRA'} r={lora['r']} on "
        f"{lora['target_modules']} · device {run.device} · weights {run.info['base_dtype']}, LoRA {run.info['lora_dtype']}"
        + (f" · CPU guard on {run.guarded} 4-bit layers" if run.guarded else ""))
    result = train_run(run)
    result.update(run.info)
    result["data"] = run.summary.to_dict()
    out = save(run, result)
    if cfg.eval_questions > 0:
        from train.after import agent_eval, eval_spec

        result["agent_eval"] = agent_eval(cfg, eval_spec(cfg, out), run.summary, out)
        card.write(out, cfg=cfg, summary=run.summary, results=result, base_id=card.read_manifest(out)["base_model"],
                   four_bit=run.four_bit)
    if cfg.merge:
        from train.after import merge

        result["merged"] = str(merge(cfg, out))
    log(f"adapter written to {out}" + (f" (eval loss {result['eval_loss']:.3f})" if "eval_loss" in result else ""))
    if cfg.push_to_hub:
        from train.hub import push

        try:
            result["hub_url"] = push(out, cfg.push_to_hub, private=cfg.private)
            log(f"pushed to {result['hub_url']}")
        except FireActError as e:
            result["hub_error"] = str(e)
            log(f"push to the Hub failed: {e} (the adapter is still in {out})")
    return result


# --- command line: train/sft_cli.py (`python -m train.sft` runs it) ---------------------------
from train.sft_cli import add_arguments, cli, config_from_args, make_parser  # noqa: E402

__all__ = ["add_arguments", "build", "cli", "config_from_args", "main", "make_parser", "save", "summarize", "train_run"]

if __name__ == "__main__":
    sys.exit(cli())
