"""Before a base model's weights download: can this machine hold it, and may we fetch it?

- `fetch_json(repo_or_folder, filename)` reads a small JSON file (`config.json`, an
  `adapter_config.json`, a safetensors index) from a local folder, the Hub cache, or the Hub when
  online. A gated repository raises `ConfigError` saying it needs `HF_TOKEN` and an accepted licence.
- `parameter_count(source, config)`: exact from local safetensors headers, else from the Hub's
  `model.safetensors.index.json` (`total_parameters`, or `total_size` over the checkpoint's dtype),
  else estimated from `config.json` (a decoder with a gated MLP: Llama, Mistral, Qwen, Gemma).
- `check_fits(...)` refuses, with the numbers, a base whose weights need more than 90% of the
  memory available where they would go (free VRAM on CUDA, available RAM on CPU), before any
  weight downloads. `FIREACT_SKIP_MEMORY_CHECK=1` turns the check off (e.g. with swap).
- `load_kwargs(...)`: `from_pretrained`'s arguments (float32 on CPU, bfloat16 on CUDA, or 4-bit NF4 on
  CUDA); `check_base(...)`: the gate and the memory check `models.load_base` runs first.

Bytes per parameter (decision): 4 for float32, 2 for bfloat16/float16; 4-bit NF4 with double
quantisation stores ~0.52 bytes per parameter of the linear layers (4 bits, plus an fp8 scale per 64
weights and the second-level constants), while bitsandbytes leaves the embeddings and the output
layer in the compute dtype (2 bytes).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError

GIB = 1024**3
HEADROOM = 0.9  # the weights may take this share of what is free; activations and the KV cache need the rest
NF4_BYTES = 0.52
DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float64": 8, "int8": 1,
               "F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1, "I64": 8, "I32": 4, "BOOL": 1}


def gated_message(repo_id: str) -> str:
    return (f"{repo_id} is a gated model on the Hugging Face Hub: accept its licence on "
            f"https://huggingface.co/{repo_id} with your account, then set HF_TOKEN to an access token of that "
            f"account (on a Space: a secret named HF_TOKEN) and start again.")


def is_gated(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is the Hub refusing a gated repository."""
    from huggingface_hub.errors import GatedRepoError

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, GatedRepoError) or "gated repo" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def fetch_json(repo_or_folder: str | os.PathLike, filename: str, *, hub: bool = True) -> dict[str, Any] | None:
    """A small JSON file of a model or adapter: from a folder, the Hub cache, or (online, `hub`) the Hub.

    None when it is not there. Raises `ConfigError` for a gated repository or unreadable JSON.
    """
    from fireact_core.models import _is_hub_id, online

    name = str(repo_or_folder).strip()
    folder = Path(name).expanduser()
    path: Path | None = folder / filename if folder.is_dir() else None
    if path is None and _is_hub_id(name):
        path = _from_hub(name, filename, download=hub and online())
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{name}: {filename} is not readable JSON ({e})") from None
    return data if isinstance(data, dict) else None


def _from_hub(repo_id: str, filename: str, *, download: bool) -> Path | None:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        hit = try_to_load_from_cache(repo_id, filename)
    except ValueError:
        return None
    if isinstance(hit, str):
        return Path(hit)
    if not download:
        return None
    try:
        return Path(hf_hub_download(repo_id, filename))
    except Exception as e:
        if is_gated(e):
            raise ConfigError(gated_message(repo_id)) from None
        if isinstance(e, (EntryNotFoundError, RepositoryNotFoundError)):
            return None
        status = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(e, HfHubHTTPError) and status in (401, 403):
            raise ConfigError(gated_message(repo_id)) from None
        # an outside service (HTTP errors, connection errors of whichever HTTP client): a message
        raise ConfigError(f"could not read {filename} of {repo_id} from the Hub: {e}") from None


# --- how to load ---------------------------------------------------------------------------
def four_bit_config() -> Any:
    """bitsandbytes 4-bit NF4 with double quantisation and bfloat16 compute (the QLoRA recipe)."""
    import torch

    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as e:
        raise ConfigError(f"4-bit loading needs bitsandbytes: pip install bitsandbytes ({e})") from None
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_kwargs(device: str, dtype: Any = None, *, quantization_config: Any = None,
                load_4bit: bool = False) -> dict[str, Any]:
    """The `from_pretrained` keyword arguments for a base on `device`: float32 on CPU, bfloat16 on
    CUDA, or 4-bit NF4 on CUDA (`load_4bit`; refused elsewhere, as bitsandbytes' 4-bit kernels are CUDA's)."""
    import torch

    if load_4bit and quantization_config is None:
        if not device.startswith("cuda"):
            raise ConfigError(f"4-bit NF4 loading needs a CUDA GPU, and this model would load on {device}: drop the "
                              f"`:4bit` suffix (or FIREACT_LOAD_4BIT) to load it in float32 here")
        quantization_config = four_bit_config()
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": device}
    return kwargs


