"""A tiny randomly initialised Llama-architecture model and tokenizer, made on the spot (no download),
and LoRA adapters saved the way the paper's published ones are.

- `make_tiny_llama(folder)`: a `LlamaForCausalLM` (2 layers, hidden 64, grouped-query attention) and
  a Llama-style tokenizer: SentencePiece-like BPE with byte fallback (`<0x00>`…`<0xFF>`), `▁` for
  spaces, `<unk>`/`<s>`/`</s>` as ids 0/1/2, and `<s>` added before every encoded text, as
  Llama-2's `tokenizer.json` does. Saved with `save_pretrained` (safetensors), so it loads with
  `AutoModelForCausalLM`/`AutoTokenizer` from a folder or from the Hub stand-in.
- `save_published_adapter(model, folder)`: a LoRA adapter in the layout of the FireAct authors'
  adapters, trained with peft 0.4.0 (their `requirements.txt`) by their `finetune/llama_lora/finetune.py`:
  r=8, alpha 16, dropout 0.05 on `q_proj`/`v_proj`; an `adapter_config.json` with peft 0.4.0's fields
  only (no `use_dora`, `use_rslora`, …), its base recorded as the local path the base was loaded from;
  weights pickled in `adapter_model.bin` (`torch.save` of a state dict whose keys carry no adapter name:
  `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`). B is random (not zero), so the
  adapter changes what the model says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Where the authors' script was pointed (`--base_model`): a folder on their machine. The path is
# made up for the test, in the shape such a path has; only its last part names the model.
RECORDED_BASE = "/home/fireact/models/llama-2-7b-chat-hf"


def _corpus(limit: int = 400) -> list[str]:
    lines = []
    with (ROOT / "data" / "world" / "corpus.jsonl").open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            lines.append(json.loads(line)["text"])
    lines += ["Thought: I need to search for it.", "Action: search[the answer]", "Observation: nothing",
              "Action: finish[yes]", "Question: Which country is it from?",
              "Below is an instruction that describes a task. Write a response that appropriately completes "
              "the request.\n\n### Instruction:\n\n### Response:\n"]
    return lines


def make_tokenizer(vocab_size: int = 700) -> Any:
    """A Llama-2-style fast tokenizer trained on the world's encyclopedia (a second or two)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials + [f"<0x{i:02X}>" for i in range(256)],
                                  show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    # The trainer registers the byte pieces as special tokens; in Llama's vocabulary they are plain
    # pieces (decoded, never skipped), so only <unk>, <s> and </s> stay special.
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in specials]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    assert [tok.token_to_id(t) for t in specials] == [0, 1, 2]
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   model_max_length=2048, clean_up_tokenization_spaces=False)


def make_tiny_llama(folder: Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, tokenizer: Any = None) -> Path:
    """Save a tiny random Llama and its tokenizer to `folder` (safetensors); return the folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or make_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=None,
                         tie_word_embeddings=False, torch_dtype="float32")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# peft 0.4.0's LoraConfig, as `save_pretrained` wrote it (the fields, in its order, and nothing newer).
PEFT_040_CONFIG = {"base_model_name_or_path": RECORDED_BASE, "bias": "none", "fan_in_fan_out": False,
                   "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
                   "layers_to_transform": None, "lora_alpha": 16, "lora_dropout": 0.05, "modules_to_save": None,
                   "peft_type": "LORA", "r": 8, "revision": None, "target_modules": ["q_proj", "v_proj"],
                   "task_type": "CAUSAL_LM"}


def save_published_adapter(base: Path, folder: Path, *, seed: int = 1, recorded_base: str = RECORDED_BASE,
                           r: int = 8) -> Path:
    """A LoRA adapter for the model in `base`, in the published adapters' layout; return `folder`."""
    import torch

    config = json.loads((base / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    kv = config["num_key_value_heads"] * (hidden // config["num_attention_heads"])
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i in range(layers):
        for proj, out in (("q_proj", hidden), ("v_proj", kv)):
            prefix = f"base_model.model.model.layers.{i}.self_attn.{proj}"
            state[f"{prefix}.lora_A.weight"] = torch.randn(r, hidden, generator=g) * 0.2
            state[f"{prefix}.lora_B.weight"] = torch.randn(out, r, generator=g) * 0.2
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "adapter_model.bin")
    (folder / "adapter_config.json").write_text(json.dumps({**PEFT_040_CONFIG, "r": r,
                                                            "base_model_name_or_path": recorded_base}, indent=2))
    (folder / "README.md").write_text("---\nlibrary_name: peft\n---\n")
    return folder


def hub_files(folder: Path) -> dict[str, Path]:
    """A folder's files as `HubServer.add_files` takes them."""
    return {p.name: p for p in folder.iterdir() if p.is_file()}
