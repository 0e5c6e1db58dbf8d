"""llama.cpp as the decoding engine for a base loaded from its GGUF, when `llama-cpp-python` is installed.

Decision (docs/performance.md): torch's 4-bit kernel is fast on AVX512 CPUs (0.83x llama.cpp
there) but not on AVX2 ones (0.44x): llama.cpp's Q4_1 x Q8 integer dot products decode the same
GGUF twice as fast on those. So where llama.cpp is importable and the base came from a GGUF,
llama.cpp computes the logits and everything else stays the project's own:

- the tokenizer and chat template (llama.cpp receives token ids; the GGUF's vocabulary is the
  tokenizer's), the grammar of constrained and extractive decoding, stop strings and sampling,
  which all work from the last position's logits;
- adapters: the PEFT adapter loaded on the fp32 base is written once as a GGUF LoRA (the layout
  of llama.cpp's `convert_lora_to_gguf.py`: q/k rows permuted as its model converter permutes the
  base, PEFT's scaling folded into B and `adapter.lora.alpha` 0, so llama.cpp applies B as it
  is) and applied to its own context; an adapter llama.cpp cannot run (DoRA, a LoRA bias, extra
  trained modules, added tokens) decodes on torch instead;
- key/value reuse: one context per adapter keeps the tokens whose keys/values it holds, and a
  call evaluates only what follows the longest common prefix, so two sessions interleaving on
  one context stay correct (each re-prefills what the other displaced);
- what decodes a call: llama.cpp unless it would have to prefill more than `PREFILL_MAX` tokens
  (its Q4_1 prompt processing is slower than torch's fp32 GEMMs), so a few-shot prompt runs on
  torch and a fine-tuned agent's trajectory on llama.cpp; a call longer than its context, on torch.

The arithmetic is llama.cpp's (8-bit activations against the 4-bit weights), not torch's, so
greedy text can differ from the torch path; `FIREACT_ENGINE=torch` keeps the torch path, and
each run records its engine (`Trajectory.meta["engine"]`).
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fireact_core.backends.feeds import common_prefix
from fireact_core.errors import ConfigError

ENGINES = ("auto", "torch", "llama.cpp")
# A call that llama.cpp would have to prefill more of decodes on torch (decision, docs/performance.md):
# llama.cpp prefills Q4_1 at ~225 tokens/s on 2 AVX2 cores, torch's fp32 GEMMs at ~520, while llama.cpp
# decodes ~2.4x as fast. So a few-shot prompt (~1,000 tokens, one short reply) runs on torch, a
# fine-tuned agent's trajectory (~260 tokens, then an observation per step) on llama.cpp.
PREFILL_MAX = 512
BATCH = 256  # tokens per llama_decode call while prefilling
MAX_CONTEXTS = 4  # contexts kept (one per adapter), the least recently used dropped first
MAX_CONTEXT = 2048  # keys/values are allocated up front (~23 KB a token for SmolLM2); longer trajectories decode on torch
# HF module name -> llama.cpp tensor name, and whether llama.cpp's converter permutes its rows.
TENSORS = {"q_proj": ("attn_q", True), "k_proj": ("attn_k", True), "v_proj": ("attn_v", False),
           "o_proj": ("attn_output", False), "gate_proj": ("ffn_gate", False), "up_proj": ("ffn_up", False),
           "down_proj": ("ffn_down", False)}


class Unsupported(Exception):
    """llama.cpp cannot decode this base or adapter; the message says why (torch decodes instead)."""


def engine_choice() -> str:
    """`FIREACT_ENGINE`: `auto` (llama.cpp where it can run, else torch), `torch` or `llama.cpp`."""
    choice = (os.environ.get("FIREACT_ENGINE") or "auto").strip().lower()
    if choice not in ENGINES:
        raise ConfigError(f"FIREACT_ENGINE={choice!r} is not one of {', '.join(ENGINES)}")
    return choice


def why_unavailable() -> str | None:
    """None when `llama_cpp` imports, else the reason."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as e:  # not installed, or its shared library does not load on this CPU
        return f"llama-cpp-python is not importable ({e})"
    return None


