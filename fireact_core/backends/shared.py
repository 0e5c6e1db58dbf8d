"""What all views of one loaded base share (`backends.local`): weights, tokenizer, lock, decoders.

`_Shared` holds the fp32 base (a `PeftModel` once an adapter is loaded), its tokenizer and chat
template, one lock taken around every forward pass and tokenizer call, and what decodes for each
adapter: the quantised torch step (`backends.quant`), a llama.cpp context (`backends.llamacpp`),
the model itself, or for other architectures a merged int8 copy.
"""

from __future__ import annotations

import copy
import functools
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fireact_core import chat_markers, models
from fireact_core.backends import llamacpp
from fireact_core.backends.base import Message
from fireact_core.backends.quant import QuantLlama, UnsupportedAdapter
from fireact_core.errors import ConfigError
from fireact_core.prompt_formats import is_text

MAX_RUNTIMES = 4  # merged int8 copies kept per base (architectures other than Llama)
# End of turn, end of text, or the start of a new turn (ChatML's and Gemma's): the reply is over.
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|im_start|>", "<end_of_turn>", "<start_of_turn>", "<eos>")


class _Shared:
    """What all views of one loaded base share: weights, tokenizer, lock, int8 copies."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str, quantize: bool | None = None,
                 temperature: float = 0.0, seed: int | None = None, gguf: Path | None = None) -> None:
        import jinja2.sandbox

        self.model = model  # fp32 base, or a PeftModel wrapping it once an adapter is loaded
        self.cache_kw = _cache_kw(type(_base(model)))  # the base's class stays when PEFT wraps it
        self.tokenizer = tokenizer
        self.name = name
        self.device = str(next(model.parameters()).device)
        self.quantize = (self.device == "cpu") if quantize is None else bool(quantize)
        if self.quantize and self.device != "cpu":
            raise ConfigError("int8 quantisation is for CPU decoding; on CUDA use quantize=False")
        self.temperature, self.seed = temperature, seed
        self.lock = threading.RLock()
        self.fast: QuantLlama | None = None
        self.gguf = gguf  # the GGUF the base's weights came from, if any (llama.cpp can decode it)
        self.cpp: llamacpp.Engine | None = None
        self.cpp_why: str | None = None  # why llama.cpp does not decode this base (None: not decided yet)
        self.runtimes: OrderedDict[str | None, Any] = OrderedDict()  # non-Llama int8 copies
        # The adapter active on the shared fp32 model (None: none loaded, or adapters disabled).
        self.active: str | None = getattr(model, "active_adapter", None) if self.adapters() else None
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        base_id = getattr(_base(model).config, "_name_or_path", "") or ""
        self.template = env.from_string(models.chat_template(base_id))
        # What closes an assistant turn in this template (`<|im_end|>\n`, `<end_of_turn>\n`): cut to continue one.
        probe = self.template.render(messages=[{"role": "assistant", "content": "\x00"}], add_generation_prompt=False)
        self.turn_end = probe[probe.index("\x00") + 1:]
        ids = {tokenizer.eos_token_id, *(tokenizer.convert_tokens_to_ids(t) for t in END_TOKENS)}
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
            if chat_markers.prepare_base(self.model, self.tokenizer, source):  # turn markers it was trained with
                self.fast, self.runtimes = None, OrderedDict()
                self.cpp, self.cpp_why = None, "the adapter added tokens the GGUF's vocabulary lacks"
                self.end_ids |= {self.tokenizer.convert_tokens_to_ids(t) for t in END_TOKENS} - {self.tokenizer.unk_token_id}
            self.model = models.load_adapter(self.model, source, name)
            self.active = name

    # --- weights used for decoding ---
    def llama_cpp(self) -> llamacpp.Engine | None:
        """The llama.cpp engine for this base, or None (`cpp_why` says why) when it does not decode it."""
        if self.cpp is None and self.cpp_why is None:
            choice = llamacpp.engine_choice()
            if choice == "torch" or not self.quantize:
                self.cpp_why = "FIREACT_ENGINE=torch" if choice == "torch" else "decoding with the model itself"
            else:
                import torch

                try:
                    self.cpp = llamacpp.Engine.for_base(_base(self.model), self.tokenizer, self.gguf,
                                                        threads=torch.get_num_threads())
                except llamacpp.Unsupported as e:
                    if choice == "llama.cpp":
                        raise ConfigError(f"FIREACT_ENGINE=llama.cpp, but llama.cpp cannot decode {self.name}: {e}") from None
                    self.cpp_why = str(e)
        return self.cpp

    def decoder(self, adapter: str | None, *, cpp: bool = True) -> Any:
        """What decodes for `adapter` (None = the plain base); prefill uses `self.model` unless llama.cpp decodes.

        Where it can (see `backends.llamacpp`): a llama.cpp context with the adapter (`cpp=False`: never).
        CPU default: the quantised step of `backends.quant` with the adapter's LoRA beside it.
        Other architectures: an int8 `quantize_dynamic` copy per adapter, the adapter merged in.
        An adapter the fast path cannot run (DoRA, extra trained modules) decodes in fp32.
        """
        with self.lock:
            if not self.quantize:
                return self.model
            engine = self.llama_cpp() if cpp else None
            if engine is not None:
                try:
                    return _CppDecoder(engine.context(adapter, self.model))
                except llamacpp.Unsupported:
                    pass  # this adapter decodes on torch (`engine.refused` says why)
            if QuantLlama.supports(self.model):
                if self.fast is None:
                    self.fast = QuantLlama(self.model)
                if adapter is not None:
                    try:
                        self.fast.add_adapter(self.model, adapter)
                    except UnsupportedAdapter:
                        return self.model
                return _FastDecoder(self.fast, adapter)
            if adapter not in self.runtimes:
                self.runtimes[adapter] = self._build_int8(adapter)
                while len(self.runtimes) > MAX_RUNTIMES:
                    self.runtimes.popitem(last=False)
            self.runtimes.move_to_end(adapter)
            return self.runtimes[adapter]

    def engine(self, adapter: str | None) -> str:
        """What decodes for `adapter`, in words (builds the decoder if it is not built yet)."""
        return self.describe(self.decoder(adapter))

    def describe(self, module: Any) -> str:
        """A decoder (`decoder()`'s result), in words."""
        import torch

        if isinstance(module, _CppDecoder):
            kind = self.cpp.kind if self.cpp else "llama.cpp"
        elif isinstance(module, _FastDecoder):
            kind = module.fast.kind
        elif module is self.model:
            kind = f"torch {str(next(self.model.parameters()).dtype).removeprefix('torch.')}"
        else:
            kind = "torch int8 dynamic"
        n = torch.get_num_threads()
        return f"{kind}, {n} thread{'s' * (n != 1)}" if self.device == "cpu" else f"{kind}, {self.device}"

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

        model = copy.deepcopy(self.model)
        if self.adapters():
            model = model.unload() if adapter is None else model.merge_and_unload(adapter_names=[adapter])
        with warnings.catch_warnings():  # torch.ao is deprecated in favour of torchao; it still works
            warnings.simplefilter("ignore")
            model = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
        return model.eval()

    # --- tokens ---
    def encode(self, messages: Sequence[Message]) -> list[int]:
        if not messages:
            raise ValueError("messages is empty")
        if is_text(messages):  # a raw-text prompt (prompt_formats: alpaca, text): as it is, with the tokenizer's BOS
            with self.lock:
                return self.tokenizer(messages[0]["content"], add_special_tokens=True)["input_ids"]
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        if msgs[-1]["role"] == "assistant":  # continue this turn
            text = self.template.render(messages=msgs, add_generation_prompt=False)
            if not text.endswith(self.turn_end):
                raise AssertionError(f"the chat template must end an assistant turn with {self.turn_end!r}")
            text = text[: -len(self.turn_end)]
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
            if isinstance(module, _FastDecoder) and len(ids) == 1:
                return module.fast.step(ids[0], cache, module.adapter)
            if module is self.model:
                self._activate(adapter)
            x = torch.tensor([ids], dtype=torch.long, device=self.device)
            out = module(input_ids=x, use_cache=True, logits_to_keep=1, **{self.cache_kw: cache})
            return out.logits[0, -1].float().cpu()


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@functools.cache
def _cache_kw(cls: type) -> str:
    """The forward argument that takes the cache: `cache` from transformers 5.24 on, `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


class _FastDecoder:
    """The shared quantised step, with one adapter's LoRA (or none)."""

    def __init__(self, fast: QuantLlama, adapter: str | None) -> None:
        self.fast, self.adapter = fast, adapter


class _CppDecoder:
    """A llama.cpp context (one adapter's) that prefills and decodes."""

    def __init__(self, context: llamacpp.Context) -> None:
        self.context = context
