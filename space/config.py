"""The app's configuration: where things come from, injectable so tests use fake models.

`AppConfig` names the store, the model loader, the tools, the question bank, the choices
offered on each side, and the limits. `AppConfig.from_env()` is what `python app.py` and a
Space use; tests build one with `FakeModel`s and a temporary DuckDB file. Missing pieces
(no trained adapter, no OpenAI key, a backend not installed) degrade into a clear entry in
the dropdown or an error on that side, never a crash.

The rooms it draws on: `space.questions` (the question bank), `space.loading` (models and
tools), `space.choices` (what each side offers, adapter discovery, the typed-model rule),
`space.gpu` (ZeroGPU) and `space.raters` (raters and rate limits); admin rights are here.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fireact_core.backends.base import Model
from fireact_core.errors import ConfigError
from fireact_core.store import Store, default_db_path
from fireact_core.store.durable import DurableTargets, StartState, open_with_restore
from fireact_core.tools.base import Tools
from space.choices import (
    ADAPTERS_DIR,
    DEFAULT_ADAPTER,
    Choice,
    default_finetuned_choices,
    default_prompted_choices,
    hub_adapter_choices,
)
from space.defaults import DefaultSources
from space.loading import CachedLoader, SearchTools
from space.questions import QuestionBank, download_question_bank, load_question_bank

log = logging.getLogger("fireact.app")
__all__ = ["AppConfig", "Choice", "on_space"]


def on_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))


# --- the config -----------------------------------------------------------------------------
def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {os.environ[name]!r}") from None


def _env_flag(name: str, default: bool) -> bool:
    value = (os.environ.get(name) or "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false), got {os.environ[name]!r}")


def _env_seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {os.environ[name]!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {os.environ[name]!r}")
    return value


@dataclass
class AppConfig:
    """Everything the app needs; every callable is injectable."""

    db_path: str | Path | None = None  # None: $FIREACT_DB or the cache folder
    store: Store | None = None
    load_model: Callable[[str, str | None], Model] = field(default_factory=CachedLoader)
    # a fresh toolbox of the named search tool; a `SearchTools` also says which work here (`FIREACT_TOOLS`: the default)
    make_tools: Callable[[str], Tools | None] = field(default_factory=SearchTools)
    questions: Callable[[], QuestionBank] = load_question_bank
    prompted_choices: Callable[[], list[Choice]] = default_prompted_choices
    finetuned_choices: Callable[[], list[Choice]] = default_finetuned_choices
    hub_choices: Callable[[], list[Choice]] = hub_adapter_choices  # called once, in a background thread
    # once the Hub has answered the probe, in the background: the question sets not on this machine
    more_questions: Callable[[], QuestionBank] | None = download_question_bank
    # the default base and adapter: their Hub copies while the Hub answers (probed in a background thread)
    defaults: DefaultSources = field(default_factory=lambda: DefaultSources(str(DEFAULT_ADAPTER)))
    space: bool = field(default_factory=on_space)
    # Load the default base and adapter (and build their decoders) in the background at start, so a visitor's
    # first battle does not wait for them. ZeroGPU always loads them at start, in the main process.
    preload: bool = field(default_factory=lambda: _env_flag("FIREACT_PRELOAD", True))
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
    # Durable copies of the local database (fireact_core/store/durable.py): a folder for the bucket's copy (on a
    # Space, `<bucket_mount>/fireact/backup` when a bucket is mounted), and how often the bucket and the Hub get one.
    backup_dir: Path | None = field(default_factory=lambda: Path(os.environ["FIREACT_BACKUP_DIR"])
                                    if os.environ.get("FIREACT_BACKUP_DIR") else None)
    backup_interval_s: float = field(default_factory=lambda: _env_seconds("FIREACT_BACKUP_INTERVAL_S", 30.0))
    hub_interval_s: float = field(default_factory=lambda: _env_seconds("FIREACT_HUB_INTERVAL_S", 300.0))
    start_state: StartState | None = None  # set by `open_store`: what was restored, and the page's notes
    # The admin's training loop (train/loop.py): where new adapters go (the folder the choices scan) and
    # `LoopConfig` options (recipe, overrides, eval_questions, ...).
    adapters_dir: Path = ADAPTERS_DIR
    loop_options: dict[str, Any] = field(default_factory=lambda: {"recipe": "smollm2-135m-world"})

    @property
    def blind(self) -> bool:
        return self.space if self.blind_default is None else self.blind_default

    def bucket_mounted(self) -> bool:
        return self.space and self.bucket_mount.is_dir() and os.access(self.bucket_mount, os.W_OK)

    def db_location(self) -> tuple[Path, str | None]:
        """Where the live database lives, and a warning when that does not outlive a restart.

        `db_path` or `$FIREACT_DB` first; else the cache folder, on local disk. On a Space a storage
        bucket or a Hub dataset keeps durable copies of it (`durable_targets`); with neither, the warning.
        """
        if self.db_path or os.environ.get("FIREACT_DB"):
            path = Path(self.db_path or default_db_path())
            if self.bucket_mounted() and path.resolve().is_relative_to(self.bucket_mount.resolve()):
                return path, (
                    f"FIREACT_DB puts the live database on the storage bucket mounted at {self.bucket_mount}, which "
                    "flushes asynchronously and does not lock across containers: an acknowledged vote may be lost "
                    "there. Leave FIREACT_DB unset to keep it on local disk with a copy in the bucket.")
            return path, None
        if self.space and not self.durable_targets().any:
            return default_db_path(), (
                f"No storage bucket is mounted at {self.bucket_mount} and FIREACT_HUB_DATASET is not set: this Space "
                "keeps its runs and ratings on its ephemeral disk only, and a restart loses them.")
        return default_db_path(), None

    def durable_targets(self) -> DurableTargets:
        """Where durable copies go: the bucket folder and the Hub dataset (not while HF_HUB_OFFLINE is set)."""
        bucket = self.backup_dir or (self.bucket_mount / "fireact" / "backup" if self.bucket_mounted() else None)
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        legacy = self.bucket_mount / "fireact" / "app.duckdb" if self.bucket_mounted() else None
        return DurableTargets(bucket_dir=bucket, hub_repo=None if offline else self.hub_dataset,
                              interval_s=self.backup_interval_s, hub_interval_s=self.hub_interval_s, legacy_db=legacy)

    def open_store(self) -> Store:
        """The store, restored first from the newest durable copy when the local database holds no rows."""
        if self.store is None:
            path, warning = self.db_location()
            if warning:
                log.warning(warning)
            self.store, self.start_state = open_with_restore(path, self.durable_targets(), Store.open)
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