def check_base(name: str, source: Path | str, kwargs: dict[str, Any], device: str) -> None:
    """Before the weights download: a gated base says what it needs (`ConfigError`), and one too
    large for `device`'s memory is refused with the numbers. Bundled bases are small: not checked."""
    from fireact_core.models import MARKER, bundled_base

    if bundled_base(name) is not None or (Path(str(source)) / MARKER).is_file():
        return
    config = fetch_json(source, "config.json")
    if config is None:
        return  # the Hub does not answer or has no such model: from_pretrained says so
    check_fits(name, source, config, device=device, dtype=str(kwargs["dtype"]),
               four_bit="quantization_config" in kwargs)


# --- how big -------------------------------------------------------------------------------
def estimate_parameters(config: dict[str, Any]) -> int:
    """Parameters of a decoder-only transformer with a gated MLP (Llama-style), from its config."""
    cfg = {**config, **(config.get("text_config") or {})}
    h, n_layers, vocab = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]), int(cfg["vocab_size"])
    heads = int(cfg.get("num_attention_heads") or 1)
    kv = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or h // heads)
    inter = int(cfg.get("intermediate_size") or 4 * h)
    attn = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h
    layer = attn + 3 * h * inter + 2 * h
    embeddings = vocab * h * (1 if cfg.get("tie_word_embeddings", False) else 2)
    return n_layers * layer + embeddings + h


def embedding_parameters(config: dict[str, Any]) -> int:
    """Parameters of the input embeddings and the output layer (bitsandbytes does not quantise them)."""
    cfg = {**config, **(config.get("text_config") or {})}
    return int(cfg["vocab_size"]) * int(cfg["hidden_size"]) * (1 if cfg.get("tie_word_embeddings", False) else 2)


def _safetensors_count(path: Path) -> int:
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    total = 0
    for key, info in header.items():
        if key != "__metadata__":
            n = 1
            for d in info["shape"]:
                n *= int(d)
            total += n
    return total


def parameter_count(source: str | os.PathLike, config: dict[str, Any]) -> tuple[int, str]:
    """(parameters, how they were counted) of a base model in a folder or on the Hub."""
    folder = Path(str(source)).expanduser()
    if folder.is_dir():
        files = sorted(folder.glob("*.safetensors"))
        if files:
            return sum(_safetensors_count(p) for p in files), "safetensors headers"
    index = fetch_json(source, "model.safetensors.index.json")
    meta = (index or {}).get("metadata") or {}
    if meta.get("total_parameters"):
        return int(meta["total_parameters"]), "safetensors index"
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "")
    if meta.get("total_size") and dtype in DTYPE_BYTES:
        return int(meta["total_size"]) // DTYPE_BYTES[dtype], f"safetensors index ({dtype} checkpoint)"
    try:
        return estimate_parameters(config), "estimated from config.json"
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"cannot tell the size of {source} from its config.json") from None


@dataclass(frozen=True)
class Need:
    """What a base's weights take, loaded a given way."""

    parameters: int
    counted: str
    bytes: int
    how: str  # "bfloat16", "float32", "4-bit NF4"


def weights_need(source: str | os.PathLike, config: dict[str, Any], *, dtype: str, four_bit: bool) -> Need:
    """Bytes the weights of a base take in memory, loaded in `dtype` or in 4-bit NF4."""
    params, counted = parameter_count(source, config)
    per = DTYPE_BYTES.get(dtype.removeprefix("torch."), 4)
    if not four_bit:
        return Need(params, counted, params * per, dtype.removeprefix("torch."))
    try:
        emb = min(embedding_parameters(config), params)
    except (KeyError, TypeError, ValueError):
        emb = 0
    return Need(params, counted, int((params - emb) * NF4_BYTES + emb * per), "4-bit NF4")


def available_memory(device: str) -> tuple[int, str]:
    """(bytes free, where) on `device`: free VRAM on CUDA, available RAM otherwise."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free), f"free GPU memory on {device}"
    try:
        import psutil

        return int(psutil.virtual_memory().available), "available RAM"
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "available RAM"
    except OSError:
        pass
    return 1 << 62, "memory (unknown)"  # cannot tell: do not refuse


def check_fits(name: str, source: str | os.PathLike, config: dict[str, Any], *, device: str, dtype: str,
               four_bit: bool, available: tuple[int, str] | None = None) -> Need:
    """Raise `ConfigError` with the numbers when the weights will not fit; return what they need."""
    need = weights_need(source, config, dtype=dtype, four_bit=four_bit)
    if os.environ.get("FIREACT_SKIP_MEMORY_CHECK", "").strip().lower() in ("1", "true", "yes", "on"):
        return need
    free, where = available or available_memory(device)
    if need.bytes > HEADROOM * free:
        hint = ("Load it in 4-bit NF4 on a CUDA GPU (a `:4bit` suffix on the model, or FIREACT_LOAD_4BIT=1 for the "
                "app), use" if not four_bit else "Use")
        raise ConfigError(
            f"{name} is too large for this machine: {need.parameters / 1e9:.2f} B parameters ({need.counted}) "
            f"take {need.bytes / GIB:.1f} GiB in {need.how}, but there are {free / GIB:.1f} GiB of {where} "
            f"(the weights may use at most {HEADROOM:.0%} of it). {hint} a machine with more "
            f"memory, or a smaller base; FIREACT_SKIP_MEMORY_CHECK=1 skips this check.")
    return need
