"""The local backend: a transformers causal LM (+ optional PEFT adapters) with its own decode loop.

- Prompts are rendered with the project's ChatML template (`templates/chatml.jinja`); a final
  `assistant` message is continued (rendered without its `<|im_end|>`).
- Greedy by default (`temperature=` > 0 samples, `seed=` makes it repeatable); generation stops
  at EOS/`<|im_end|>`, at `max_tokens`, or at a stop string, and text that could be the start of a
  stop string is held back so it never reaches the stream.
- `session()` keeps the keys/values of one trajectory: each call re-tokenises the whole chat,
  finds the longest common prefix with the cached token ids, crops the cache there and prefills
  only the rest (the new observation and the next assistant header).
- Speed on CPU: decoding one token at a time is bound by reading weights and by Python overhead,
  so decode steps run on an int8 copy of the linear layers (per-channel weight scales, dynamic
  activations: `torch.ao` quantised ops) through a lean Llama step (`_Int8Llama`, fused q/k/v and
  gate/up; other architectures fall back to `quantize_dynamic` + the generic forward). Prefill stays on the fp32 weights (decision): dynamic
  int8 quantises each call's activations with one scale for the whole chunk, so an int8 prefill
  would depend on how the context was split and a reused cache would not give the same text as a
  fresh encoding. After an int8 decode the cache is cropped back to the prompt, and the next call
  prefills the assistant turn in fp32 with its observation (a few dozen tokens, one batched pass).
  `quantize=False` decodes in fp32 (or the CUDA dtype) too, and keeps the decoded keys/values.
- Adapters (decision): for int8 decoding each adapter is *merged into its own copy* of the base,
  which is then quantised (an unmerged LoRA would run fp32 side matmuls next to int8 ones and lose
  most of the gain). The fp32 base with every adapter loaded on it stays the source of truth (and
  does the prefill, adapter switched on with `set_adapter`): switching adapters (`with_adapter`)
  never reloads the base; it builds once, and caches, the merged int8 copy for that adapter.
  Without quantisation (CUDA, or `quantize=False`) adapters stay unmerged on the shared model.
- Thread safety: one lock per loaded base, taken around every forward pass and tokenizer call,
  so views and sessions of one model can be used from several threads (sessions interleave
  token by token; each session must stay on one thread).
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fireact_core import models
from fireact_core.backends.base import BackendError, Completion, Message, cut_at_stop, held_back
from fireact_core.errors import ConfigError

MAX_RUNTIMES = 4  # int8 decoders kept per base (~140 MB each for SmolLM2-135M)


class _Shared:
    """What all views of one loaded base share: weights, tokenizer, lock, int8 copies."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str, quantize: bool | None = None,
                 temperature: float = 0.0, seed: int | None = None) -> None:
        import jinja2.sandbox

        self.model = model  # fp32 base, or a PeftModel wrapping it once an adapter is loaded
        self.tokenizer = tokenizer
        self.name = name
        self.device = str(next(model.parameters()).device)
        self.quantize = (self.device == "cpu") if quantize is None else bool(quantize)
        if self.quantize and self.device != "cpu":
            raise ConfigError("int8 quantisation is for CPU decoding; on CUDA use quantize=False")
        self.temperature, self.seed = temperature, seed
        self.lock = threading.RLock()
        self.runtimes: OrderedDict[str | None, Any] = OrderedDict()
        # The adapter active on the shared fp32 model (None: none loaded, or adapters disabled).
        self.active: str | None = getattr(model, "active_adapter", None) if self.adapters() else None
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self.template = env.from_string(models.chat_template())
        ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"),
               tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.convert_tokens_to_ids("<|im_start|>")}
        # End of turn, end of text, or the start of a new turn: the reply is over.
        self.end_ids = {i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id}
        self.max_context = int(getattr(model.config, "max_position_embeddings", 0) or 8192)

    # --- adapters ---
    def adapters(self) -> list[str]:
        cfg = getattr(self.model, "peft_config", None)
        return list(cfg) if cfg else []

    def add_adapter(self, source: str, name: str) -> None:
        with self.lock:
            if name in self.adapters():
                return
            self.model = models.load_adapter(self.model, source, name)
            self.active = name

    # --- weights used for decoding ---
    def decoder(self, adapter: str | None) -> Any:
        """The module that decodes for `adapter` (None = the plain base); prefill uses `self.model`."""
        with self.lock:
            if not self.quantize:
                return self.model
            if adapter in self.runtimes:
                self.runtimes.move_to_end(adapter)
                return self.runtimes[adapter]
            rt = self._build_int8(adapter)
            self.runtimes[adapter] = rt
            while len(self.runtimes) > MAX_RUNTIMES:
                self.runtimes.popitem(last=False)
            return rt

    def _activate(self, adapter: str | None) -> None:
        if not self.adapters() or adapter == self.active:
            return
        if adapter is None:
            self.model.base_model.disable_adapter_layers()
        else:
            self.model.base_model.enable_adapter_layers()
            self.model.set_adapter(adapter)
        self.active = adapter

    def _build_int8(self, adapter: str | None) -> Any:
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        model = self.model
        if self.adapters():  # merge into a copy (see the module docstring), or drop the LoRA layers
            model = copy.deepcopy(model)
            model = model.unload() if adapter is None else model.merge_and_unload(adapter_names=[adapter])
        if _Int8Llama.supports(model):
            return _Int8Llama(model)
        model = copy.deepcopy(model) if model is self.model else model
        with warnings.catch_warnings():  # torch.ao is deprecated in favour of torchao; it still works
            warnings.simplefilter("ignore")
            model = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
        return model.eval()

    # --- tokens ---
    def encode(self, messages: Sequence[Message]) -> list[int]:
        if not messages:
            raise ValueError("messages is empty")
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        if msgs[-1]["role"] == "assistant":  # continue this turn
            text = self.template.render(messages=msgs, add_generation_prompt=False)
            end = "<|im_end|>\n"
            if not text.endswith(end):
                raise AssertionError("the ChatML template must end an assistant turn with <|im_end|>\\n")
            text = text[: -len(end)]
        else:
            text = self.template.render(messages=msgs, add_generation_prompt=True)
        with self.lock:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        with self.lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def forward(self, module: Any, ids: list[int], cache: Any, adapter: str | None) -> Any:
        """Feed `ids` after what `cache` holds; return the logits of the last position."""
        import torch

        with self.lock, torch.inference_mode():
            if isinstance(module, _Int8Llama) and len(ids) == 1:
                return module.step(ids[0], cache)
            if module is self.model:
                self._activate(adapter)
            x = torch.tensor([ids], dtype=torch.long, device=self.device)
            out = module(input_ids=x, past_key_values=cache, use_cache=True, logits_to_keep=1)
            return out.logits[0, -1].float().cpu()


