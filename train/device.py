"""Where and in what precision training runs: the device, 4-bit or not, weight dtype, optimiser."""

from __future__ import annotations

from typing import Any

from train.config import TrainConfig


def device() -> str:
    """The device to train on: "cuda" when a CUDA GPU is visible, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def use_4bit(cfg: TrainConfig, device: str) -> bool:
    """Whether to load the base in 4-bit NF4: the recipe says so, or `auto` on a CUDA GPU."""
    if cfg.load_in_4bit == "auto":
        return device == "cuda"
    return bool(cfg.load_in_4bit)


def cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (avx512_bf16 or AMX): then bf16 trains ~2x faster than fp32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def dtype(cfg: TrainConfig, device: str, four_bit: bool) -> Any:
    """The base weights' torch dtype."""
    import torch

    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    # bf16 base weights, fp32 LoRA weights (peft upcasts adapters) under bf16 autocast: the QLoRA
    # compute recipe. On a CPU without native bf16 that would be slower than fp32, so fp32 there.
    return torch.bfloat16 if (device == "cuda" or four_bit or cpu_bf16()) else torch.float32


def optim(cfg: TrainConfig, device: str, four_bit: bool) -> str:
    """The optimiser: paged 8-bit AdamW for QLoRA on CUDA, else torch AdamW (unless the recipe names one)."""
    if cfg.optim != "auto":
        return cfg.optim
    return "paged_adamw_8bit" if (device == "cuda" and four_bit) else "adamw_torch"
