"""On CPU the app loads its default base and adapter, decoders built, in the background at start (`FIREACT_PRELOAD`),
so a visitor's first battle does not wait for them; turned off, nothing loads until a battle asks."""

from __future__ import annotations

import threading
import time

import pytest

from fireact_core.backends.fake import FakeModel
from fireact_core.errors import ConfigError
from fireact_core.models import DEFAULT_ADAPTER
from space.config import AppConfig
from space.defaults import DefaultSources
from space.fakes import fake_config
from space.runtime import Runtime


class Recorder:
    """A loader that records each (spec, adapter) and the models it built, whose `warm_up` counts."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.models: list[FakeModel] = []
        self.warmed = 0
        self.lock = threading.Lock()

    def __call__(self, spec: str, adapter: str | None = None) -> FakeModel:
        outer = self

        class Warm(FakeModel):
            engine = "fake engine, 2 threads"

            def warm_up(self) -> None:
                with outer.lock:
                    outer.warmed += 1

        with self.lock:
            self.calls.append((spec, adapter))
        model = Warm(["Thought: t\nAction: finish[x]"], name=spec)
        self.models.append(model)
        return model


def _runtime(tmp_path, preload: bool, loader: Recorder) -> Runtime:
    return Runtime(fake_config(tmp_path / "app.duckdb", load_model=loader, preload=preload,
                               defaults=DefaultSources(str(DEFAULT_ADAPTER), probe=lambda: False)))


def _wait(pred, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_the_defaults_load_and_warm_up_in_the_background_at_start(tmp_path, caplog):
    loader = Recorder()
    caplog.set_level("INFO", logger="fireact.app")
    rt = _runtime(tmp_path, True, loader)
    try:
        assert _wait(lambda: ("smollm2", str(DEFAULT_ADAPTER)) in loader.calls and loader.warmed >= 2), loader.calls
        assert ("smollm2", None) in loader.calls  # the prompted side's plain base too
        # the log says when, and what decodes each side
        assert _wait(lambda: "prompted: fake engine, 2 threads; finetuned: fake engine, 2 threads" in caplog.text), caplog.text
    finally:
        rt.store.close()


def test_turned_off_nothing_loads_until_a_battle_asks(tmp_path):
    loader = Recorder()
    rt = _runtime(tmp_path, False, loader)
    try:
        time.sleep(0.5)
        assert loader.calls == [] and loader.warmed == 0
    finally:
        rt.store.close()


@pytest.mark.parametrize(("value", "expected"), [("", True), ("1", True), ("true", True), ("0", False), ("off", False)])
def test_fireact_preload_is_read_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("FIREACT_PRELOAD", value)
    assert AppConfig(db_path=None).preload is expected


def test_a_bad_fireact_preload_is_named(monkeypatch):
    monkeypatch.setenv("FIREACT_PRELOAD", "maybe")
    with pytest.raises(ConfigError, match="FIREACT_PRELOAD"):
        AppConfig(db_path=None)
