"""The app's configuration: where things come from, injectable so tests use fake models.

`AppConfig` names the store, the model loader, the tools, the question bank, the choices
offered on each side, and the limits. `AppConfig.from_env()` is what `python app.py` and a
Space use; tests build one with `FakeModel`s and a temporary DuckDB file. Missing pieces
(no trained adapter, no OpenAI key, a backend not installed) degrade into a clear entry in
the dropdown or an error on that side, never a crash.
"""

from __future__ import annotations

import collections
import functools
import hmac
import importlib.util
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fireact_core.backends.base import Model
from fireact_core.errors import ConfigError, FireActError, InputError
from fireact_core.models import online
from fireact_core.store import Store, default_db_path
from fireact_core.tools.base import Tools
from space.defaults import DefaultSources

log = logging.getLogger("fireact.app")
ROOT = Path(__file__).resolve().parents[1]
ADAPTERS_DIR = ROOT / "data" / "adapters"
DEFAULT_ADAPTER = ADAPTERS_DIR / "default"
OPENAI_MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "gpt-3.5-turbo")
TASK_SPLITS = (("world", "dev"), ("hotpotqa", "dev"), ("bamboogle", "test"), ("strategyqa", "dev"), ("mmlu", "dev"))
Choice = tuple[str, str]  # (label, value)


def on_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))


# --- questions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: str | None
    task: str