class _QLinear:
    """An int8 `nn.Linear` without bias: per-channel symmetric weights, dynamic per-tensor activations.

    The same numerics as `torch.ao.nn.quantized.dynamic.Linear` with `per_channel_dynamic_qconfig`,
    built with one weight pre-pack instead of three.
    """

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

        return torch.ops.quantized.linear_dynamic(x, self.packed, reduce_range=True)


class _Int8Llama:
    """A lean one-token decode step for Llama-architecture models (SmolLM2) with int8 linears.

    q/k/v and gate/up are fused into one matmul each (per-row scales make this exactly the same
    as separate layers), and the step skips the generic forward's masks and bookkeeping: for a
    135M model the Python overhead per token is as large as the matmuls. Keys/values go into the
    same transformers `DynamicCache` that the fp32 prefill fills.
    """

    @staticmethod
    def supports(model: Any) -> bool:
        cfg = model.config
        return (getattr(cfg, "model_type", "") == "llama" and not getattr(cfg, "attention_bias", False)
                and not getattr(cfg, "mlp_bias", False) and getattr(cfg, "hidden_act", "") == "silu"
                and getattr(cfg, "pretraining_tp", 1) == 1)

    def __init__(self, model: Any) -> None:
        import torch

        cfg, inner = model.config, model.model
        self.config = cfg
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.qkv_split = [self.heads * self.head_dim, self.kv_heads * self.head_dim, self.kv_heads * self.head_dim]
        self.intermediate = cfg.intermediate_size
        self.embed = inner.embed_tokens.weight.detach()
        self.rotary = inner.rotary_emb
        self.layers = []
        for layer in inner.layers:
            att, mlp = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight.detach(), layer.input_layernorm.variance_epsilon,
                _QLinear(torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight])),
                _QLinear(att.o_proj.weight),
                layer.post_attention_layernorm.weight.detach(), layer.post_attention_layernorm.variance_epsilon,
                _QLinear(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])),
                _QLinear(mlp.down_proj.weight),
            ))
        self.norm = (inner.norm.weight.detach(), inner.norm.variance_epsilon)
        self.lm_head = _QLinear(model.lm_head.weight)

    @staticmethod
    def _rms(x: Any, weight: Any, eps: float) -> Any:
        import torch

        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def step(self, token: int, cache: Any) -> Any:
        """Logits (fp32, CPU) for the token after `cache` + `token`; appends its keys/values."""
        import torch
        import torch.nn.functional as F
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        x = self.embed[token].view(1, 1, -1)
        position = torch.tensor([[cache.get_seq_length()]])
        cos, sin = self.rotary(x, position)
        h_, kv_, d_ = self.heads, self.kv_heads, self.head_dim
        for i, (w1, eps1, qkv, o, w2, eps2, gate_up, down) in enumerate(self.layers):
            q, k, v = qkv(self._rms(x, w1, eps1)).split(self.qkv_split, dim=-1)
            q, k = apply_rotary_pos_emb(q.view(1, 1, h_, d_).transpose(1, 2), k.view(1, 1, kv_, d_).transpose(1, 2),
                                        cos, sin)
            k, v = cache.update(k, v.view(1, 1, kv_, d_).transpose(1, 2), i)
            att = F.scaled_dot_product_attention(q, k, v, enable_gqa=h_ != kv_)
            x = x + o(att.transpose(1, 2).reshape(1, 1, h_ * d_))
            g, u = gate_up(self._rms(x, w2, eps2)).split(self.intermediate, dim=-1)
            x = x + down(F.silu(g) * u)
        return self.lm_head(self._rms(x, *self.norm))[0, -1]


