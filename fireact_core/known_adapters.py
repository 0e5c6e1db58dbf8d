"""Adapters whose prompt format is known without a manifest, and how an adapter's format is found.

An adapter trained here records its prompt format in its `fireact.json` (`prompt_format.name`). The
FireAct paper's published adapters have no manifest: their format comes from `KNOWN`, each entry
with the authors' own words for it (anchen1011/FireAct). `adapter_format` reads either; an adapter
that has neither runs in its base's format (`chat`) and the CLI says how to choose another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from fireact_core.spec import AUTO, AgentConfig

MANIFEST = "fireact.json"


@dataclass(frozen=True)
class KnownAdapter:
    """A published adapter: its base, its prompt format, and where that comes from."""

    base: str
    prompt_format: str
    source: str  # file in the authors' repository (anchen1011/FireAct)
    quote: str


_GENERATION = ("generation.py",
               'def prepare_prompt(question):\n    return f"Below is an instruction that describes a task. Write a '
               'response that appropriately completes the request.\\n\\n### Instruction:\\n{question}\\n\\n### '
               'Response:\\n"  ...  if alpaca_format: prompts = [prepare_prompt(q.rstrip()) for q in questions]  ...  '
               'gpts([prompt + f"Thought:{reflection}" for prompt in prompts], stop=[f"\\nObservation:"])')
_README = ("README.md",
           "Example (FireAct Llama): python generation.py --task hotpotqa --backend llama --evaluate --random "
           "--task_split dev --task_end_index 5 --modelpath meta-llama/Llama-2-7b-chat --add_lora --alpaca_format "
           "--peftpath forestai/fireact_llama_2_7b_lora")
_FINETUNE = ("finetune/README.md",
             "The training data in Alpaca Format used for fine-tuning Llama/CodeLlama models can be founded in "
             "[Llama/CodeLlama Fine-tune Data](.../data/finetune/alpaca_format).")


def _entry(base: str, *quotes: tuple[str, str]) -> KnownAdapter:
    return KnownAdapter(base=base, prompt_format="alpaca", source=" · ".join(q[0] for q in quotes),
                        quote=" · ".join(q[1] for q in quotes))


# The paper's model zoo (README.md, "Model Zoo": Llama2-7B/13B and CodeLlama-7B/13B/34B LoRA, Llama2-7B full).
# The Llama-2 bases are the chat models the authors fine-tuned (finetune/README.md: meta-llama/Llama-2-7b-chat-hf).
# For CodeLlama the repository names the family only: the plain CodeLlama of that size is an assumption, not a
# quote (an adapter's own adapter_config.json, once downloaded, is what its base is checked against).
# `forestai/fireact_llama_2_7b` is a full fine-tuned model (`--model local:forestai/fireact_llama_2_7b --finetuned`).
KNOWN: dict[str, KnownAdapter] = {
    "forestai/fireact_llama_2_7b_lora": _entry("meta-llama/Llama-2-7b-chat-hf", _README, _GENERATION),
    "forestai/fireact_llama_2_13b_lora": _entry("meta-llama/Llama-2-13b-chat-hf", _FINETUNE, _GENERATION),
    "forestai/fireact_codellama_7b_lora": _entry("codellama/CodeLlama-7b-hf", _FINETUNE, _GENERATION),
    "forestai/fireact_codellama_13b_lora": _entry("codellama/CodeLlama-13b-hf", _FINETUNE, _GENERATION),
    "forestai/fireact_codellama_34b_lora": _entry("codellama/CodeLlama-34b-hf", _FINETUNE, _GENERATION),
    "forestai/fireact_llama_2_7b": _entry("meta-llama/Llama-2-7b-chat-hf", _FINETUNE, _GENERATION),
}


def known(adapter: str | None) -> KnownAdapter | None:
    """The table's entry for a Hub id (case-insensitive, a trailing slash or `hf://` prefix ignored)."""
    if not adapter:
        return None
    key = str(adapter).strip().removeprefix("hf://").rstrip("/").lower()
    return KNOWN.get(key)


def manifest_format(manifest: dict[str, Any]) -> str | None:
    """The prompt format a `fireact.json` records: `prompt_format.name`; a manifest from before formats had
    names (`prompt_format.template` only) was trained in `chat`."""
    pf = manifest.get("prompt_format")
    if isinstance(pf, str):
        return pf
    if isinstance(pf, dict):
        return str(pf.get("name") or "chat")
    return None


def _manifest_path(adapter: str, base: str | None) -> Path | None:
    """Where the adapter's `fireact.json` is on this machine (a folder, `default`, a Hub download in the cache)."""
    name = str(adapter).strip()
    if name == "default":
        from fireact_core.models import default_adapter

        return default_adapter(base) / MANIFEST
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder / MANIFEST
    if name.count("/") == 1:
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(name, MANIFEST)
        except Exception:  # a malformed id, an unreadable cache: no manifest known here
            return None
        return Path(hit) if isinstance(hit, str) else None
    return None


def adapter_format(adapter: str | None, base: str | None = None) -> tuple[str | None, str]:
    """(prompt format, where it came from) for an adapter: its `fireact.json`, else the known table;
    (None, why) when neither says (the agent then runs in the base's format, `chat`)."""
    if not adapter:
        return None, "no adapter"
    path = _manifest_path(adapter, base)
    if path is not None and path.is_file():
        try:
            fmt = manifest_format(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            fmt = None
        if fmt:
            return fmt, f"its {MANIFEST}"
    entry = known(adapter)
    if entry is not None:
        return entry.prompt_format, f"the known adapters' table (anchen1011/FireAct {entry.source})"
    return None, f"{adapter} has no {MANIFEST} and is not a known adapter"


def resolve_format(spec: AgentConfig) -> tuple[str, str]:
    """(format, why) for `prompt_format: auto`: a fine-tuned agent's adapter's own format (its `fireact.json`, or
    the known adapters' table for the paper's published ones), a `paper` prompts file's `text`, else `chat`."""
    if spec.finetuned:
        adapter = getattr(spec, "adapter", None)
        model = str(getattr(spec, "model", ""))
        if adapter is None and model.startswith("local:"):  # a merged fine-tuned model, e.g. forestai/fireact_llama_2_7b
            adapter = model.split(":", 1)[1]
        fmt, why = adapter_format(adapter, model.split(":", 1)[-1] if ":" in model else model)
        return (fmt, why) if fmt else ("chat", f"{why}: the base's format")
    return ("text", "raw prompts") if spec.prompts == "paper" else ("chat", "the default")


Config = TypeVar("Config", bound=AgentConfig)


def resolved(spec: Config) -> Config:
    """`spec` with its format resolved when it is `auto` (a copy; the record itself does no I/O)."""
    if spec.prompt_format != AUTO:
        return spec
    return replace(spec, prompt_format=resolve_format(spec)[0])
