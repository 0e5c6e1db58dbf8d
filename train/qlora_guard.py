"""4-bit loading and the CPU guard that keeps QLoRA training on CPUs with avx512_bf16.

bitsandbytes (0.50) repacks a `Linear4bit` weight in place into an inference-only layout the
first time the layer runs a forward pass without gradients on such a CPU (`generate`, an eval
loop). The packed kernel has no backward, so from then on LoRA gets no gradient and the loss
stays flat, with only a warning. `guard_cpu_4bit` switches that path off on every `Linear4bit`
and undoes a repacking that already happened; `unchanged_lora` is the after-the-fact check.
"""

from __future__ import annotations

from typing import Any


def bnb_4bit_config() -> Any:
    """NF4, double quantisation, bf16 compute: the QLoRA recipe."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def linear4bit_modules(model: Any) -> list[Any]:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return []
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def cpu_has_avx512_bf16() -> bool:
    """Whether bitsandbytes would repack 4-bit weights on this CPU."""
    try:
        from bitsandbytes.functional import has_avx512bf16
    except ImportError:
        return False
    return bool(has_avx512bf16())


def guard_cpu_4bit(model: Any) -> int:
    """Keep every `Linear4bit` on the trainable path; unpack weights already repacked. Returns the count."""
    try:
        from bitsandbytes.nn.modules import _convert_weight_packed_for_cpu_inverse
    except ImportError:  # a bitsandbytes without the CPU packed format has nothing to guard
        _convert_weight_packed_for_cpu_inverse = None
    layers = linear4bit_modules(model)
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
        state = getattr(layer.weight, "quant_state", None)
        if _convert_weight_packed_for_cpu_inverse and getattr(state, "packing_format_for_cpu", False):
            layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu_inverse(layer.weight.data, state)
    return len(layers)


def lora_snapshot(model: Any) -> dict[str, Any]:
    """A copy of every trainable LoRA tensor."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n}


def unchanged_lora(model: Any, before: dict[str, Any]) -> list[str]:
    """Names of the LoRA tensors that are bit-for-bit what they were in `before`."""
    import torch

    now = dict(model.named_parameters())
    return [n for n, t in before.items() if torch.equal(t, now[n].detach().to(t.dtype))]
