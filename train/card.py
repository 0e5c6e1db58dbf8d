"""The adapter folder's model card (`README.md` with Hub YAML metadata) and `fireact.json` manifest.

The card's `base_model` is the Hub id of the base (PEFT and TRL write the local path they
loaded from, which means nothing on another machine); `adapter_config.json` is fixed the same
way so that `fireact_core.models.check_adapter` compares ids, not paths.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from fireact_core import __version__
from fireact_core.errors import ConfigError
from train.config import TrainConfig
from train.data import DataSummary

MANIFEST = "fireact.json"
MANIFEST_VERSION = 1
TAGS = ["fireact", "agent", "react", "lora", "qlora"]
PROMPT_FORMAT = {
    "name": "chat",  # fireact_core.prompt_formats: what the agent reads back when it loads the adapter
    "template": "chatml",
    "system_prompt": None,
    "user": "the question alone (multiple-choice options follow it)",
    "assistant": "Thought: <reasoning>\nAction: <tool>[<argument>]  (finish[<answer>] ends the episode)",
    "observation": "a user turn 'Observation: <tool output>'",
    "stop": ["<|im_end|>", "\nObservation:"],
}
# The same turns in Gemma's template (`models.template_name` picks it for a Gemma base).
TEMPLATES = {"chatml.jinja": ("chatml", "ChatML", "<|im_end|>"), "gemma.jinja": ("gemma", "Gemma's turns", "<end_of_turn>")}


def prompt_format(base_id: str, name: str = "chat") -> dict[str, Any]:
    """The manifest's prompt format: `chat` in the base's template, or the paper's `alpaca` text."""
    from fireact_core.models import template_name
    from fireact_core.prompt_formats import ALPACA

    if name == "alpaca":
        return {"name": "alpaca", "template": "alpaca", "system_prompt": None, "bos": True,
                "text": ALPACA + "Thought:",
                "assistant": "Thought: <reasoning>\nAction: <tool>[<argument>], inline in the one response",
                "observation": "inline in the response: 'Observation: <tool output>\\n', then 'Thought:'",
                "stop": ["\nObservation:", "EOS"]}
    key, _, end = TEMPLATES[template_name(base_id)]
    return {**PROMPT_FORMAT, "template": key, "stop": [end, "\nObservation:"]}
# Settings worth showing on the card, in this order.
CARD_KEYS = ("recipe", "init_adapter", "load_in_4bit", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "max_length",
             "num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size",
             "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps", "optim", "seed", "val_size",
             "keep", "min_rating", "bad_steps", "prompt_format", "train_on_inputs", "append_eos")


def fix_adapter_config(folder: Path, base_id: str) -> None:
    """Record the base's Hub id in `adapter_config.json`."""
    path = folder / "adapter_config.json"
    conf = json.loads(path.read_text(encoding="utf-8"))
    conf["base_model_name_or_path"] = base_id
    path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def manifest(*, cfg: TrainConfig, summary: DataSummary, results: dict[str, Any], base_id: str,
             four_bit: bool) -> dict[str, Any]:
    return {
        "format_version": MANIFEST_VERSION,
        "kind": "fireact-adapter",
        "fireact_version": __version__,
        "base_model": base_id,
        "prompt_format": prompt_format(base_id, cfg.prompt_format),
        **({"added_tokens": results["added_tokens"]} if results.get("added_tokens") else {}),
        "methods": sorted(summary.by_method),
        "tasks": sorted(summary.by_task),
        "actions": sorted(summary.actions),
        "training": {
            "recipe": cfg.recipe or None,
            "quantization": "nf4-double-quant" if four_bit else None,
            "weights_dtype": results.get("base_dtype"),
            "lora": results.get("lora") or {"r": cfg.lora_r, "alpha": cfg.lora_alpha,
                                              "target_modules": cfg.target_modules},
            "examples": summary.train,
            "validation_examples": summary.val,
            "max_length": cfg.max_length,
            "steps": results.get("steps"),
            **({"continued_from": results["continued_from"]} if "continued_from" in results else {}),
        },
        "eval": {k: results[k] for k in ("eval_loss", "agent_eval") if k in results},
    }