def _permute(rows: Any, heads: int) -> Any:
    """The row order llama.cpp's `convert_hf_to_gguf.py` gives Llama's q/k weights (rotary halves interleaved)."""
    return rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def write_lora(model: Any, name: str, path: Path) -> Path:
    """Write adapter `name` of the `PeftModel` `model` (LoRA on a Llama base) as a GGUF LoRA at `path`."""
    import gguf

    config = model.peft_config[name]
    kind = str(getattr(config.peft_type, "value", config.peft_type))
    if kind != "LORA":
        raise Unsupported(f"adapter {name!r} is {kind}, not LoRA")
    if getattr(config, "modules_to_save", None):
        raise Unsupported(f"adapter {name!r} also trains {config.modules_to_save}")
    causal = model.get_base_model()
    cfg = causal.config
    heads = {"q_proj": cfg.num_attention_heads, "k_proj": cfg.num_key_value_heads}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)  # 0: B is applied as written (the scaling is in it)
    count = 0
    for module_name, module in causal.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if lora_a is None or name not in lora_a:
            continue
        leaf = module_name.rsplit(".", 1)[-1]
        parts = module_name.split(".")
        if leaf not in TENSORS or "layers" not in parts:
            raise Unsupported(f"adapter {name!r} adapts {module_name}, which llama.cpp's LoRA does not take here")
        if getattr(module, "use_dora", {}).get(name) or getattr(module, "lora_bias", {}).get(name):
            raise Unsupported(f"adapter {name!r} uses DoRA or a LoRA bias")
        layer = int(parts[parts.index("layers") + 1])
        tensor, permuted = TENSORS[leaf]
        a = module.lora_A[name].weight.detach().float()
        b = module.lora_B[name].weight.detach().float() * float(module.scaling[name])
        if permuted:
            b = _permute(b, heads[leaf])
        # numpy (rows, cols) is GGUF's ne = [cols, rows]: A (r, in) -> ne [in, r], B (out, r) -> ne [r, out].
        writer.add_tensor(f"blk.{layer}.{tensor}.weight.lora_a", a.numpy())
        writer.add_tensor(f"blk.{layer}.{tensor}.weight.lora_b", b.contiguous().numpy())
        count += 1
    if not count:
        raise Unsupported(f"adapter {name!r} has no LoRA layers")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


class _Handles:
    """The model and LoRA adapters in llama.cpp's memory, freed together (adapters first) when nothing
    refers to them any more, or at exit. Contexts hold it, so a context never outlives its model."""

    def __init__(self) -> None:
        self.owned: list[tuple[Any, Any]] = []  # (free function, handle), freed newest first
        self._finalizer = weakref.finalize(self, _free, self.owned)


class Context:
    """One llama.cpp context over the engine's model (optionally with one LoRA) and the tokens its cache holds.

    Freed when the last reference goes (the engine's, or a reply still decoding on it), never under a caller."""

    def __init__(self, engine: Engine, lora: Any = None) -> None:
        import llama_cpp

        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = engine.n_ctx, BATCH, BATCH
        params.n_threads = params.n_threads_batch = engine.threads
        self.handles = engine.handles
        self.ctx = llama_cpp.llama_init_from_model(engine.model, params)
        if not self.ctx:
            raise Unsupported("llama.cpp could not create a context")
        weakref.finalize(self, llama_cpp.llama_free, self.ctx)
        if lora is not None:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(lora)
            if llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, (ctypes.c_float * 1)(1.0)):
                raise Unsupported("llama.cpp could not set the converted adapter")
        self.n_ctx, self.n_vocab = engine.n_ctx, engine.n_vocab
        self.tokens: list[int] = []

    def logits(self, tokens: list[int]) -> tuple[Any, int]:
        """The next-token logits (fp32 torch tensor) after `tokens`, and how many tokens were evaluated."""
        import llama_cpp
        import numpy as np
        import torch

        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens exceed the context of {self.n_ctx}")
        held = len(self.tokens)  # the usual case: the same sequence, longer by what was just picked
        k = held if len(tokens) > held and tokens[:held] == self.tokens else common_prefix(self.tokens, tokens)
        k = min(k, len(tokens) - 1)  # always evaluate >= 1 token to get its logits
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.ctx), 0, k, -1)
        del self.tokens[k:]  # (the first k are `tokens`' own: no copy of the whole sequence per decoded token)
        for i in range(k, len(tokens), BATCH):  # a batch's positions follow what the cache holds
            chunk = list(tokens[i:i + BATCH])
            ids = (llama_cpp.llama_token * len(chunk))(*chunk)  # alive until llama_decode has read it
            rc = llama_cpp.llama_decode(self.ctx, llama_cpp.llama_batch_get_one(ids, len(chunk)))
            if rc != 0:
                llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.ctx), 0, len(self.tokens), -1)
                raise RuntimeError(f"llama_decode failed ({rc})")
            self.tokens += chunk
        row = llama_cpp.llama_get_logits_ith(self.ctx, -1)
        return torch.from_numpy(np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy()), len(tokens) - k

    def keep(self, n: int) -> None:
        """Forget everything after the first `n` tokens (their keys/values are dropped on the next call)."""
        del self.tokens[n:]


