"""Fast CPU decoding for Llama-architecture models (SmolLM2): 4-bit weights, a lean step, LoRA beside.

Decoding one token at a time on a CPU is bound by reading the weights and, for a 135M model,
by Python overhead as much as by the matmuls. `QuantLlama.step` therefore:

- keeps the linear layers as 4-bit weights in groups of 32 with a scale and a minimum per group
  (torch's `_weight_int4pack_mm_for_cpu`, bf16 activations). That is the grid of GGUF Q4_1, so
  for the bundled model (every linear layer is Q4_1) the 4-bit weights are *exactly* the weights
  the fp32 model uses; shapes the kernel cannot take fall back to int8 per-channel
  (`torch.ao` dynamic quantisation);
- fuses q/k/v and gate/up into one matmul each and skips the generic forward's masks;
- computes the logits with an int8 copy of the output matrix, then recomputes the top 16 in fp32
  from the real weights, so the greedy choice is the one the fp32 head would make (the int8 head
  alone changed the argmax now and then; this made greedy text match fp32 in our checks);
- runs LoRA adapters *unmerged* beside the quantised base, in fp32 (`h @ A.T @ B.T * scale`):
  merging first would push the small LoRA deltas through the 4-bit grid and lose most of them,
  and one quantised base serves every adapter, so switching adapters costs nothing.

Keys/values go into the same transformers `DynamicCache` that the fp32 prefill fills.
"""

from __future__ import annotations

import warnings
from typing import Any

from transformers.cache_utils import DynamicLayer as DynamicLayerBase

GROUP = 32  # Q4_1's block size
RESCORE = 16  # logits recomputed in fp32 from the real output matrix
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class UnsupportedAdapter(Exception):
    """The adapter cannot run beside the quantised base (not plain LoRA on the linear layers)."""


class Int4Linear:
    """y = x @ W.T with W in 4 bits: asymmetric groups of 32 along the input (scale + minimum).

    Takes fp32 or bf16 activations, computes in bf16 and returns bf16.
    """

    def __init__(self, weight: Any) -> None:
        import torch

        n, k = weight.shape
        if k % GROUP or n % 16:
            raise ValueError(f"shape {tuple(weight.shape)} does not fit the int4 kernel")
        w = weight.detach().float().reshape(n, k // GROUP, GROUP)
        lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        scale = ((hi - lo) / 15).clamp(min=1e-12)
        q = torch.clamp(torch.round((w - lo) / scale), 0, 15).to(torch.int32).reshape(n, k)
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        # The kernel computes (q - 8) * scale + zero, so zero is the value at q = 8.
        zero = lo + 8 * scale
        self.scales_zeros = torch.stack([scale[..., 0], zero[..., 0]], -1).transpose(0, 1).contiguous().bfloat16()
        self.out = n

    def __call__(self, x: Any) -> Any:
        import torch

        if x.dim() == 2:  # the decode step's (1, in)
            return torch.ops.aten._weight_int4pack_mm_for_cpu(x.bfloat16(), self.packed, GROUP, self.scales_zeros)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.reshape(-1, x.shape[-1]).bfloat16(), self.packed, GROUP,
                                                       self.scales_zeros)
        return y.reshape(*x.shape[:-1], self.out)  # bf16; adding it to an fp32 tensor promotes it


