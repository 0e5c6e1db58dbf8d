"""A chat template's turn markers on a base whose vocabulary lacks them.

The `chat` format's template (ChatML: `<|im_start|>`, `<|im_end|>`) ends a turn with one token that
the decode loop stops at. Llama-2's vocabulary has no such token: the marker would be several
plain pieces the stop logic never sees. Decision: the trainer adds the missing markers as special
tokens, resizes the embeddings and trains their rows (PEFT `trainable_token_indices` on the input
embeddings; an untied output head is trained and saved whole), so they are saved with the adapter; its `fireact.json` lists them
(`added_tokens`), and loading the adapter adds the same tokens to the base first (`prepare_base`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_MARKER_RE = re.compile(r"<\|[a-z_]+\|>|<(?:start|end)_of_turn>")


def template_markers(template: str) -> list[str]:
    """The special markers a chat template writes, in order of first use."""
    return list(dict.fromkeys(_MARKER_RE.findall(template)))


def is_one_token(tokenizer: Any, text: str) -> bool:
    """Whether `text` is a single token of `tokenizer`'s vocabulary."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return len(ids) == 1 and ids[0] != tokenizer.unk_token_id


def missing_markers(tokenizer: Any, template: str) -> list[str]:
    """The template's markers that are not one token of the tokenizer's vocabulary."""
    return [m for m in template_markers(template) if not is_one_token(tokenizer, m)]


def add_markers(tokenizer: Any, markers: list[str], model: Any = None) -> list[int]:
    """Add `markers` as special tokens (and resize `model`'s embeddings, new rows at the mean); return their ids."""
    if markers:
        tokenizer.add_tokens(list(markers), special_tokens=True)
        if model is not None and model.get_input_embeddings().weight.shape[0] < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return [tokenizer.convert_tokens_to_ids(m) for m in markers]


def trainable_rows(model: Any, ids: list[int]) -> tuple[dict[str, list[int]], list[str]]:
    """(`trainable_token_indices`, `modules_to_save`) for the new tokens: their input-embedding rows train beside the
    LoRA; an untied output head is trained and saved whole (TRL's fused loss reads the head's own weight, which
    PEFT's row-wise wrapper does not expose), so the model can learn to write the end-of-turn token."""
    untied = not getattr(model.config, "tie_word_embeddings", False) and model.get_output_embeddings() is not None
    return {"embed_tokens": list(ids)}, (["lm_head"] if untied else [])


def adapter_tokens(source: str) -> list[str]:
    """The tokens an adapter folder's `fireact.json` says were added to its base (`added_tokens`)."""
    from fireact_core.known_adapters import MANIFEST, _manifest_path

    path = _manifest_path(source, None)
    if path is None or not path.is_file():
        folder = Path(source)
        path = folder / MANIFEST if folder.is_dir() else None
    if path is None or not path.is_file():
        return []
    try:
        tokens = json.loads(path.read_text(encoding="utf-8")).get("added_tokens") or []
    except (OSError, ValueError):
        return []
    return [t for t in tokens if isinstance(t, str)]


def prepare_base(model: Any, tokenizer: Any, source: str) -> bool:
    """Before an adapter loads: add the tokens it was trained with that the base lacks (resizing the embeddings,
    in their original order, so the ids match the adapter's). True when the vocabulary changed."""
    missing = [t for t in adapter_tokens(source) if not is_one_token(tokenizer, t)]
    if not missing:
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    add_markers(tokenizer, missing, base)
    return True
