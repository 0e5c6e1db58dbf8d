"""A tiny randomly initialised Llama-architecture model and its tokenizer, made on the spot (no download).

The tokenizer is a byte-level BPE trained here on a few lines of ReAct text, with Llama's
special tokens (`<s>` BOS added to every encoding, `</s>` EOS, `<unk>`), so any text round-trips.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction:\n### Response:\nThought: I need to search for it.\nAction: search[Velmora Library]",
    "Observation: The Velmora Library was designed by Idris Kallum.\nThought: I have the answer.\nAction: finish[Idris Kallum]",
    "Question: Who designed the library? Which country is the director from? What is the elevation range?",
]


def make_tokenizer(extra: list[str] | None = None):
    """A `PreTrainedTokenizerFast` with BOS `<s>` (added on encode), EOS `</s>` and `<unk>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4 + list(extra or []), trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False),
                                             processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                                           special_tokens=[("<s>", bos)])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def make_tiny_llama(folder: Path, *, seed: int = 0) -> Path:
    """Write a tiny Llama (2 layers, hidden 64) and its tokenizer to `folder`; return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
