"""Which base a LoRA adapter belongs on: by what it was built for, not by the string it records.

An adapter's `adapter_config.json` records its base as `base_model_name_or_path`: a Hub id, or
often the folder it was trained from on someone's machine (`/home/…/llama-2-7b-chat-hf`). The
rule (`same_base`), in order:

1. the recorded name, through the owner's alias map (`FIREACT_BASE_ALIASES`,
   `"/path/llama-2-7b-chat-hf=meta-llama/Llama-2-7b-chat-hf,…"`), is the base's own name;
2. it is a local path (not a Hub id) whose last part is the base's name, case aside
   (`/home/x/llama-2-7b-chat-hf` for `meta-llama/Llama-2-7b-chat-hf`);
3. its `config.json` can be read (a folder here, the Hub cache, or, where allowed, the Hub) and
   says the same architecture, hidden size, layer count and vocabulary as the base's.

Otherwise the adapter is for another base, and the error names both. Whatever the names say,
the LoRA tensors must then fit (`shape_problems`): each `lora_A` takes the input size and each
`lora_B` gives the output size of the base's module it adapts, on layers the base has. So an alias
that equates two different models is caught before any weight is touched.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError

LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+?)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")
LAYER = re.compile(r"\.layers\.(\d+)\.")
IN_HIDDEN = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")  # modules whose input is the hidden state
OUT_HIDDEN = ("o_proj", "down_proj")  # modules whose output is the hidden state


def aliases() -> dict[str, str]:
    """The owner's map from recorded base names (often paths) to Hub ids: `FIREACT_BASE_ALIASES`."""
    out = {}
    for part in re.split(r"[,\n]", os.environ.get("FIREACT_BASE_ALIASES", "")):
        recorded, eq, hub_id = part.strip().rpartition("=")  # a Hub id has no "=", a path might
        if not part.strip():
            continue
        if not eq or not recorded.strip() or not hub_id.strip():
            raise ConfigError(f"FIREACT_BASE_ALIASES: {part.strip()!r} is not of the form <recorded name>=<hub id>")
        out[recorded.strip().rstrip("/")] = hub_id.strip()
    return out


def alias(name: str) -> str:
    """`name` through the alias map (itself when it has no alias)."""
    key = str(name or "").strip().rstrip("/")
    return aliases().get(key, key)


@dataclass(frozen=True)
class Shape:
    """What an adapter's fit depends on, from a model's `config.json`."""

    architecture: str
    hidden_size: int
    layers: int
    vocab_size: int

    @classmethod
    def of(cls, config: dict[str, Any]) -> Shape:
        cfg = {**config, **(config.get("text_config") or {})}
        arch = (config.get("architectures") or [config.get("model_type") or "?"])[0]
        return cls(str(arch), int(cfg.get("hidden_size") or 0), int(cfg.get("num_hidden_layers") or 0),
                   int(cfg.get("vocab_size") or 0))

    def __str__(self) -> str:
        return f"{self.architecture}, hidden size {self.hidden_size}, {self.layers} layers, vocabulary {self.vocab_size}"


def _looks_like_path(name: str) -> bool:
    from fireact_core.models import _is_hub_id

    return name.startswith(("/", "~", ".")) or not _is_hub_id(name)  # a folder, or a bare folder name


def same_base(recorded: str, base: str, base_config: dict[str, Any] | None, *, hub: bool = False) -> tuple[bool, str]:
    """Whether an adapter recording `recorded` belongs on `base` (a canonical id or folder), and why.

    `base_config` is the base's `config.json` (None: rule 3 cannot apply); `hub` lets rule 3 fetch the
    recorded base's config from the Hub (the CLI; the app never fetches what a visitor's adapter names).
    """
    from fireact_core.base_fit import fetch_json
    from fireact_core.models import canonical_base

    named = alias(recorded)
    if canonical_base(named) == canonical_base(base):
        return True, "by name" if named == recorded.strip().rstrip("/") else f"by the alias {recorded} = {named}"
    want = canonical_base(base).rstrip("/").rpartition("/")[2].lower()
    if _looks_like_path(named) and re.split(r"[\\/]", named.rstrip("/\\"))[-1].lower() == want:
        return True, f"the recorded path {named} is a copy of {base}"
    if base_config is None:
        return False, f"{recorded} is not {base}"
    theirs = fetch_json(named, "config.json", hub=hub)
    if theirs is None:
        return False, (f"{recorded} is not {base}, and its config.json cannot be read here to compare them; if it is a "
                       f"copy of {base}, say so with FIREACT_BASE_ALIASES='{recorded}={canonical_base(base)}'")
    mine, other = Shape.of(base_config), Shape.of(theirs)
    if mine == other:
        return True, f"{recorded} has the same architecture and sizes as {base} ({mine})"
    return False, f"{recorded} ({other}) is not {base} ({mine})"


