"""The local backend: a transformers causal LM (+ optional PEFT adapters) with its own decode loop.

- Prompts are rendered with the project's ChatML template (`templates/chatml.jinja`); a final
  `assistant` message is continued (rendered without its `<|im_end|>`).
- Greedy by default (`temperature=` > 0 samples, `seed=` makes it repeatable); generation stops
  at EOS/`<|im_end|>`, at `max_tokens`, or at a stop string, and text that could be the start of a
  stop string is held back so it never reaches the stream.
- `session()` keeps the keys/values of one trajectory: each call re-tokenises the whole chat,
  finds the longest common prefix with the cached token ids, crops the cache there and prefills
  only the rest (the new observation and the next assistant header).
- Speed on CPU (decision): decode steps run on the quantised Llama step of `backends.quant`
  (4-bit weights on the GGUF Q4_1 grid, so exact for the bundled model; a lean step; an int8
  output matrix whose top logits are recomputed in fp32). Architectures other than Llama fall back
  to an int8 `quantize_dynamic` copy and the generic forward. Prefill always runs on the fp32
  weights, batched; after a quantised decode the cache is cropped back to the prompt and the next
  call prefills that assistant turn in fp32 together with its observation (a few dozen tokens in
  one pass). So the cache only ever holds fp32 keys/values: a session gives the same text as a
  fresh encoding, and the prefill does not depend on how the context was split.
  `quantize=False` (the default on CUDA) decodes with the model itself and keeps its keys/values.
- Adapters (decision): on the fast path each LoRA runs *unmerged*, in fp32, beside the one
  quantised base (merging would push the small deltas through the 4-bit grid). The fp32 base with
  every adapter loaded on it (peft `load_adapter`/`set_adapter`) does the prefill. Switching
  adapters (`with_adapter`) never reloads or re-quantises the base. An adapter the fast path cannot
  run (DoRA, extra trained modules) decodes on the fp32 model; the generic fallback merges each
  adapter into its own int8 copy.
- Thread safety: one lock per loaded base, taken around every forward pass and tokenizer call,
  so views and sessions of one model can be used from several threads (sessions interleave
  token by token; each session must stay on one thread).
"""

from __future__ import annotations

import copy
import functools
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fireact_core import chat_markers, models
from fireact_core.backends.base import BackendError, Completion, Message, cut_at_stop, held_back
from fireact_core.backends.grammar import DONE, ActionGrammar, pick_valid
from fireact_core.backends.quant import QuantLlama, UnsupportedAdapter, new_cache
from fireact_core.errors import ConfigError
from fireact_core.prompt_formats import is_text

MAX_RUNTIMES = 4  # merged int8 copies kept per base (architectures other than Llama)
# End of turn, end of text, or the start of a new turn (ChatML's and Gemma's): the reply is over.
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|im_start|>", "<end_of_turn>", "<start_of_turn>", "<eos>")


class _Shared:
    """What all views of one loaded base share: weights, tokenizer, lock, int8 copies."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str, quantize: bool | None = None,
                 temperature: float = 0.0, seed: int | None = None) -> None:
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
                self.end_ids |= {self.tokenizer.convert_tokens_to_ids(t) for t in END_TOKENS} - {self.tokenizer.unk_token_id}
            self.model = models.load_adapter(self.model, source, name)
            self.active = name

    # --- weights used for decoding ---
    def decoder(self, adapter: str | None) -> Any:
        """What decodes for `adapter` (None = the plain base); prefill always uses `self.model`.

        CPU default: the quantised step of `backends.quant` with the adapter's LoRA beside it.
        Other architectures: an int8 `quantize_dynamic` copy per adapter, the adapter merged in.
        An adapter the fast path cannot run (DoRA, extra trained modules) decodes in fp32.
        """
        with self.lock:
            if not self.quantize:
                return self.model
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
        import torch

        module = self.decoder(adapter)
        if isinstance(module, _FastDecoder):
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


class LocalSession:
    """One trajectory's view of a `LocalModel`: reuses the keys/values of the growing context."""

    def __init__(self, owner: LocalModel) -> None:
        self.owner = owner
        self.name = owner.name
        self.ids: list[int] = []  # tokens whose keys/values are in `cache`
        self.cache: Any = None

    def session(self) -> LocalSession:
        return LocalSession(self.owner)

    supports_constraint = True
    accepts_text = True  # raw-text prompts (prompt_formats.TEXT_ROLE)

    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256,
               constraint: ActionGrammar | None = None) -> Iterator[str | Completion]:
        return self.owner._generate(self, messages, stop, max_tokens, constraint)