class LocalSession:
    """One trajectory's view of a `LocalModel`: reuses the keys/values of the growing context."""

    def __init__(self, owner: LocalModel) -> None:
        self.owner = owner
        self.name = owner.name
        self.ids: list[int] = []  # tokens whose keys/values are in `cache`
        self.cache: Any = None

    def session(self) -> LocalSession:
        return LocalSession(self.owner)

    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256,
               ) -> Iterator[str | Completion]:
        return self.owner._generate(self, messages, stop, max_tokens)


class LocalModel:
    """A local causal LM, optionally with a PEFT adapter active. Implements the `Model` protocol."""

    def __init__(self, shared: _Shared, adapter: str | None = None) -> None:
        self._shared = shared
        self.adapter = adapter
        self.name = shared.name + (f"+{adapter}" if adapter else "")

    @classmethod
    def from_pretrained(cls, base: str | None = None, adapter: str | None = None, *, name: str | None = None,
                        quantize: bool | None = None, temperature: float = 0.0, seed: int | None = None,
                        device: str | None = None, dtype: Any = None) -> LocalModel:
        """Load a base (see `models.resolve_base`) and optionally an adapter (folder, Hub id, `default`)."""
        model, tokenizer = models.load_base(base, device=device, dtype=dtype)
        view = cls.from_model(model, tokenizer, name=name or (f"local:{base}" if base else "smollm2"),
                              quantize=quantize, temperature=temperature, seed=seed)
        return view.load_adapter(adapter) if adapter else view

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, *, name: str = "local", quantize: bool | None = None,
                   temperature: float = 0.0, seed: int | None = None) -> LocalModel:
        """Wrap an already loaded model (a base, or a `PeftModel` with its adapters) and tokenizer."""
        shared = _Shared(model, tokenizer, name=name, quantize=quantize, temperature=temperature, seed=seed)
        active = getattr(model, "active_adapter", None) if shared.adapters() else None
        return cls(shared, active if isinstance(active, str) else None)

    # --- the Model protocol ---
    def session(self) -> LocalSession:
        return LocalSession(self)

    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256,
               ) -> Iterator[str | Completion]:
        return self._generate(LocalSession(self), messages, stop, max_tokens)

    # --- adapters on one base ---
    @property
    def adapters(self) -> list[str]:
        """Names of the adapters loaded on this base."""
        return self._shared.adapters()

    @property
    def tokenizer(self) -> Any:
        return self._shared.tokenizer

    @property
    def quantized(self) -> bool:
        return self._shared.quantize

    def load_adapter(self, adapter: str, name: str | None = None) -> LocalModel:
        """Load `adapter` (folder, Hub id or `default`) onto the shared base; return a view using it.

        Raises `ConfigError` naming both bases when the adapter was trained on another one.
        """
        name = name or ("default" if str(adapter) == "default" else Path(str(adapter).rstrip("/")).name)
        self._shared.add_adapter(str(adapter), name)
        return LocalModel(self._shared, name)

    def with_adapter(self, name: str | None) -> LocalModel:
        """A view of the same base with the loaded adapter `name` active (None: the plain base)."""
        if name is not None and name not in self.adapters:
            raise ConfigError(f"adapter {name!r} is not loaded; loaded: {', '.join(self.adapters) or '(none)'}")
        return LocalModel(self._shared, name)

    def warm_up(self) -> None:
        """Build the decoding weights now (int8 copy), instead of on the first call."""
        self._shared.decoder(self.adapter)

    # --- generation ---
    def _generate(self, sess: LocalSession, messages: Sequence[Message], stop: Sequence[str],
                  max_tokens: int) -> Iterator[str | Completion]:
        import torch
        from transformers import DynamicCache

        sh = self._shared
        stop = [s for s in stop if s]
        prompt = sh.encode(messages)
        if len(prompt) >= sh.max_context:
            raise BackendError(f"{self.name}: the context ({len(prompt)} tokens) exceeds the model's "
                               f"{sh.max_context}-token window")
        max_tokens = max(0, min(max_tokens, sh.max_context - len(prompt)))
        decoder = sh.decoder(self.adapter)
        if sess.cache is None:
            sess.cache, sess.ids = DynamicCache(config=sh.model.config), []
        # Reuse the longest common prefix; always feed >= 1 token to get the next-token logits.
        k = _common_prefix(sess.ids, prompt)
        k = min(k, len(prompt) - 1)
        if len(sess.ids) > k:
            sess.cache.crop(k - len(sess.ids))
        new = prompt[k:]
        logits = sh.forward(sh.model, new, sess.cache, self.adapter)
        sess.ids = list(prompt)
        gen = torch.Generator().manual_seed(sh.seed) if sh.seed is not None else None

        out: list[int] = []
        text, emitted, finish, produced = "", 0, "length", 0
        try:
            for i in range(max_tokens):
                token = _pick(logits, sh.temperature, gen)
                produced += 1
                if token in sh.end_ids:
                    finish = "stop"
                    break
                out.append(token)
                text = sh.decode(out)
                cut, stopped = cut_at_stop(text, stop)
                if stopped:
                    text, finish = cut, "stop"
                    break
                safe = len(text) - held_back(text, stop)
                if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its next byte
                    safe = min(safe, len(text) - 1)
                if safe > emitted:
                    yield text[emitted:safe]
                    emitted = safe
                if i + 1 < max_tokens:
                    logits = sh.forward(decoder, [token], sess.cache, self.adapter)
                    sess.ids.append(token)
        finally:
            if decoder is not sh.model and len(sess.ids) > len(prompt):  # keep only fp32 keys/values
                sess.cache.crop(len(prompt) - len(sess.ids))
                sess.ids = list(prompt)
        if len(text) > emitted:
            yield text[emitted:]
        yield Completion(text=text, prompt_tokens=len(prompt), completion_tokens=produced,
                         prefill_tokens=len(new), finish_reason=finish)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _pick(logits: Any, temperature: float, gen: Any) -> int:
    import torch

    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def load(spec: str = "", adapter: str | None = None, **opts: Any) -> LocalModel:
    """Factory entry: `smollm2` (spec "") or `local:<folder or hub id>`, with an optional adapter.

    Options: `quantize` (default: on CPU), `temperature` (0 = greedy), `seed`, `device`, `dtype`.
    """
    known = {"quantize", "temperature", "seed", "device", "dtype", "name"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) for the local backend: {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    return LocalModel.from_pretrained(spec or None, adapter or None, **opts)