# --- the adapter's tensors ------------------------------------------------------------------
def _weights_file(source: str) -> Path | None:
    """The adapter's weights file: a folder's, or (already fetched by peft or us) the Hub cache's."""
    from fireact_core.base_fit import _from_hub
    from fireact_core.models import _is_hub_id, online

    folder = Path(source).expanduser()
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if folder.is_dir():
            if (folder / name).is_file():
                return folder / name
        elif _is_hub_id(source):
            try:
                hit = _from_hub(source, name, download=online())
            except ConfigError:
                return None
            if hit is not None:
                return hit
    return None


def lora_shapes(source: str) -> dict[str, tuple[int, ...]]:
    """`{tensor name: shape}` of an adapter's LoRA weights (safetensors header, or the pickled state
    dict of older adapters, read with `weights_only`); empty when the weights cannot be found."""
    path = _weights_file(source)
    if path is None:
        return {}
    if path.suffix == ".safetensors":
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    import torch

    try:
        state = torch.load(path, map_location="meta", weights_only=True)
    except Exception as e:  # a pickle that is more than tensors is not loaded at all
        raise ConfigError(f"adapter {source}: {path.name} is not a plain state dict of tensors ({e})") from None
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def _modules(shapes: dict[str, tuple[int, ...]]) -> dict[str, dict[str, tuple[int, ...]]]:
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, shape in shapes.items():
        m = LORA_KEY.match(key)
        if m and len(shape) == 2:
            out.setdefault(m["module"], {})[m["ab"]] = shape
    return out


def shape_problems_config(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> list[str]:
    """Where the LoRA tensors do not fit a base described by its `config.json` (layers, hidden size)."""
    base = Shape.of(config)
    problems = []
    for module, ab in sorted(_modules(shapes).items()):
        layer = LAYER.search(f".{module}.")
        if layer and int(layer[1]) >= base.layers:
            problems.append(f"{module} is on layer {layer[1]}, but the base has {base.layers} layers")
            continue
        leaf = module.rpartition(".")[2]
        if leaf in IN_HIDDEN and "A" in ab and ab["A"][1] != base.hidden_size:
            problems.append(f"{module} takes {ab['A'][1]} inputs, but the base's hidden size is {base.hidden_size}")
        if leaf in OUT_HIDDEN and "B" in ab and ab["B"][0] != base.hidden_size:
            problems.append(f"{module} gives {ab['B'][0]} outputs, but the base's hidden size is {base.hidden_size}")
    return problems


def shape_problems_model(shapes: dict[str, tuple[int, ...]], model: Any) -> list[str]:
    """Where the LoRA tensors do not fit the modules of a loaded base (4-bit layers included)."""
    named = dict(model.named_modules())
    problems = []
    for module, ab in sorted(_modules(shapes).items()):
        target = named.get(module) or named.get(module.removeprefix("model."))
        if target is None:
            layers = getattr(model.config, "num_hidden_layers", "?")
            problems.append(f"the base has no module {module} (it has {layers} layers)")
            continue
        n_in = getattr(target, "in_features", None) or getattr(target, "num_embeddings", None)
        n_out = getattr(target, "out_features", None) or getattr(target, "embedding_dim", None)
        if "A" in ab and n_in is not None and ab["A"][1] != n_in:
            problems.append(f"{module} takes {ab['A'][1]} inputs in the adapter, {n_in} in the base")
        if "B" in ab and n_out is not None and ab["B"][0] != n_out:
            problems.append(f"{module} gives {ab['B'][0]} outputs in the adapter, {n_out} in the base")
    return problems


def refuse_shapes(adapter: str, base: str, recorded: str, problems: list[str]) -> None:
    """Raise the error for an adapter whose tensors do not fit the base (naming both)."""
    if not problems:
        return
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    raise ConfigError(f"adapter {adapter!r} is not an adapter for {base!r}: its LoRA weights do not fit that base's "
                      f"layers: {'; '.join(problems[:3])}{more}. It records its base as {recorded or '(nothing)'!r}; "
                      f"load the base it was trained on, or choose an adapter made for {base!r}.")