class QuestionBank:
    """The questions offered (examples, random button) and a gold lookup by question text."""

    def __init__(self, questions: list[Question], notes: list[str] | None = None) -> None:
        self.questions = questions
        self.notes = notes or []
        self._by_text = {_norm(q.question): q for q in questions}

    def __len__(self) -> int:
        return len(self.questions)

    def random(self, rng: random.Random | None = None) -> Question | None:
        return (rng or random).choice(self.questions) if self.questions else None

    def lookup(self, text: str) -> Question | None:
        return self._by_text.get(_norm(text))

    def examples(self, n: int = 6) -> list[Question]:
        """A few questions from each task, for the examples table."""
        seen: dict[str, int] = collections.Counter()
        out = []
        for q in self.questions:
            if seen[q.task] < max(1, n // 3):
                out.append(q)
                seen[q.task] += 1
            if len(out) >= n:
                break
        return out


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def load_question_bank(tasks: tuple[tuple[str, str], ...] = TASK_SPLITS, per_task: int = 500, *,
                       download: bool = False) -> QuestionBank:
    """The offline world's questions, plus HotpotQA/Bamboogle/StrategyQA/MMLU where their data is on this
    machine (files, or the cache of an earlier download); `download=True` fetches the missing ones from the Hub."""
    try:
        from fireact_core.tasks import load_task
    except ImportError as e:
        return QuestionBank([], [f"question sets unavailable: {e}"])
    questions: list[Question] = []
    notes = []
    for name, split in tasks:
        try:
            task = load_task(name, split, download=download)
        except FireActError as e:
            notes.append(f"{name}: {str(e).splitlines()[0]}")
            continue
        for ex in list(task)[:per_task]:
            questions.append(Question(ex.id, ex.question, ex.answer, ex.task))
    return QuestionBank(questions, notes)


def download_question_bank() -> QuestionBank:
    """`load_question_bank`, fetching the question sets that are not on this machine from the Hub."""
    return load_question_bank(download=True)


# --- models and tools -----------------------------------------------------------------------
class CachedLoader:
    """`factory.load_model`, with each local base loaded once and adapters loaded onto it.

    The local backend keeps every adapter on one shared base (`LocalModel.load_adapter`), so
    the prompted side (the plain base) and any number of fine-tuned sides cost one base in
    memory. API models are cheap to build and are not cached.
    """

    def __init__(self) -> None:
        self._bases: dict[str, Model] = {}
        self._views: dict[tuple[str, str | None], Model] = {}
        self._lock = threading.Lock()

    def __call__(self, spec: str, adapter: str | None = None) -> Model:
        from fireact_core import factory

        if spec.split(":", 1)[0] not in ("smollm2", "local"):
            return _load(factory.load_model, spec, adapter=adapter) if adapter else _load(factory.load_model, spec)
        with self._lock:
            key = (spec, adapter)
            if key not in self._views:
                if spec not in self._bases:
                    self._bases[spec] = _load(factory.load_model, spec)
                base = self._bases[spec]
                if adapter is None:
                    self._views[key] = base
                elif hasattr(base, "load_adapter"):
                    self._views[key] = base.load_adapter(adapter, name=re.sub(r"\W+", "_", adapter).strip("_"))
                else:
                    self._views[key] = _load(factory.load_model, spec, adapter=adapter)
            return self._views[key]


def _load(fn: Callable[..., Model], spec: str, **kw: Any) -> Model:
    try:
        return fn(spec, **kw)
    except ImportError as e:
        raise ConfigError(f"the model backend for {spec!r} is not available here ({e})") from None


def default_tools() -> Tools | None:
    from fireact_core import factory

    try:
        return factory.load_tools("corpus")
    except ImportError as e:
        raise ConfigError(f"the search tool is not available here ({e})") from None


def _adapter_ok(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def openai_configured() -> bool:
    """Whether an OpenAI (or compatible) endpoint is set up: a key or a base URL in the environment."""
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


def check_model(spec: str, offered: Callable[[], Iterable[str]]) -> None:
    """Refuse a typed model the app does not offer (the dropdowns take custom values).

    Allowed: an offered spec, the bundled base `smollm2`, and any `openai:` model once an endpoint
    is configured. Not allowed: anything else a visitor types, e.g. `local:<any Hub id>` (the
    server would download and load it) or the scripted `fake` models (on the leaderboard).
    Adapters are not models: a folder or Hub repo id goes on the bundled base, and peft refuses
    one made for another base. `offered` is asked only when the rule alone does not decide.
    """
    if spec == "smollm2" or (spec.startswith("openai:") and openai_configured()) or spec in set(offered()):
        return
    hint = " (set OPENAI_API_KEY or OPENAI_BASE_URL to use OpenAI models)" if spec.startswith("openai:") else ""
    raise InputError(f"{spec!r} is not a model this app offers; choose one from the list{hint}.")


def default_prompted_choices() -> list[Choice]:
    out = [("SmolLM2-135M-Instruct (local base model)", "smollm2")]
    if openai_configured():
        out += [(f"OpenAI {m}", f"openai:{m}") for m in OPENAI_MODELS]
    return out


def default_finetuned_choices() -> list[Choice]:
    """The bundled adapter, local adapter folders, OpenAI `ft:` models (the Hub's come from `hub_adapter_choices`)."""
    out: list[Choice] = []
    if _adapter_ok(DEFAULT_ADAPTER):
        out.append(("FireAct SmolLM2 (bundled default adapter)", f"adapter:{DEFAULT_ADAPTER}"))
    else:
        out.append(("Default adapter — not trained yet (data/adapters/default missing)", f"adapter:{DEFAULT_ADAPTER}"))
    if ADAPTERS_DIR.is_dir():
        for p in sorted(ADAPTERS_DIR.iterdir()):
            if p != DEFAULT_ADAPTER and p.is_dir() and _adapter_ok(p):
                out.append((f"Local adapter: {p.name}", f"adapter:{p}"))
    for m in [x.strip() for x in os.environ.get("FIREACT_OPENAI_FT_MODELS", "").split(",") if x.strip()]:
        out.append((f"OpenAI fine-tuned {m}", f"model:openai:{m}"))
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
    return [(f"Hub: {a.repo_id}" + (f" ({a.downloads:,}↓)" if a.downloads else ""), f"adapter:{a.repo_id}")
            for a in found]


def parse_finetuned(value: str) -> tuple[str, str | None]:
    """A fine-tuned side's choice → (model spec, adapter).

    `adapter:<folder or repo id>` → the local base with that adapter; `model:<spec>` → a
    whole model (e.g. `openai:ft:…`). Typed values: `ft:…` (OpenAI), `openai:…`, an
    existing folder, or a Hub repo id `owner/name`.
    """
    v = (value or "").strip()
    if not v:
        raise InputError("choose a fine-tuned agent")
    if v.startswith("adapter:"):
        adapter = v.removeprefix("adapter:")
        if adapter == str(DEFAULT_ADAPTER) and not _adapter_ok(DEFAULT_ADAPTER):
            raise ConfigError("The default adapter is not there yet (data/adapters/default/ has no adapter_config.json). "
                              "Train it with `fireact train`, or pick another adapter.")
        return "smollm2", adapter
    if v.startswith("model:"):
        return v.removeprefix("model:"), None
    if v.startswith("ft:"):
        return f"openai:{v}", None
    if v.startswith("openai:") or v.startswith("fake"):
        return v, None
    if Path(v).expanduser().is_dir():
        return "smollm2", str(Path(v).expanduser())
    parts = v.split("/")
    if len(parts) == 2 and all(parts):
        return "smollm2", v
    raise InputError(f"{v!r} is not an adapter folder, a Hub repo id (owner/name) or an OpenAI ft: model")


def gpu_decorator() -> Callable[[Callable], Callable] | None:
    """`spaces.GPU` on ZeroGPU hardware; None elsewhere (`spaces` is imported only if installed)."""
    if not os.environ.get("SPACES_ZERO_GPU") or importlib.util.find_spec("spaces") is None:
        return None
    import spaces

    return functools.partial(spaces.GPU, duration=120)


# --- raters, limits, admin ------------------------------------------------------------------
class RaterLimit:
    """At most `per_minute` actions per rater in any 60 s window."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def check(self, rater: str) -> None:
        """Record one action; raise `InputError` when the rater is over the limit."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        with self._lock:
            hits = self._hits[rater]
            while hits and now - hits[0] > 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                wait = 60 - (now - hits[0])
                raise InputError(f"Too many actions in a minute (limit {self.per_minute}); try again in {wait:.0f} s.")
            hits.append(now)


@dataclass
class Rater:
    id: str
    kind: str  # hf | anon
    name: str | None = None


def rater_of(profile: Any, session_hash: str | None) -> Rater:
    """A Hugging Face login gives the rater id; otherwise an anonymous per-session id."""
    if profile is not None and getattr(profile, "username", None):
        return Rater(f"hf:{profile.username}", "hf", getattr(profile, "name", None) or profile.username)
    import hashlib

    h = hashlib.sha256((session_hash or "no-session").encode()).hexdigest()[:12]
    return Rater(f"anon:{h}", "anon")


# --- the config -----------------------------------------------------------------------------
def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {os.environ[name]!r}") from None


@dataclass
class AppConfig:
    """Everything the app needs; every callable is injectable."""

    db_path: str | Path | None = None  # None: $FIREACT_DB or the cache folder
    store: Store | None = None
    load_model: Callable[[str, str | None], Model] = field(default_factory=CachedLoader)
    make_tools: Callable[[], Tools | None] = default_tools
    questions: Callable[[], QuestionBank] = load_question_bank
    prompted_choices: Callable[[], list[Choice]] = default_prompted_choices
    finetuned_choices: Callable[[], list[Choice]] = default_finetuned_choices
    hub_choices: Callable[[], list[Choice]] = hub_adapter_choices  # called once, in a background thread
    # once the Hub has answered the probe, in the background: the question sets not on this machine
    more_questions: Callable[[], QuestionBank] | None = download_question_bank
    # the default base and adapter: their Hub copies while the Hub answers (probed in a background thread)
    defaults: DefaultSources = field(default_factory=lambda: DefaultSources(str(DEFAULT_ADAPTER)))
    space: bool = field(default_factory=on_space)
    blind_default: bool | None = None  # None: on a Space only
    k_raters: int = field(default_factory=lambda: _env_int("FIREACT_K_RATERS", 3))  # raters per queued trajectory
    rate_per_minute: int = field(default_factory=lambda: _env_int("FIREACT_RATINGS_PER_MINUTE", 60))  # per rater
    battles_per_minute: int = field(default_factory=lambda: _env_int("FIREACT_BATTLES_PER_MINUTE", 20))
    # Sides running at once per model kind. Local: the two sides of one battle, so both stream
    # together; the shared base interleaves them a forward pass at a time (one lock per base).
    model_limits: dict[str, int] = field(default_factory=lambda: {"local": 2, "openai": 8, "fake": 64})
    battle_concurrency: int = 8
    max_steps: int = 8
    tick_s: float = 0.1
    admin_token: str | None = field(default_factory=lambda: os.environ.get("FIREACT_ADMIN_TOKEN") or None)
    space_owner: str | None = field(default_factory=lambda: os.environ.get("SPACE_AUTHOR_NAME") or None)
    hub_dataset: str | None = field(default_factory=lambda: os.environ.get("FIREACT_HUB_DATASET") or None)
    export_dir: str | Path | None = None  # None: a temporary folder per export
    title: str = "FireAct Arena"
    # Without an admin token, whoever reaches the app is its admin only while it listens on loopback
    # (`python app.py` on a laptop); `app.main` clears this for any other host.
    loopback: bool = True
    bucket_mount: Path = Path("/data")  # where a Space's storage bucket is mounted (`hf spaces volumes set`)
    # The admin's training loop (train/loop.py): where new adapters go (the folder the choices scan) and
    # `LoopConfig` options (recipe, overrides, eval_questions, ...).
    adapters_dir: Path = ADAPTERS_DIR
    loop_options: dict[str, Any] = field(default_factory=lambda: {"recipe": "smollm2-135m-world"})

    @property
    def blind(self) -> bool:
        return self.space if self.blind_default is None else self.blind_default

    def db_location(self) -> tuple[Path, str | None]:
        """Where the database lives, and a warning when that does not outlive a restart.

        `db_path` or `$FIREACT_DB` first; on a Space, the storage bucket mounted at `bucket_mount`;
        else the cache folder, which on a Space is the ephemeral disk.
        """
        if self.db_path or os.environ.get("FIREACT_DB"):
            return Path(self.db_path or default_db_path()), None
        if self.space:
            if self.bucket_mount.is_dir() and os.access(self.bucket_mount, os.W_OK):
                return self.bucket_mount / "fireact" / "app.duckdb", None
            return default_db_path(), (
                f"No storage bucket is mounted at {self.bucket_mount} and FIREACT_DB is not set: this Space keeps its "
                "runs and ratings on its ephemeral disk, and a restart loses them.")
        return default_db_path(), None

    def open_store(self) -> Store:
        if self.store is None:
            path, warning = self.db_location()
            if warning:
                log.warning(warning)
            self.store = Store.open(path)
        return self.store

    def admin_refusal(self, action: str) -> str:
        """The message for someone who may not `action` (export, import trajectories)."""
        if not self.space and not self.admin_token:
            return (f"Only an admin can {action}, and this server listens beyond loopback without an admin token: "
                    "start it with FIREACT_ADMIN_TOKEN set.")
        return f"Only the Space owner or someone with the admin token can {action}."

    @property
    def admin_needs_token(self) -> bool:
        """Whether exports and imports ask for a token (or, on a Space, the owner's login)."""
        return self.space or bool(self.admin_token) or not self.loopback

    def is_admin(self, profile: Any, token: str | None) -> bool:
        """The admin token's holder; on a Space its owner (or, for an organisation's Space, a member);
        elsewhere, with no token set, whoever reaches an app that listens on loopback only."""
        if self.admin_token and token and hmac.compare_digest(self.admin_token.encode(), token.strip().encode()):
            return True
        if self.space:
            if profile is None or not self.space_owner:
                return False
            orgs = [o.get("preferred_username") or o.get("name") for o in (profile.get("orgs") or [])
                    if isinstance(o, dict)] if isinstance(profile, dict) else []
            return getattr(profile, "username", None) == self.space_owner or self.space_owner in orgs
        return not self.admin_token and self.loopback

    @classmethod
    def from_env(cls) -> AppConfig:
        return cls(db_path=os.environ.get("FIREACT_DB") or None)
