"""What the tabs share in one app process: the store, the model pool, the questions, the limits."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fireact_core.backends.base import Model
from fireact_core.errors import ConfigError, FireActError
from fireact_core.spec import AgentSpec
from fireact_core.store import Store, redact
from space.choices import Choice, FinetunedChoice
from space.config import AppConfig
from space.defaults import BUNDLED_MODEL
from space.gpu import FORK_GUARD, GpuRun, gpu_decorator, gpu_runner
from space.questions import QuestionBank
from space.raters import Rater, RaterLimit, rater_of
from space.render import render_message
from space.runner import ModelPool

log = logging.getLogger("fireact.app")


class Runtime:
    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self.store: Store = cfg.open_store()
        self.pool = ModelPool(self._load_model, cfg.model_limits)
        self.rate_limiter = RaterLimit(cfg.rate_per_minute)
        self.battle_limiter = RaterLimit(cfg.battles_per_minute)
        gpu = gpu_decorator()
        # wrapped once per process: ZeroGPU keys its worker processes by the wrapped function
        self.gpu_run: GpuRun | None = gpu_runner(gpu, self.pool, cfg.make_tools) if gpu is not None else None
        self._bank: QuestionBank | None = None
        self._bank_lock = threading.Lock()
        self._touched: set[str] = set()
        self._touch_lock = threading.Lock()
        self._hub: list[Choice] = []
        self._registered: list[Choice] = []  # adapters made while the app runs (the loop), newest first
        self.loop_job: Any = None  # the admin's training loop (space.loopjob)
        self.loop_lock = threading.Lock()
        answered = self._preload_defaults() if self.gpu_run is not None else False
        if self.gpu_run is None and cfg.preload:
            threading.Thread(target=self._preload_in_background, name="fireact-preload", daemon=True).start()
        threading.Thread(target=self._list_hub, name="fireact-hub-listing", daemon=True).start()
        if answered:  # (the defaults loaded already, from the Hub)
            threading.Thread(target=self._hub_answered, args=(False,), name="fireact-hub-sets", daemon=True).start()
        else:  # probed in the background until the Hub answers (space.defaults: bounded backoff)
            cfg.defaults.watch(self._hub_answered)

    def _preload_defaults(self) -> bool:
        """On ZeroGPU: load the default base and adapter now, so every GPU worker forked later inherits them.

        ZeroGPU's pattern: weights load at start in the main process, and only the compute runs
        inside `spaces.GPU`; loaded inside it, each new worker would load them again. The Hub is
        probed first (once, synchronously), so what loads is what battles will ask for; when it did
        not answer, the watch loads the Hub's copies once it does. Returns the probe's answer.
        """
        hub = self.cfg.defaults.check()
        self._load_defaults()
        return hub

    def _preload_in_background(self) -> None:
        """On CPU: the same defaults, loaded in a background thread with their decoders built, so the first
        battle starts at once (the page serves meanwhile; a battle that comes first waits for the loader's
        lock and uses what it loaded). The Hub is probed first, so what loads is what battles will ask for."""
        t0 = time.perf_counter()
        self.cfg.defaults.check()
        engines = self._load_defaults(warm=True)
        log.info("the default models are loaded, their decoders built (%.1f s after start; %s)",
                 time.perf_counter() - t0, "; ".join(engines) or "no local model")

    def _load_defaults(self, warm: bool = False) -> list[str]:
        """Load the default sides' models (`warm`: their decoders built too); returns what decodes each, in words."""
        engines = []
        bundled = self.cfg.defaults.bundled_adapter or None
        for spec in (AgentSpec(role="prompted"), AgentSpec(role="finetuned", adapter=bundled, finetuned=True)):
            spec = self.cfg.defaults.resolve(spec)
            if spec.model == BUNDLED_MODEL and self.cfg.defaults.unavailable():
                continue  # nothing to load yet: the watch loads the Hub's copies once it answers
            try:
                with FORK_GUARD:  # (the watch may load them while a battle's GPU call starts)
                    model = self.pool.load(spec)
                if warm and callable(getattr(model, "warm_up", None)):
                    model.warm_up()  # the quantised decoder (and llama.cpp's context), the adapter beside it
                    engines.append(f"{spec.role}: {getattr(model, 'engine', None) or model.name}")
            except Exception:  # the battle will show it on its side; the app still starts
                log.exception("preloading %s failed", spec.key)
        return engines

    def _hub_answered(self, load: bool = True) -> None:
        """The Hub answered: on ZeroGPU its defaults load now (main process); the missing question sets arrive."""
        if load and (self.gpu_run is not None or self.cfg.preload):
            self._load_defaults(warm=self.gpu_run is None)
        if self.cfg.more_questions is None:
            return
        try:
            more = self.cfg.more_questions()
        except Exception:  # an outside service: the bank stays as it is
            log.exception("loading question sets from the Hub failed")
            return
        with self._bank_lock:
            if self._bank is None or len(more) > len(self._bank):
                self._bank = more
                log.info("question sets now: %d questions (%s)", len(more), ", ".join(sorted({q.task for q in more.questions})))

    def _list_hub(self) -> None:
        try:
            self._hub = list(self.cfg.hub_choices())
        except Exception:  # an outside service: no listing, no crash
            log.exception("listing Hub adapters failed")

    def _load_model(self, spec: str, adapter: str | None) -> Model:
        """Load a side's model. The base first, then the adapter onto it, so a failure is classified:
        the default base failing from the Hub switches the defaults to the bundled files (every later
        battle; the Hub is probed again), the bundled base missing while the Hub has not answered says
        so, and an adapter failing fails its own side only (a visitor's typo must not move the defaults)."""
        defaults = self.cfg.defaults
        try:
            base = self.cfg.load_model(spec, None)
        except Exception as e:
            if defaults.is_hub(spec):
                defaults.fall_back(e)
                then = ("the next battle uses the bundled files" if defaults.bundled() else
                        "the Hub is asked again in a minute (the bundled GGUF is not installed here)")
                raise ConfigError(f"The default model could not be loaded from the Hub ({redact(str(e))[:300]}); "
                                  f"{then}.") from e
            if spec == BUNDLED_MODEL and (why := defaults.unavailable()):
                raise ConfigError(why) from e
            raise
        if adapter is None:
            return base
        try:
            return self.cfg.load_model(spec, adapter)
        except FireActError:
            raise
        except Exception as e:  # the adapter's own failure (not found, not an adapter, another base): this side
            if defaults.is_default_adapter(adapter):
                log.warning("the default adapter %s did not load from the Hub (%s)", adapter, e)
            raise ConfigError(f"the adapter {adapter!r} could not be loaded: {redact(str(e))[:300]}") from e

    def finetuned_choices(self) -> list[Choice]:
        """Adapters registered while the app runs, local choices (re-scanned) and the Hub's, once its listing arrived."""
        out: list[Choice] = []
        seen: set[str] = set()
        for c in [*self._registered, *self.cfg.finetuned_choices(), *self._hub]:
            if c[1] not in seen:
                seen.add(c[1])
                out.append(c)
        return out

    def register_adapter(self, path: str, label: str) -> None:
        """Offer a new adapter (the loop's) on the fine-tuned side from now on, first in the list."""
        self._registered.insert(0, (label, FinetunedChoice(adapter=path).value))

    def refresh_hub(self) -> None:
        """List the Hub's `fireact` adapters again, in the background (after a push)."""
        threading.Thread(target=self._list_hub, name="fireact-hub-listing", daemon=True).start()

    @property
    def bank(self) -> QuestionBank:
        with self._bank_lock:
            if self._bank is None:
                self._bank = self.cfg.questions()
            return self._bank

    def rater(self, profile: Any, request: Any) -> Rater:
        """The rater of a request (stored in `raters` the first time this process sees them)."""
        r = rater_of(profile, getattr(request, "session_hash", None))
        with self._touch_lock:
            new = r.id not in self._touched
            self._touched.add(r.id)
        if new:
            self.store.touch_rater(r.id, r.kind, r.name)
        return r