class Int8Linear:
    """y = x @ W.T with int8 per-channel weights and dynamically quantised activations (`torch.ao`)."""

    def __init__(self, weight: Any) -> None:
        import torch
        from torch.ao.quantization.observer import default_per_channel_weight_observer

        w = weight.detach().float()
        observer = default_per_channel_weight_observer()
        observer(w)
        scale, zero = observer.calculate_qparams()
        with warnings.catch_warnings():  # quantised tensors are deprecated in favour of torchao; they still work
            warnings.simplefilter("ignore")
            q = torch.quantize_per_channel(w, scale.double(), zero.long(), 0, torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(q, None)

    def __call__(self, x: Any) -> Any:
        import torch

        return torch.ops.quantized.linear_dynamic(x.float(), self.packed, reduce_range=True)


def quantize(weight: Any) -> Int4Linear | Int8Linear:
    try:
        return Int4Linear(weight)
    except (ValueError, RuntimeError):
        return Int8Linear(weight)


class LoraPair:
    """A LoRA update for one (possibly fused) matmul: `(h @ A.T) @ B.T`, the scaling folded into B."""

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b
        self.at, self.bt = a.T, b.T  # views: the same products `h @ a.T @ b.T` makes, fewer dispatches

    def __call__(self, h: Any) -> Any:
        import torch

        if h.dim() == 2 and h.dtype == torch.float32:  # the decode step's (1, in)
            return torch.mm(torch.mm(h, self.at), self.bt)
        return (h.float() @ self.a.T) @ self.b.T


def _base_weight(module: Any) -> Any:
    return (module.base_layer if hasattr(module, "base_layer") else module).weight


def _lora_pair(modules: list[Any], name: str) -> LoraPair | None:
    """Fuse the LoRA factors of `modules` (their outputs are concatenated) into one pair."""
    import torch

    a_parts, b_parts, outs = [], [], []
    for m in modules:
        out = _base_weight(m).shape[0]
        outs.append(out)
        lora_a = getattr(m, "lora_A", {})
        if name not in lora_a:
            a_parts.append(None)
            b_parts.append(None)
            continue
        if getattr(m, "use_dora", {}).get(name) or getattr(m, "lora_bias", {}).get(name):
            raise UnsupportedAdapter(f"adapter {name!r} uses DoRA or a LoRA bias")
        a_parts.append(m.lora_A[name].weight.detach().float())
        b_parts.append(m.lora_B[name].weight.detach().float() * float(m.scaling[name]))
    if all(a is None for a in a_parts):
        return None
    rank = sum(a.shape[0] for a in a_parts if a is not None)
    a = torch.cat([x for x in a_parts if x is not None])
    b = torch.zeros(sum(outs), rank)
    row = col = 0
    for out, part in zip(outs, b_parts):  # block-diagonal: each module's B writes its own rows
        if part is not None:
            b[row:row + out, col:col + part.shape[1]] = part
            col += part.shape[1]
        row += out
    return LoraPair(a, b)


class QuantLlama:
    """The quantised one-token decode step of a Llama-architecture model (see the module docstring)."""

    @staticmethod
    def supports(model: Any) -> bool:
        cfg = model.config
        return (getattr(cfg, "model_type", "") == "llama" and not getattr(cfg, "attention_bias", False)
                and not getattr(cfg, "mlp_bias", False) and getattr(cfg, "hidden_act", "") == "silu"
                and getattr(cfg, "pretraining_tp", 1) == 1)

    def __init__(self, model: Any) -> None:
        """`model`: a `LlamaForCausalLM` or a `PeftModel` around one (its base weights are used)."""
        import torch

        causal = model.get_base_model() if hasattr(model, "get_base_model") else model
        cfg, inner = causal.config, causal.model
        self.config = cfg
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.qkv_split = [self.heads * self.head_dim, self.kv_heads * self.head_dim, self.kv_heads * self.head_dim]
        self.intermediate = cfg.intermediate_size
        self.embed = inner.embed_tokens.weight.detach()
        self.rotary = inner.rotary_emb
        self.cos = self.sin = self.embed.new_empty((0, self.head_dim))
        self.layers = []
        for layer in inner.layers:
            att, mlp = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight.detach(), layer.input_layernorm.variance_epsilon,
                quantize(torch.cat([_base_weight(att.q_proj), _base_weight(att.k_proj), _base_weight(att.v_proj)])),
                quantize(_base_weight(att.o_proj)),
                layer.post_attention_layernorm.weight.detach(), layer.post_attention_layernorm.variance_epsilon,
                quantize(torch.cat([_base_weight(mlp.gate_proj), _base_weight(mlp.up_proj)])),
                quantize(_base_weight(mlp.down_proj)),
            ))
        self.norm = (inner.norm.weight.detach(), inner.norm.variance_epsilon)
        self.head = _base_weight(causal.lm_head).detach()
        self.head_q = Int8Linear(self.head)
        self.loras: dict[str, list[tuple[LoraPair | None, ...]]] = {}
        self.kind = "torch int4 eager"  # the engine's name, recorded with each arena run

    def add_adapter(self, model: Any, name: str) -> None:
        """Copy the LoRA factors of adapter `name` from the `PeftModel` `model` (once)."""
        if name in self.loras:
            return
        config = model.peft_config[name]
        if getattr(config, "peft_type", None) is not None and str(getattr(config.peft_type, "value", config.peft_type)) != "LORA":
            raise UnsupportedAdapter(f"adapter {name!r} is {config.peft_type}, not LoRA")
        if getattr(config, "modules_to_save", None):
            raise UnsupportedAdapter(f"adapter {name!r} also trains {config.modules_to_save}")
        causal = model.get_base_model()
        layers = []
        for layer in causal.model.layers:
            att, mlp = layer.self_attn, layer.mlp
            layers.append((_lora_pair([att.q_proj, att.k_proj, att.v_proj], name), _lora_pair([att.o_proj], name),
                           _lora_pair([mlp.gate_proj, mlp.up_proj], name), _lora_pair([mlp.down_proj], name)))
        for module_name, module in causal.named_modules():
            lora_a = getattr(module, "lora_A", None)
            if lora_a is not None and name in lora_a and module_name.rsplit(".", 1)[-1] not in TARGETS:
                raise UnsupportedAdapter(f"adapter {name!r} adapts {module_name}, which the fast path does not run")
        self.loras[name] = layers

    def _rotary(self, pos: int) -> tuple[Any, Any]:
        """cos and sin of position `pos`, (head_dim,), from a table grown on demand (the same
        elementwise formula as the model's rotary module, so the same values)."""
        import torch

        if pos >= self.cos.shape[0]:
            n = max(2 * self.cos.shape[0], pos + 1)
            cos, sin = self.rotary(self.embed[:1].view(1, 1, -1), torch.arange(n).view(1, -1))
            self.cos, self.sin = cos[0].contiguous(), sin[0].contiguous()
        return self.cos[pos], self.sin[pos]

    def step(self, token: int, cache: Any, adapter: str | None = None) -> Any:
        """Logits (fp32) for the position after `cache` + `token`; appends `token`'s keys/values.

        Lean by measurement (a 135M model at batch 1 spends as long dispatching small ops as in
        its matmuls): 2-D activations, no transposes, a precomputed rotary table, RMS norm as
        four ops (bit for bit `F.rms_norm`, which dispatches a dozen), and keys/values written
        straight into the growing cache's buffers.
        """
        import torch
        import torch.nn.functional as F

        loras = self.loras[adapter] if adapter is not None else None
        pos = cache.get_seq_length()
        cos, sin = self._rotary(pos)
        h_, kv_, d_, half = self.heads, self.kv_heads, self.head_dim, self.head_dim // 2
        nq, inter, layers = (h_ + kv_) * d_, self.intermediate, cache.layers
        x = self.embed[token].view(1, -1)
        for i, (w1, eps1, qkv, o, w2, eps2, gate_up, down) in enumerate(self.layers):
            lq, lo, lg, ld = loras[i] if loras else (None, None, None, None)
            h = w1 * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps1))
            # Each 4-bit matmul's bf16 output is cast to fp32 once (exact), not once per op that reads it.
            y = qkv(h).float() if lq is None else qkv(h) + lq(h)
            # Rotary embedding on the query and key heads at once: x * cos + rotate_half(x) * sin.
            qk = y[:, :nq].view(h_ + kv_, d_)
            qk = qk * cos + torch.cat((-qk[:, half:], qk[:, :half]), dim=-1) * sin
            k, v = _append(layers[i], cache, i, qk[h_:], y[:, nq:].view(kv_, d_))
            a = F.scaled_dot_product_attention(qk[:h_].view(1, h_, 1, d_), k, v, enable_gqa=h_ != kv_)
            a = a.view(1, h_ * d_)
            x = x + (o(a) if lo is None else o(a) + lo(a))
            h = w2 * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps2))
            y = gate_up(h).float() if lg is None else gate_up(h) + lg(h)
            m = F.silu(y[:, :inter]) * y[:, inter:]  # in fp32, like the fp32 model (bf16 here changed greedy text)
            x = x + (down(m) if ld is None else down(m) + ld(m))
        w, eps = self.norm
        h = (w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)))[0]
        logits = self.head_q(h.view(1, -1))[0]
        top = logits.topk(RESCORE).indices
        logits[top] = self.head[top] @ h
        return logits


