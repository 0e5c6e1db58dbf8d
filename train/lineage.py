"""Continuing an existing adapter (`init_adapter`): load it trainable on its base, and keep a record of it.

A continued run keeps the adapter's own LoRA rank, alpha and target modules; the card and the
`fireact.json` manifest say which adapter it started from and how that one was trained, so a
two-stage adapter (the default's `smollm2-135m-world` then `smollm2-135m-world-3hop`) names both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError
from train import card


def check_init(adapter: str, base: str) -> None:
    """Refuse, before any data or model is loaded, an `init_adapter` that is not there or was trained
    on another base than `base`."""
    from fireact_core.models import adapter_base, canonical_base

    try:
        trained_on = adapter_base(adapter, base)
    except ConfigError as e:
        raise ConfigError(f"init_adapter {adapter!r} is not an adapter folder under {Path.cwd()} nor a Hub "
                          f"adapter that could be read ({e}); train it first (a two-stage recipe says which "
                          "recipe makes it) or point init_adapter at one") from None
    if trained_on and canonical_base(trained_on) != canonical_base(base):
        raise ConfigError(f"init_adapter {adapter!r} was trained on base model {trained_on!r}, but this run's base "
                          f"is {canonical_base(base)!r}; continue an adapter of that base, or set base to "
                          f"{trained_on!r}")


def continued(model: Any, adapter: str) -> Any:
    """`model` wrapped in a trainable copy of `adapter` (`check_init` has checked its base)."""
    from peft import PeftModel

    from fireact_core.models import resolve_adapter

    return PeftModel.from_pretrained(model, resolve_adapter(adapter), is_trainable=True)


def continued_from(adapter: str, base: str) -> dict[str, Any]:
    """What the card records of the adapter a run continued: where it came from and how it was trained."""
    from fireact_core.models import resolve_adapter

    source = resolve_adapter(adapter, base)
    record: dict[str, Any] = {"adapter": adapter}
    path = Path(source) / card.MANIFEST
    if path.is_file():
        training = card.read_manifest(path.parent).get("training", {})
        record.update({k: training[k] for k in ("recipe", "examples", "steps") if k in training})
    return record
