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
- llama.cpp (decision, `backends.llamacpp`): where `llama-cpp-python` is installed and the base
  came from a GGUF (the bundled SmolLM2), a llama.cpp context per adapter prefills and decodes
  instead, about twice as fast on CPUs without AVX512; the grammar, stops and sampling stay
  ours. `FIREACT_ENGINE` (`auto`, `torch`, `llama.cpp`) chooses; what llama.cpp cannot run
  (another architecture, DoRA, a call longer than its context) decodes on torch.
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

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fireact_core import models
from fireact_core.backends import llamacpp
from fireact_core.backends.base import BackendError, Completion, Message, cut_at_stop, held_back
from fireact_core.backends.feeds import CppFeed, TorchFeed, common_prefix
from fireact_core.backends.grammar import DONE, ActionGrammar, pick_valid
from fireact_core.backends.shared import _CppDecoder, _Shared
from fireact_core.errors import ConfigError


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
        view = cls.from_model(model, tokenizer, name=name or default_name, quantize=quantize,
                              temperature=temperature, seed=seed, gguf=None if load_4bit else models.gguf_source(base))
        return view.load_adapter(adapter) if adapter else view

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, *, name: str = "local", quantize: bool | None = None,
                   temperature: float = 0.0, seed: int | None = None, gguf: Path | None = None) -> LocalModel:
        """Wrap an already loaded model (a base, or a `PeftModel` with its adapters) and tokenizer;
        `gguf`: the GGUF file its weights came from (llama.cpp may then decode it)."""
        shared = _Shared(model, tokenizer, name=name, quantize=quantize, temperature=temperature, seed=seed, gguf=gguf)
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

    def forget(self) -> None:
        """Drop the keys/values llama.cpp keeps between sessions (the next call prefills in full)."""
        with self._shared.lock:
            if self._shared.cpp is not None:
                self._shared.cpp.forget_tokens()

    def warm_up(self) -> None:
        """Build the decoding weights now (the quantised copy, llama.cpp's context), instead of on the first call."""
        self._shared.decoder(self.adapter)
        self._shared.decoder(self.adapter, cpp=False)  # long prompts decode on torch even where llama.cpp runs

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
        engine, cpp = sh.llama_cpp(), False
        if engine is not None and len(prompt) + max_tokens <= engine.n_ctx:
            # What llama.cpp would have to prefill: a long prompt it does not hold (few-shot) is faster on torch.
            with sh.lock:  # (another session's reply may be changing what the context holds)
                held = list(engine.held(self.adapter))
            cpp = len(prompt) - common_prefix(held, prompt) <= llamacpp.PREFILL_MAX
        decoder = sh.decoder(self.adapter, cpp=cpp)
        feed = (CppFeed(sh.lock, decoder.context, prompt) if isinstance(decoder, _CppDecoder)
                else TorchFeed(sh, sess, decoder, prompt, self.adapter))
        t0 = time.perf_counter()
        logits = feed.prefill()
        t1 = time.perf_counter()
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
                    logits = feed.step(token)
        finally:
            feed.close()
        if len(text) > emitted:
            yield text[emitted:]
        yield Completion(text=text, prompt_tokens=len(prompt), completion_tokens=produced,
                         prefill_tokens=feed.prefilled, finish_reason=finish, prefill_s=t1 - t0,
                         decode_s=time.perf_counter() - t1, engine=sh.describe(decoder))


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