def metadata(cfg: TrainConfig, base_id: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"base_model": base_id, "library_name": "peft", "license": cfg.license,
                            "pipeline_tag": "text-generation", "tags": [*TAGS, f"base_model:adapter:{base_id}"]}
    if cfg.datasets:
        meta["datasets"] = list(cfg.datasets)
    meta["language"] = ["en"]
    return meta


def command(cfg: TrainConfig) -> str:
    """The command that reproduces this run (recipe plus the keys that differ from it)."""
    from train.config import load_config

    args = ["fireact", "train"]
    try:
        base = load_config(cfg.recipe) if cfg.recipe else TrainConfig()
    except ConfigError:  # a recipe file given by path is recorded by its name; compare with the defaults
        base = TrainConfig()
    if cfg.recipe:
        args += ["--recipe", cfg.recipe]
    for key, value in cfg.to_dict().items():
        if key in ("recipe", "push_to_hub", "private") or value == getattr(base, key):
            continue
        args += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return shlex.join(args)


def _template_words(base_id: str) -> str:
    from fireact_core.models import template_name

    return TEMPLATES[template_name(base_id)][1]


def _format_words(cfg: TrainConfig, base_id: str) -> str:
    """The card's prompt-format paragraph (the manifest's `prompt_format.name` is what the agent reads back)."""
    if cfg.prompt_format == "alpaca":
        return ("`alpaca`: the FireAct paper's text format, no chat template. The prompt is `Below is an instruction that "
                "describes a task. Write a response that appropriately completes the request.\\n\\n### Instruction:"
                "\\n{question}\\n\\n### Response:\\nThought:` with BOS; the model writes the thought and "
                "`\\nAction: tool[argument]`, the tool's result follows inline as `\\nObservation: …\\n`, then "
                "`Thought:` again. Stop generating at `\\nObservation:`. FireAct reads the format from `fireact.json` "
                "when it loads the adapter.")
    return (f"`chat`: {_template_words(base_id)} with no system prompt (`chat_template.jinja`). The user turn holds the "
            "question; each assistant turn is `Thought: …\\nAction: tool[argument]`; each tool result comes back "
            f"as a user turn `Observation: …`. Stop generating at `{prompt_format(base_id)['stop'][0]}`.")


def _loss_words(cfg: TrainConfig) -> str:
    if cfg.train_on_inputs:
        return ("Supervised fine-tuning with TRL's `SFTTrainer`; the loss covers the whole text, question and "
                "Observations too (`train_on_inputs`, as the paper's LoRA script did)"
                + (", each example ending with EOS." if cfg.append_eos else "."))
    return ("Supervised fine-tuning with TRL's `SFTTrainer`; the loss covers only the agent's own tokens (each "
            "Thought/Action turn and what ends it); the question and every Observation are masked"
            + (", and each example ends with EOS." if cfg.append_eos else "."))