class LocalModel:
    """A local causal LM, optionally with a PEFT adapter active. Implements the `Model` protocol."""

    def __init__(self, shared: _Shared, adapter: str | None = None) -> None:
        self._shared = shared
        self.adapter = adapter
        self.name = shared.name + (f"+{adapter}" if adapter else "")

    @classmethod
    def from_pretrained(cls, base: str | None = None, adapter: str | None = None, *, name: str | None = None,
                        quantize: bool | None = None, temperature: float = 0.0, seed: int | None = None,
                        device: str | None = None, dtype: Any = None, load_4bit: bool = False) -> LocalModel:
        """Load a base (see `models.resolve_base`) and optionally an adapter (folder, Hub id, `default`);
        `load_4bit`: in 4-bit NF4 (CUDA only)."""
        model, tokenizer = models.load_base(base, device=device, dtype=dtype, load_4bit=load_4bit)
        default_name = (base if base in models.BUNDLED_BASES else f"local:{base}") if base else "smollm2"
        default_name += ":4bit" if load_4bit else ""
        view = cls.from_model(model, tokenizer, name=name or default_name,
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

    supports_constraint = True
    accepts_text = True  # raw-text prompts (prompt_formats.TEXT_ROLE)

    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256,
               constraint: ActionGrammar | None = None) -> Iterator[str | Completion]:
        """Stream a reply; `constraint` (an `ActionGrammar`) keeps it to one well-formed ReAct turn."""
        return self._generate(LocalSession(self), messages, stop, max_tokens, constraint)

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

    @property
    def engine(self) -> str:
        """What decodes this view's tokens, in words (the arena records it with each run)."""
        return self._shared.engine(self.adapter)

    def warm_up(self) -> None:
        """Build the decoding weights now (int8 copy), instead of on the first call."""
        self._shared.decoder(self.adapter)

    # --- generation ---
    def _generate(self, sess: LocalSession, messages: Sequence[Message], stop: Sequence[str],
                  max_tokens: int, constraint: ActionGrammar | None = None) -> Iterator[str | Completion]:
        import torch

        sh = self._shared
        stop = [s for s in stop if s]
        prompt = sh.encode(messages)
        if len(prompt) >= sh.max_context:
            raise BackendError(f"{self.name}: the context ({len(prompt)} tokens) exceeds the model's "
                               f"{sh.max_context}-token window")
        max_tokens = max(0, min(max_tokens, sh.max_context - len(prompt)))
        decoder = sh.decoder(self.adapter)
        if sess.cache is None:
            sess.cache, sess.ids = new_cache(sh.model.config), []
        # Reuse the longest common prefix; always feed >= 1 token to get the next-token logits.
        k = _common_prefix(sess.ids, prompt)
        k = min(k, len(prompt) - 1)
        if len(sess.ids) > k:
            sess.cache.crop(k - len(sess.ids))
        new = prompt[k:]
        t0 = time.perf_counter()
        logits = sh.forward(sh.model, new, sess.cache, self.adapter)
        t1 = time.perf_counter()
        sess.ids = list(prompt)
        gen = torch.Generator().manual_seed(sh.seed) if sh.seed is not None else None

        out: list[int] = []
        text, emitted, finish, produced = "", 0, "length", 0
        try:
            for i in range(max_tokens):
                if constraint is None:
                    token, decoded = _pick(logits, sh.temperature, gen), None
                else:  # the grammar already decoded the text the token makes
                    token, decoded = pick_valid(logits, out, sh, constraint, now=text)
                produced += 1
                if token in sh.end_ids:
                    finish = "stop"
                    break
                out.append(token)
                text = sh.decode(out) if decoded is None else decoded
                if constraint is not None and constraint.check(text) == DONE:
                    text, finish = constraint.cut(text), "stop"
                    break
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
                         prefill_tokens=len(new), finish_reason=finish, prefill_s=t1 - t0,
                         decode_s=time.perf_counter() - t1)


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


def load_gemma3(spec: str = "", adapter: str | None = None, **opts: Any) -> LocalModel:
    """Factory entry for `gemma3`: the bundled Gemma 3 270M (see `models.BUNDLED_BASES`)."""
    if spec:
        raise ConfigError(f"`gemma3` takes no argument (got gemma3:{spec}); use local:<folder or hub id> for others")
    return load("gemma3", adapter, **opts)


FOUR_BIT = ":4bit"  # `local:<id>:4bit`: load that base in 4-bit NF4 (CUDA)


def load(spec: str = "", adapter: str | None = None, **opts: Any) -> LocalModel:
    """Factory entry: `smollm2` (spec "") or `local:<folder or hub id>[:4bit]`, with an optional adapter.

    Options: `quantize` (default: on CPU), `temperature` (0 = greedy), `seed`, `device`, `dtype`,
    `load_4bit` (also the `:4bit` suffix: 4-bit NF4 through bitsandbytes, refused without CUDA).
    """
    known = {"quantize", "temperature", "seed", "device", "dtype", "name", "load_4bit"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) for the local backend: {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    if spec.endswith(FOUR_BIT):
        spec, opts["load_4bit"] = spec.removesuffix(FOUR_BIT), True
    return LocalModel.from_pretrained(spec or None, adapter or None, **opts)