def _append(layer: Any, cache: Any, i: int, k: Any, v: Any) -> tuple[Any, Any]:
    """Append one position's keys and values, `(kv_heads, head_dim)`, to layer `i`; return the layer's all."""
    if isinstance(layer, GrowingLayer) and layer.buffers is not None and layer.length < layer.buffers[0].shape[-2]:
        n = layer.length
        layer.buffers[0][0, :, n] = k
        layer.buffers[1][0, :, n] = v
        layer._view(n + 1)
        return layer.keys, layer.values
    return cache.update(k.unsqueeze(0).unsqueeze(2), v.unsqueeze(0).unsqueeze(2), i)


class GrowingLayer(DynamicLayerBase):
    """A `DynamicLayer` that appends into a buffer with room to spare instead of concatenating.

    `DynamicLayer.update` copies the whole cache on every token (`torch.cat`); with a ReAct
    prompt of a thousand tokens that is tens of MB per decoded token. Here the keys/values are
    views into a buffer that doubles when full, and `crop` just shortens the views.
    """

    def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
        super().lazy_initialization(key_states, value_states)
        self.buffers: tuple[Any, Any] | None = None
        self.length = 0

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, add = self.length, key_states.shape[-2]
        if self.buffers is None or n + add > self.buffers[0].shape[-2]:
            room = max(256, 2 * (n + add))
            # One dtype for both buffers, the keys' (fp32 after rotary): the quantised step's values
            # come out of its matmul in bf16, and attention needs query, keys and values alike.
            dtype = self.keys.dtype if n else key_states.dtype
            grown = tuple(t.new_empty((*t.shape[:-2], room, t.shape[-1]), dtype=dtype)
                          for t in (key_states, value_states))
            if n:
                grown[0][..., :n, :] = self.keys
                grown[1][..., :n, :] = self.values
            self.buffers = grown
        self.buffers[0][..., n:n + add, :] = key_states
        self.buffers[1][..., n:n + add, :] = value_states
        self._view(n + add)
        return self.keys, self.values

    def _view(self, length: int) -> None:
        self.length = length
        self.keys = self.buffers[0][..., :length, :]
        self.values = self.buffers[1][..., :length, :]

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        if tokens_to_remove and self.is_initialized and self.buffers is not None:
            self._view(max(0, self.length + tokens_to_remove))

    def reset(self) -> None:
        self.buffers, self.length = None, 0
        super().reset()


def new_cache(config: Any) -> Any:
    """A `DynamicCache` for `config` whose layers grow in place (`GrowingLayer`).

    Sliding-window layers (Gemma 3) become full layers too (decision): a session crops its cache
    back to any earlier point, which a sliding layer past its window cannot do; the attention mask
    still limits those layers to their window, so the logits are the same, and contexts here are
    a few thousand tokens.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayerBase or getattr(layer, "is_sliding", False)
                            for layer in cache.layers):
        cache.layers = [GrowingLayer() for _ in cache.layers]
    return cache