def _failure(message: Any, on_error: Mapping[Any, Callable[[], Any]] | None, text: str, kind: str) -> dict[Any, Any]:
    """The updates of a failed handler: the message on its component, `on_error`'s resets, the rest unchanged."""
    return {**{c: make() for c, make in (on_error or {}).items()}, message: render_message(text, kind)}


def user_errors(message: Any, on_error: Mapping[Any, Callable[[], Any]] | None = None) -> Callable[[Callable], Callable]:
    """Turn a handler's `FireActError` into a message on the `message` component; `on_error` gives the
    components to reset on failure (component → a function making its value); the other outputs stay.
    The failure is a `{component: value}` mapping, which Gradio puts on the event's outputs.

    Unexpected errors are logged and shown as a short generic message: no traceback reaches a user.
    """

    def wrap(fn: Callable) -> Callable:
        def fail(text: str, kind: str) -> dict[Any, Any]:
            return _failure(message, on_error, text, kind)

        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except FireActError as e:
                return fail(redact(str(e)), "warn")
            except Exception:
                log.exception("handler %s failed", fn.__name__)
                return fail("Something went wrong on our side; the error is in the server log.", "error")

        return handler

    return wrap


def stream_user_errors(message: Any, on_error: Mapping[Any, Callable[[], Any]] | None = None
                       ) -> Callable[[Callable], Callable]:
    """`user_errors` for generator handlers."""

    def fail(text: str, kind: str) -> dict[Any, Any]:
        return _failure(message, on_error, text, kind)

    def wrap(fn: Callable[..., Iterator]) -> Callable[..., Iterator]:
        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Iterator:
            try:
                yield from fn(*args, **kwargs)
            except FireActError as e:
                yield fail(redact(str(e)), "warn")
            except Exception:
                log.exception("handler %s failed", fn.__name__)
                yield fail("Something went wrong on our side; the error is in the server log.", "error")

        return handler

    return wrap
