"""How the local backend's decode loop gets logits: from torch (the fp32 prefill, then the quantised
step) or from a llama.cpp context. Both keep one trajectory's keys/values between calls and,
after a reply, keep only the prompt's, so the next call prefills the reply together with its
observation in one pass and a session gives the same text as a fresh encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fireact_core.backends.quant import new_cache


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading token ids `a` and `b` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class TorchFeed:
    """The fp32 model prefills (batched, into the session's cache); `decoder` decodes one token at a time."""

    def __init__(self, shared: Any, session: Any, decoder: Any, prompt: list[int], adapter: str | None) -> None:
        self.sh, self.sess, self.decoder, self.prompt, self.adapter = shared, session, decoder, prompt, adapter
        self.prefilled = 0

    def prefill(self) -> Any:
        sh, sess, prompt = self.sh, self.sess, self.prompt
        if sess.cache is None:
            sess.cache, sess.ids = new_cache(sh.model.config), []
        # Reuse the longest common prefix; always feed >= 1 token to get the next-token logits.
        k = min(common_prefix(sess.ids, prompt), len(prompt) - 1)
        if len(sess.ids) > k:
            sess.cache.crop(k - len(sess.ids))
        new = prompt[k:]
        logits = sh.forward(sh.model, new, sess.cache, self.adapter)
        sess.ids, self.prefilled = list(prompt), len(new)
        return logits

    def step(self, token: int) -> Any:
        logits = self.sh.forward(self.decoder, [token], self.sess.cache, self.adapter)
        self.sess.ids.append(token)
        return logits

    def close(self) -> None:
        sess, n = self.sess, len(self.prompt)
        if self.decoder is not self.sh.model and len(sess.ids) > n:  # keep only fp32 keys/values
            sess.cache.crop(n - len(sess.ids))
            sess.ids = list(self.prompt)


class CppFeed:
    """A llama.cpp context (`backends.llamacpp.Context`) prefills and decodes; `lock` is the base's."""

    def __init__(self, lock: Any, context: Any, prompt: list[int]) -> None:
        self.lock, self.ctx, self.prompt, self.seq = lock, context, prompt, list(prompt)
        self.prefilled = 0

    def prefill(self) -> Any:
        with self.lock:
            logits, self.prefilled = self.ctx.logits(self.seq)
        return logits

    def step(self, token: int) -> Any:
        self.seq.append(token)
        with self.lock:
            return self.ctx.logits(self.seq)[0]

    def close(self) -> None:
        n = len(self.prompt)
        with self.lock:
            if self.ctx.tokens[:n] == self.prompt:  # still this trajectory's (no other session came between)
                self.ctx.keep(n)