def render(*, cfg: TrainConfig, summary: DataSummary, results: dict[str, Any], base_id: str, four_bit: bool,
           name: str) -> str:
    front = yaml.safe_dump(metadata(cfg, base_id), sort_keys=False, allow_unicode=True)
    method = "4-bit NF4 QLoRA" if four_bit else "LoRA"
    lines = [f"---\n{front}---", "", f"# {name.rstrip('/').split('/')[-1]}", ""]
    lines.append(cfg.description.strip() or (
        f"A FireAct language agent: {base_id} fine-tuned with {method} on ReAct-style agent trajectories "
        f"({', '.join(sorted(summary.by_method)) or 'react'}; tasks: {', '.join(sorted(summary.by_task))}). "
        "Given a question alone, it writes `Thought:` / `Action: tool[argument]` turns, reads the tool's "
        "`Observation:` and ends with `finish[answer]`."))
    lines += ["", "## Use", "", "```bash", f"fireact run \"your question\" --adapter {name}", "```", "",
              "```python", "from fireact_core.models import load_adapter, load_base", "",
              f"model, tokenizer = load_base({base_id!r})", f"model = load_adapter(model, {name!r})", "```", "",
              "## Prompt format", "", _format_words(cfg, base_id), "",
              "## Training", "", _loss_words(cfg), "",
              "| setting | value |", "| --- | --- |", f"| base model | `{base_id}` |",
              f"| method | {method} |"]
    d = cfg.to_dict()
    if lora := results.get("lora"):  # what the adapter has (a continued adapter keeps its own)
        d.update(lora_r=lora["r"], lora_alpha=lora["alpha"], target_modules=lora["target_modules"])
    for key in CARD_KEYS:
        if d.get(key) not in (None, "", []):
            lines.append(f"| {key} | `{d[key]}` |")
    for key in ("base_dtype", "lora_dtype", "steps", "train_seconds", "tokens_per_s", "resumed_at_step", "peak_rss_gb",
                "train_loss"):
        if key in results:
            v = results[key]
            lines.append(f"| {key} | {v:.4g} |" if isinstance(v, float) else f"| {key} | {v} |")
    if prior := results.get("continued_from"):
        done = ", ".join(f"{k} {prior[k]}" for k in ("recipe", "examples", "steps") if k in prior)
        lines += ["", f"Training continued from the adapter `{prior['adapter']}`" + (f" ({done})" if done else "")
                  + ": its LoRA rank, alpha and target modules are the ones above, whatever the recipe says."]
    lines += ["", "Reproduce:", "", "```bash", command(cfg), "```", "", "## Data", "", "```", summary.format(), "```"]
    if cfg.datasets:
        lines += ["", "Datasets: " + ", ".join(f"[{x}](https://huggingface.co/datasets/{x})" for x in cfg.datasets)]
    ev = results.get("agent_eval")
    if "eval_loss" in results or ev:
        lines += ["", "## Results", "", "| metric | value |", "| --- | --- |"]
        if "eval_loss" in results:
            lines.append(f"| validation loss (agent tokens) | {results['eval_loss']:.4f} |")
        if ev:
            em = "n/a" if ev.get("em") is None else f"{100 * ev['em']:.1f}"
            lines.append(f"| EM on {ev['questions']} {ev['task']} {ev['split']} questions | {em} |")
            lines.append(f"| mean steps | {ev['mean_steps']:.2f} |")
            lines += ["", f"Agent evaluation: `{ev['command']}`"]
    lines += ["", "## Licence", "",
              f"Adapter: {cfg.license}. The base model and the training data keep their own licences.", ""]
    return "\n".join(lines)


def write(folder: Path, *, cfg: TrainConfig, summary: DataSummary, results: dict[str, Any], base_id: str,
          four_bit: bool) -> None:
    name = cfg.push_to_hub or str(folder)
    (folder / "README.md").write_text(render(cfg=cfg, summary=summary, results=results, base_id=base_id,
                                             four_bit=four_bit, name=name), encoding="utf-8")
    data = manifest(cfg=cfg, summary=summary, results=results, base_id=base_id, four_bit=four_bit)
    (folder / MANIFEST).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))


def read_metadata(readme: str | Path) -> dict[str, Any]:
    """The YAML front matter of a model card."""
    text = Path(readme).read_text(encoding="utf-8") if Path(readme).exists() else str(readme)
    if not text.startswith("---\n"):
        return {}
    end = text.index("\n---", 4)
    return yaml.safe_load(text[4:end]) or {}


def first_line(readme_text: str) -> str:
    """The first prose line after the front matter and the title (for listings)."""
    body = readme_text
    if body.startswith("---\n"):
        body = body[body.index("\n---", 4) + 4:]
    for line in body.splitlines():
        s = line.strip()
        if s and not s.startswith(("#", "---", "```", "|", "<")):
            return s
    return ""
