"""What each side of the arena offers, and the rule for what a visitor may type.

The prompted side: the local bases (the bundled ones and those the owner offers with
`FIREACT_BASES`) and, with an endpoint configured, OpenAI models. The fine-tuned side: the bundled
adapter, adapter folders in `data/adapters/`, OpenAI `ft:` models (`FIREACT_OPENAI_FT_MODELS`)
and, online, Hub adapters tagged `fireact`, each on the offered base it fits
(`fireact_core.adapters`). The prompted side's prompting setups (`PROMPTING_CHOICES`, read by
`Prompting`). The search tools (`TOOL_CHOICES`).

A dropdown carries strings; each kind of choice is a small frozen value made from its string in one place
where it comes in (`Prompting.parse`, `FinetunedChoice.parse`) and written back by its `value`, so nothing
else splits a choice's string.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fireact_core.build import adapter_base_id
from fireact_core.errors import ConfigError, FireActError, InputError
from fireact_core.models import online
from fireact_core.paths import ADAPTERS_DIR, DEFAULT_ADAPTER  # space.config reads them from here
from fireact_core.spec import PROMPT_FORMATS

log = logging.getLogger("fireact.app")
OPENAI_MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "gpt-3.5-turbo")
Choice = tuple[str, str]  # (label, value)

# The prompted side's prompting setups (the arena's "Prompting" control). A value reads
# `<format>[+constrained|+extractive][:<prompts>]`: `AgentSpec.prompt_format`, `.constrained`
# (`.extractive`) and `.prompts`, all in the leaderboard key. The default is the best-effort prompted agent: on SmolLM2-135M
# the chat format makes it a strawman (a one-step guess), scratchpad + constrained decoding makes it
# search, and each question's nearest teacher exemplars with extractive decoding doubled its EM on
# 50 dev questions (16% against 6-8%; docs/results.md).
PROMPTING_CHOICES: list[Choice] = [
    ("scratchpad · extractive · nearest teacher exemplars (2 shots)", "scratchpad+extractive:nearest"),
    ("scratchpad · constrained decoding", "scratchpad+constrained"),
    ("scratchpad", "scratchpad"),
    ("chat (Observations as user turns)", "chat"),
    ("scratchpad · constrained · world exemplars (6 shots)", "scratchpad+constrained:world"),
    ("scratchpad · extractive (arguments copied from what it read)", "scratchpad+extractive"),
    ("the paper's ReAct prompt, verbatim as raw text (its data folder)", "text:paper"),
]
DEFAULT_PROMPTING = PROMPTING_CHOICES[0][1]
DEFAULT_METHOD = "react"  # the prompted side's method on a fresh page
DEFAULT_SHOTS = 2  # and its few-shot exemplars (the nearest teacher exemplars by default)
# The search tools the arena offers, one per battle for both sides (`AgentSpec.tools`, in the
# leaderboard key); `space.loading.SearchTools` says which of them work here. The owner's default
# is `FIREACT_TOOLS`, the offline world unless set.
TOOL_CHOICES: list[Choice] = [
    ("Offline world (an invented encyclopedia)", "corpus"),
    ("Wikipedia (ReAct's tool)", "wikipedia"),
    ("Google via SerpAPI", "google"),
]
DEFAULT_TOOL = "corpus"
PROMPT_SETS = ("default", "world", "nearest", "paper")  # the bundled prompts files a visitor may pick (never a path)


@functools.cache
def react_shots(prompts: str) -> int:
    """How many ReAct exemplars a bundled prompts file holds (what its setup is meant with)."""
    from fireact_core.methods import load_prompts

    return load_prompts(prompts).react_shots()


def _adapter_ok(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def owner_bases() -> list[tuple[str, str, str]]:
    """The owner's bases, `(label, Hub id, model spec)`, from `FIREACT_BASES`: comma-separated Hub ids
    (or folders), each optionally `alias=<id>` and `<id>:4bit` (4-bit NF4 on CUDA);
    `FIREACT_LOAD_4BIT=1` loads all of them in 4-bit, where CUDA is present (elsewhere it is ignored,
    with a warning in the log). Their spec is `local:<id>[:4bit]`."""
    from fireact_core.models import bundled_base

    all_4bit = os.environ.get("FIREACT_LOAD_4BIT", "").strip().lower() in ("1", "true", "yes", "on")
    if all_4bit and not _cuda():
        log.warning("FIREACT_LOAD_4BIT is set, but there is no CUDA GPU: the offered bases load in float32 on CPU")
        all_4bit = False
    out = []
    for part in filter(None, (x.strip() for x in os.environ.get("FIREACT_BASES", "").split(","))):
        label, eq, hub_id = part.partition("=")
        label, hub_id = (label.strip(), hub_id.strip()) if eq else ("", label.strip())
        four = hub_id.endswith(":4bit") or all_4bit
        hub_id = hub_id.removesuffix(":4bit")
        if not hub_id or ":" in hub_id or (eq and not label):
            raise ConfigError(f"FIREACT_BASES: {part!r} is not of the form [alias=]<hub id or folder>[:4bit]")
        if bundled_base(hub_id) is not None:
            continue  # a bundled base is offered anyway, under its own name
        out.append((label or hub_id, hub_id, f"local:{hub_id}" + (":4bit" if four else "")))
    return out


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@functools.lru_cache(maxsize=1)
def offered_bases() -> dict[str, str]:
    """The local bases this app loads adapters onto: the Hub id an adapter records → its model spec.

    The default `smollm2` always; another bundled base (`gemma3`) when its files are on this machine;
    the owner's `FIREACT_BASES` (`owner_bases`).
    """
    from fireact_core import models

    out = {}
    for name, base in models.BUNDLED_BASES.items():
        try:
            here = name == models.DEFAULT_BASE or models.bundled_gguf(name) is not None
        except FireActError:  # a damaged file: not offered (loading it would fail the same way)
            here = False
        if here:
            out[base.hub_id] = name
    for _label, hub_id, spec in owner_bases():
        out[models.canonical_base(hub_id)] = spec
    return out


def _recorded_base(adapter: str) -> str | None:
    """The base an adapter records: a folder's `adapter_config.json`, or online a Hub repo's (only that
    small file is fetched; its weights download only once it is on an offered base)."""
    from fireact_core.base_fit import fetch_json
    from fireact_core.models import _is_hub_id

    if Path(adapter).expanduser().is_dir():
        return adapter_base_id(adapter)
    if not _is_hub_id(adapter):
        return None
    conf = fetch_json(adapter, "adapter_config.json")
    return str(conf.get("base_model_name_or_path") or "") or None if conf else None


def _offered_spec(recorded: str) -> str | None:
    """The spec of the offered base an adapter recording `recorded` belongs on (None: none).

    By name or the owner's aliases first; then a recorded local path naming an offered base, or the
    same architecture and sizes as one (its config read only from this machine, never the Hub).
    """
    from fireact_core.adapters import same_base
    from fireact_core.base_fit import fetch_json
    from fireact_core.models import canonical_base

    bases = offered_bases()
    hit = bases.get(canonical_base(recorded))
    if hit is not None:
        return hit
    for hub_id, spec in bases.items():
        if not spec.startswith("local:"):
            continue  # the bundled bases are matched by name only
        try:
            config = fetch_json(hub_id, "config.json")  # an offered base: the owner allows its files
        except FireActError:
            config = None
        if same_base(recorded, hub_id, config, hub=False)[0]:
            return spec
    return None


def _base_config(spec: str) -> dict[str, Any] | None:
    from fireact_core.base_fit import fetch_json

    if not spec.startswith("local:"):
        return None
    try:
        return fetch_json(spec.removeprefix("local:").removesuffix(":4bit"), "config.json")
    except FireActError:
        return None


def base_for(adapter: str, base: str | None = None) -> str:
    """The model spec `adapter` goes onto: the offered base its config (or `base`, a Hub id) names or
    fits, else the default base. `InputError` for an adapter made for a base this app does not offer,
    or whose LoRA weights (a local folder's) do not fit the base it names."""
    from fireact_core.adapters import lora_shapes, shape_problems_config

    recorded = base or _recorded_base(adapter)
    if not recorded:
        return "smollm2"  # no base recorded (an old folder, a Hub id offline): the default; checked at load
    spec = _offered_spec(recorded)
    if spec is None:
        raise InputError(f"{adapter} is an adapter for {recorded}, a base this app does not load "
                         f"(it offers {', '.join(offered_bases())}).")
    config = _base_config(spec) if Path(adapter).expanduser().is_dir() else None
    problems = shape_problems_config(lora_shapes(adapter), config) if config else []
    if problems:
        raise InputError(f"{adapter} does not fit {spec.removeprefix('local:')}: {'; '.join(problems[:3])}.")
    return spec


def openai_configured() -> bool:
    """Whether an OpenAI (or compatible) endpoint is set up: a key or a base URL in the environment."""
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


def check_model(spec: str, offered: Callable[[], Iterable[str]]) -> None:
    """Refuse a typed model the app does not offer (the dropdowns take custom values).

    Allowed: an offered spec, an offered local base (`smollm2`; `gemma3` when it is here), and any
    `openai:` model once an endpoint is configured. Not allowed: anything else a visitor types, e.g. `local:<any Hub id>` (the
    server would download and load it) or the scripted `fake` models (on the leaderboard).
    Adapters are not models: an adapter goes onto the base its config names (`base_for`). `offered` is asked only when the rule alone does not decide.
    """
    if spec in offered_bases().values() or (spec.startswith("openai:") and openai_configured()) or \
            spec in set(offered()):
        return
    hint = " (set OPENAI_API_KEY or OPENAI_BASE_URL to use OpenAI models)" if spec.startswith("openai:") else ""
    raise InputError(f"{spec!r} is not a model this app offers; choose one from the list{hint}.")


@dataclass(frozen=True)
class Prompting:
    """A prompted side's setup: the `AgentSpec` fields it sets (`spec_fields`), all in the leaderboard key."""

    prompt_format: str
    constrained: bool
    extractive: bool  # constrained decoding that also copies each argument from what the agent read
    prompts: str

    @classmethod
    def parse(cls, value: str | None) -> Prompting:
        """From a dropdown's value (None: the default), e.g. `scratchpad+constrained:world`; else `InputError`."""
        text = DEFAULT_PROMPTING if value is None else str(value).strip()
        head, _, prompts = text.partition(":")
        fmt, _, flag = head.partition("+")
        prompts = prompts or "default"
        if fmt not in PROMPT_FORMATS or flag not in ("", "constrained", "extractive") or prompts not in PROMPT_SETS:
            shown = text if len(text) <= 60 else text[:60] + "…"
            raise InputError(f"Unknown prompting setup {shown!r}: choose one from the list (the form is "
                             f"{'|'.join(PROMPT_FORMATS)}[+constrained|+extractive][:{'|'.join(PROMPT_SETS)}], "
                             f"e.g. {DEFAULT_PROMPTING}).")
        return cls(fmt, bool(flag), flag == "extractive", prompts)

    @property
    def value(self) -> str:
        """The dropdown's string for it."""
        flag = "+extractive" if self.extractive else "+constrained" if self.constrained else ""
        return self.prompt_format + flag + ("" if self.prompts == "default" else f":{self.prompts}")

    def spec_fields(self) -> dict[str, Any]:
        return asdict(self)


def parse_prompting(value: str | None) -> Prompting:
    """`Prompting.parse`."""
    return Prompting.parse(value)


@dataclass(frozen=True)
class FinetunedChoice:
    """A listed fine-tuned side: a whole `model` spec (e.g. `openai:ft:…`), or an `adapter` (a folder or Hub
    repo id) on `base` (None: the base its `adapter_config.json` names)."""

    model: str | None = None
    adapter: str | None = None
    base: str | None = None

    @classmethod
    def parse(cls, value: str) -> FinetunedChoice | None:
        """A listed choice's value (`adapter:…`, `on:<base>:<repo id>`, `model:…`); None for a typed value."""
        kind, _, rest = value.partition(":")
        if kind == "adapter":
            return cls(adapter=rest)
        if kind == "on":
            base, _, repo = rest.rpartition(":")  # a spec may hold ":" (local:<id>), a repo id not
            return cls(adapter=repo, base=base)
        if kind == "model":
            return cls(model=rest)
        return None

    @property
    def value(self) -> str:
        """The dropdown's string for it."""
        if self.model is not None:
            return f"model:{self.model}"
        return f"on:{self.base}:{self.adapter}" if self.base else f"adapter:{self.adapter}"


def default_prompted_choices() -> list[Choice]:
    out = [("SmolLM2-135M-Instruct (local base model)", "smollm2")]
    if "gemma3" in offered_bases().values():
        out.append(("Gemma 3 270M (local base model)", "gemma3"))
    for label, _hub_id, spec in owner_bases():
        out.append((f"{label} (local base model{', 4-bit' if spec.endswith(':4bit') else ''})", spec))
    if openai_configured():
        out += [(f"OpenAI {m}", f"openai:{m}") for m in OPENAI_MODELS]
    return out


def default_finetuned_choices() -> list[Choice]:
    """The bundled adapter, local adapter folders, OpenAI `ft:` models (the Hub's come from `hub_adapter_choices`)."""
    out: list[Choice] = []
    if _adapter_ok(DEFAULT_ADAPTER):
        out.append(("FireAct SmolLM2 (bundled default adapter)", FinetunedChoice(adapter=str(DEFAULT_ADAPTER)).value))
    else:
        out.append(("Default adapter — not trained yet (data/adapters/default missing)",
                    FinetunedChoice(adapter=str(DEFAULT_ADAPTER)).value))
    if ADAPTERS_DIR.is_dir():
        for p in sorted(ADAPTERS_DIR.iterdir()):
            if p != DEFAULT_ADAPTER and p.is_dir() and _adapter_ok(p):
                try:  # an adapter for a base the app does not load is left out here, not refused in a battle
                    base = base_for(str(p))
                except InputError as e:
                    log.info("not offering %s: %s", p, e)
                    continue
                out.append((f"Local adapter: {p.name}" + ("" if base == "smollm2" else f" (on {base})"),
                            FinetunedChoice(adapter=str(p)).value))
    for m in [x.strip() for x in os.environ.get("FIREACT_OPENAI_FT_MODELS", "").split(",") if x.strip()]:
        out.append((f"OpenAI fine-tuned {m}", FinetunedChoice(model=f"openai:{m}").value))
    return out


def hub_adapter_choices(limit: int = 30) -> list[Choice]:
    """Hub adapters tagged `fireact` (online only; a Hub that cannot be reached lists nothing).

    Slow when the network is down (timeouts): the app calls it in a background thread.
    """
    if not online() or importlib.util.find_spec("train") is None:
        return []
    try:
        from train.hub import discover

        found = discover(limit=limit, with_summary=False)
    except ImportError:
        return []
    except Exception as e:  # the Hub is an outside service: no listing, no crash
        log.warning("could not list Hub adapters: %s", e)
        return []
    out: list[Choice] = []
    for a in found:  # only adapters for a base this app loads: a mismatch never reaches a battle
        base = _offered_spec(a.base_model) if a.base_model else None
        if base is None:
            log.info("not offering Hub adapter %s: its base %s is not one this app loads", a.repo_id, a.base_model)
            continue
        label = f"Hub: {a.repo_id}" + (f" ({a.downloads:,}↓)" if a.downloads else "")
        out.append((label, FinetunedChoice(adapter=a.repo_id).value) if base == "smollm2" else
                   (f"{label} (on {base})", FinetunedChoice(adapter=a.repo_id, base=base).value))
    return out


def parse_finetuned(value: str) -> tuple[str, str | None]:
    """A fine-tuned side's choice → (model spec, adapter).

    `adapter:<folder or repo id>` → that adapter on the base its `adapter_config.json` names (the
    default base for a Hub repo id); `on:<base>:<repo id>` → a listed Hub adapter on its base;
    `model:<spec>` → a whole model (e.g. `openai:ft:…`). Typed values: `ft:…` (OpenAI), `openai:…`,
    an existing folder, or a Hub repo id `owner/name` (online, its `adapter_config.json` is read to
    find its base). An adapter for a base the app does not load is refused here, before anything loads.
    """
    v = (value or "").strip()
    if not v:
        raise InputError("choose a fine-tuned agent")
    listed = FinetunedChoice.parse(v)
    if listed is not None and listed.model is not None:
        return listed.model, None
    if listed is not None and listed.base is not None:
        if listed.base not in offered_bases().values() or not listed.adapter:
            raise InputError(f"{v!r}: {listed.base!r} is not a base this app loads")
        return listed.base, listed.adapter
    if listed is not None and listed.adapter is not None:
        if listed.adapter == str(DEFAULT_ADAPTER) and not _adapter_ok(DEFAULT_ADAPTER):
            raise ConfigError("The default adapter is not there yet (data/adapters/default/ has no adapter_config.json). "
                              "Train it with `fireact train`, or pick another adapter.")
        return base_for(listed.adapter), listed.adapter
    if v.startswith("ft:"):
        return f"openai:{v}", None
    if v.startswith("openai:") or v.startswith("fake"):
        return v, None
    if Path(v).expanduser().is_dir():
        return base_for(str(Path(v).expanduser())), str(Path(v).expanduser())
    parts = v.split("/")
    if len(parts) == 2 and all(parts):
        return base_for(v), v  # the offered base its adapter_config.json names (read online), else smollm2
    raise InputError(f"{v!r} is not an adapter folder, a Hub repo id (owner/name) or an OpenAI ft: model")