def _free(owned: list[tuple[Any, Any]]) -> None:
    """Free adapters and the model, newest first (the model last)."""
    while owned:
        free, handle = owned.pop()
        free(handle)


class Engine:
    """One memory-mapped llama.cpp model of a GGUF base, and a context per adapter (None: the plain base)."""

    def __init__(self, gguf_path: Path, *, threads: int, max_context: int) -> None:
        import logging

        import llama_cpp

        if logging.getLogger("llama-cpp-python").level == logging.NOTSET:  # its log callback prints everything
            logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        llama_cpp.llama_backend_init()
        self.gguf_path = gguf_path
        self.threads = max(1, threads)
        self.n_ctx = min(max_context, MAX_CONTEXT)
        self.handles = _Handles()
        self.model = llama_cpp.llama_model_load_from_file(str(gguf_path).encode(), llama_cpp.llama_model_default_params())
        if not self.model:
            raise Unsupported(f"llama.cpp could not load {gguf_path}")
        self.handles.owned.append((llama_cpp.llama_model_free, self.model))
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.contexts: OrderedDict[str | None, Context] = OrderedDict()  # least recently used first
        self.loras: dict[str, Any] = {}  # adapter -> its LoRA in llama.cpp's memory (kept when its context goes)
        self.refused: dict[str | None, str] = {}  # adapter -> why llama.cpp cannot run it
        self._dir: tempfile.TemporaryDirectory | None = None
        self.kind = f"llama.cpp {getattr(llama_cpp, '__version__', '')}".strip()

    @classmethod
    def for_base(cls, model: Any, tokenizer: Any, gguf_path: Path | None, *, threads: int) -> Engine:
        """The engine for this loaded base, or `Unsupported` saying why llama.cpp cannot decode it."""
        reason = why_unavailable()
        if reason:
            raise Unsupported(reason)
        if gguf_path is None or not Path(gguf_path).is_file():
            raise Unsupported("the base was not loaded from a GGUF file")
        cfg = model.config
        if getattr(cfg, "model_type", "") != "llama":
            raise Unsupported(f"adapters are converted for Llama bases only, not {getattr(cfg, 'model_type', '?')}")
        engine = cls(Path(gguf_path), threads=threads, max_context=int(getattr(cfg, "max_position_embeddings", 0) or 2048))
        vocab = model.get_input_embeddings().num_embeddings
        if len(tokenizer) > vocab or engine.n_vocab != vocab:
            raise Unsupported(f"the tokenizer ({len(tokenizer)} tokens) or embeddings ({vocab}) differ from the GGUF's vocabulary")
        return engine

    def context(self, adapter: str | None, model: Any = None) -> Context:
        """The context for `adapter` (converting it from the PEFT `model` on first use)."""
        import llama_cpp

        if adapter in self.refused:
            raise Unsupported(self.refused[adapter])
        if adapter in self.contexts:
            self.contexts.move_to_end(adapter)
            return self.contexts[adapter]
        if adapter is not None and adapter not in self.loras:
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="fireact-lora-")
            try:
                path = write_lora(model, adapter, Path(self._dir.name) / f"{len(self.loras)}.gguf")
                lora = llama_cpp.llama_adapter_lora_init(self.model, str(path).encode())
                if not lora:
                    raise Unsupported(f"llama.cpp refused the converted adapter {adapter!r}")
            except Unsupported as e:
                self.refused[adapter] = str(e)
                raise
            self.handles.owned.append((llama_cpp.llama_adapter_lora_free, lora))
            self.loras[adapter] = lora
        self.contexts[adapter] = Context(self, self.loras.get(adapter) if adapter is not None else None)
        while len(self.contexts) > MAX_CONTEXTS:  # each holds its keys/values (~50 MB at 2,048 tokens)
            self.contexts.popitem(last=False)  # freed once no reply decodes on it
        return self.contexts[adapter]

    def held(self, adapter: str | None) -> list[int]:
        """The tokens whose keys/values `adapter`'s context holds (none before its first call)."""
        context = self.contexts.get(adapter)
        return context.tokens if context is not None else []

    def forget_tokens(self) -> None:
        """Every context forgets the tokens it holds (their keys/values are dropped on its next call)."""
        for context in self.contexts.values():
            context.keep(0)

    def close(self) -> None:
        """Drop the contexts; the model and adapters are freed with the last of them (or at exit)."""
        self.contexts.clear()
