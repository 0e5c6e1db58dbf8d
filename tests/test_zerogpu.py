"""ZeroGPU: a battle's local sides run inside ONE `spaces.GPU` call, asking for the time their budget needs.

The `spaces` package is only on Spaces, so a stand-in is put on `sys.path`. It keeps the parts of
the real decorator (spaces 0.51: `spaces/zero/decorator.py`, `wrappers.py`, `client.py`) that the
app depends on: `GPU(task=None, *, duration=None, size=None)` returns a decorator; a function is
wrapped once (a cache keyed by the function); `duration` may be a callable, called with the
wrapped function's own arguments (`static_duration`); a call is refused with `gr.Error(...,
title="ZeroGPU quota exceeded")` when the visitor's quota left is below the duration asked
(`client.schedule`); the wrapped generator runs elsewhere (a forked worker), so its arguments and
each event cross a pickle boundary; it reads Gradio's request context variable to bill the right
user. What it cannot show is in docs/space.md ("ZeroGPU and start-up").
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from fireact_core.errors import ConfigError
from fireact_core.spec import AgentSpec
from fireact_core.tools.noisy import NoiseConfig
from space.choices import DEFAULT_PROMPTING
from space.defaults import DefaultSources
from space.fakes import fake_config, fake_loader, fake_tools
from space.gpu import GPU_MAX_TOKENS, TOKEN_S, battle_seconds, gpu_decorator, gpu_runner
from space.raters import Rater
from space.render import SideView
from space.runner import Battle, ModelPool, run_battle

FAKE_SPACES = textwrap.dedent('''
    import functools, inspect, pickle
    from datetime import timedelta

    decorated = {}
    calls = []
    quota_left = [10_000]  # seconds the visitor has left today
    inside = [False]  # whether the wrapped function runs now (standing for "in the GPU worker")
    abort_after = [None]  # events after which the call is stopped, as when it runs past its duration
    guarded = []  # whether the app's fork guard was held when the worker would have been forked

    def GPU(task=None, *, duration=None, size=None):
        if task is None:
            return functools.partial(GPU, duration=duration, size=size)
        if task in decorated:
            return decorated[task]
        if not inspect.isgeneratorfunction(task):
            raise TypeError("expected a generator function")
        from gradio.context import LocalContext
        import gradio as gr

        def handler(*args, **kwargs):
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            if isinstance(seconds, timedelta):
                seconds = seconds.seconds
            calls.append({"request": LocalContext.request.get(None), "duration": seconds, "args": args})
            if seconds is not None and seconds > quota_left[0]:
                raise gr.Error(f"You have exceeded your free ZeroGPU quota ({seconds}s requested vs. "
                               f"{quota_left[0]}s left). Try again in 2:00:00.", title="ZeroGPU quota exceeded",
                               print_exception=False)
            from space.gpu import FORK_GUARD
            guarded.append(FORK_GUARD.locked())  # the real one forks its worker here
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # to the worker process
            inside[0] = True
            try:
                for n, ev in enumerate(task(*args, **kwargs)):
                    if abort_after[0] is not None and n >= abort_after[0]:
                        raise gr.Error("GPU task aborted", title="ZeroGPU worker error", print_exception=False)
                    yield pickle.loads(pickle.dumps(ev))  # and back
            finally:
                inside[0] = False

        decorated[task] = handler
        return handler
''')
ME = Rater("anon:zerogpu-test", "anon")
ADAPTER = "data/adapters/default"


@pytest.fixture
def spaces(tmp_path, monkeypatch):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "__init__.py").write_text(FAKE_SPACES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.delenv("FIREACT_GPU_TOKEN_S", raising=False)
    importlib.invalidate_caches()
    yield importlib.import_module("spaces")
    sys.modules.pop("spaces", None)


def _loader(model: str, adapter: str | None):
    # the local base answers like the fake fine-tuned model; nothing is downloaded
    if adapter == "someone/typo":
        raise OSError("404 Client Error: Repository Not Found for url: .../someone/typo")
    return fake_loader("fake:tuned" if model == "smollm2" else model, adapter)


def _runtime(tmp_path, name: str, loader=_loader):
    from space.runtime import Runtime

    return Runtime(fake_config(tmp_path / f"{name}.duckdb", load_model=loader, model_limits={"local": 2, "fake": 8},
                               defaults=DefaultSources(ADAPTER, probe=lambda: False, bundled=lambda: True)))


def _battle(rt, prompted: str = "smollm2", finetuned: str = f"adapter:{ADAPTER}", blind: bool = False) -> list[SideView]:
    from space.arena import battle_updates
    from space.state import ArenaOutputs

    ui = ArenaOutputs.detached()  # the components the arena's {component: value} updates name
    outs = list(battle_updates(rt, ui, "What is the capital of France?", prompted, "react", 2, finetuned, "off", 0.5, 0,
                               blind, DEFAULT_PROMPTING, who=lambda: ME))
    return [s.view for s in outs[-1][ui.state].sides], outs[-1][ui.status]


def test_only_on_zerogpu_hardware(spaces, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu_decorator() is None  # installed, but not ZeroGPU hardware
    monkeypatch.setenv("SPACES_ZERO_GPU", "false")
    assert gpu_decorator() is None  # spaces reads "false" as off too
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert gpu_decorator() is not None


def test_a_default_battle_is_one_gpu_call_asking_at_most_60_seconds(spaces, tmp_path):
    from gradio.context import LocalContext

    rt = _runtime(tmp_path, "default")
    assert rt.gpu_run in spaces.decorated.values()
    request = object()  # what Gradio sets for the request being served
    LocalContext.request.set(request)
    for _ in range(2):
        views, status = _battle(rt)
        assert [v.status for v in views] == ["done", "done"], [v.message for v in views]
        assert "Both agents finished" in status
        assert {v.trajectory.agent.max_tokens for v in views} == {GPU_MAX_TOKENS}  # each call capped on ZeroGPU
        assert views[1].trajectory.agent.adapter == ADAPTER
    assert len(spaces.calls) == 2  # one call per battle, for both local sides
    for call in spaces.calls:
        sides, battle = call["args"]
        assert sorted(spec.role for _, spec in sides) == ["finetuned", "prompted"]
        assert battle.max_steps == 8 and battle.max_tokens == GPU_MAX_TOKENS
        # 10 s to start + 2 sides x 8 steps x (128 tokens x 20 ms + 50 ms a call)
        assert call["duration"] == battle_seconds(sides, battle) == 52 <= 60
        assert call["request"] is request  # the battle's thread saw the request
    assert len(set(spaces.decorated.values())) == 1  # one wrapped function, not one per battle
    rt.store.close()


def test_the_duration_follows_the_step_limit_the_token_cap_and_the_per_token_time(monkeypatch):
    local = AgentSpec(role="prompted", model="smollm2")
    two = [(0, local), (1, AgentSpec(role="finetuned", model="smollm2", adapter=ADAPTER, finetuned=True))]
    base = battle_seconds(two, Battle("q", max_steps=8, max_tokens=128))
    assert battle_seconds([two[0]], Battle("q", max_steps=8, max_tokens=128)) < base  # one side asks less
    assert battle_seconds(two, Battle("q", max_steps=16, max_tokens=128)) - 10 == pytest.approx(2 * (base - 10), abs=1)
    assert battle_seconds(two, Battle("q", max_steps=8, max_tokens=64)) < base
    reflexion = [(0, AgentSpec(role="prompted", model="smollm2", method="reflexion", trials=3))]
    assert battle_seconds(reflexion, Battle("q", max_steps=8, max_tokens=128)) > 3 * (base - 10) / 2
    tuned = (1, AgentSpec(role="finetuned", model="smollm2", adapter=ADAPTER, finetuned=True, method="reflexion"))
    assert battle_seconds([tuned], Battle("q")) == battle_seconds([two[1]], Battle("q"))  # a fine-tuned side runs ReAct
    monkeypatch.setenv("FIREACT_GPU_TOKEN_S", str(TOKEN_S / 2))  # a measured, faster rate
    assert battle_seconds(two, Battle("q", max_steps=8, max_tokens=128)) < base


def test_an_api_side_never_takes_the_gpu_and_runs_when_the_quota_is_spent(spaces, tmp_path):
    rt = _runtime(tmp_path, "quota")
    views, _ = _battle(rt, prompted="fake:scripted")
    assert [v.status for v in views] == ["done", "done"]
    (call,) = spaces.calls
    assert [spec.role for _, spec in call["args"][0]] == ["finetuned"]  # the API side is not in the call
    assert call["duration"] < 60 / 2 + 10

    spaces.quota_left[0] = 20  # the visitor's quota is nearly spent
    views, status = _battle(rt, prompted="fake:scripted")
    api, local = views
    assert api.status == "done" and api.trajectory.answer  # the side that needs no GPU still runs
    assert local.status == "error"
    assert "exceeded your free ZeroGPU quota" in local.message and "requested vs. 20s left" in local.message
    assert "needs no GPU still runs" in local.message and "internal error" not in local.message
    assert local.trajectory.status == "failed"  # stored as a failed run, like any failing side
    assert "could not finish" in status
    rt.store.close()


def test_a_call_stopped_midway_fails_the_sides_that_had_not_finished(spaces, tmp_path):
    rt = _runtime(tmp_path, "abort")
    spaces.abort_after[0] = 3  # a few events in, ZeroGPU stops the task
    views, _ = _battle(rt, prompted="fake:scripted")
    api, local = views
    assert api.status == "done"
    assert local.status == "error" and "ZeroGPU stopped this side's GPU task" in local.message
    assert "GPU task aborted" in local.message
    rt.store.close()


def test_models_load_before_the_call_and_a_bad_adapter_fails_its_own_side_there(spaces, tmp_path):
    loads: list[tuple[str, str | None, bool]] = []

    def loader(model: str, adapter: str | None = None):
        from space.gpu import FORK_GUARD

        assert spaces.inside[0] or FORK_GUARD.locked()  # a load in this process holds the fork guard
        loads.append((model, adapter, spaces.inside[0]))
        return _loader(model, adapter)

    rt = _runtime(tmp_path, "adapters", loader)
    views, _ = _battle(rt, finetuned="adapter:someone/typo")
    prompted, tuned = views
    assert prompted.status == "done"
    assert tuned.status == "error" and "someone/typo" in tuned.message and "could not be loaded" in tuned.message
    (call,) = spaces.calls
    assert [spec.role for _, spec in call["args"][0]] == ["prompted"]  # the failed side never asked for GPU time
    assert spaces.guarded == [True]  # no load in this process overlapped the fork
    main = [(m, a) for m, a, inside in loads if not inside]
    assert ("smollm2", "someone/typo") in main and ("smollm2", None) in main  # tried in the main process
    assert ("smollm2", "someone/typo", True) not in loads
    rt.store.close()


def test_two_local_sides_need_one_gpu_call_even_with_one_local_slot(spaces):
    pool = ModelPool(_loader, {"local": 1, "fake": 4})
    gpu_run = gpu_runner(gpu_decorator(), pool, fake_tools)
    specs = [AgentSpec(role="prompted", model="smollm2", method="react", exemplars=2),
             AgentSpec(role="finetuned", model="smollm2", adapter=ADAPTER, method="react", exemplars=0, finetuned=True)]
    views = [SideView("Agent A"), SideView("Agent B")]
    battle = Battle("Which river flows through the capital of France?", noise=NoiseConfig("none", 0.0, 1))
    for _ in run_battle(battle, specs, views, pool=pool, make_tools=fake_tools, tick_s=0.02, gpu_run=gpu_run):
        pass
    assert [v.status for v in views] == ["done", "done"], [v.message for v in views]
    assert views[1].trajectory.answer in ("Paris", "Seine") and len(spaces.calls) == 1


def test_the_app_wraps_the_local_sides_only_on_zerogpu(spaces, monkeypatch, tmp_path):
    from space.runtime import Runtime

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert Runtime(fake_config(tmp_path / "a.duckdb")).gpu_run is None
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    rt = Runtime(fake_config(tmp_path / "b.duckdb"))
    assert rt.gpu_run is not None and rt.gpu_run in spaces.decorated.values()


def test_on_zerogpu_the_defaults_load_at_start_so_the_gpu_workers_inherit_them(spaces, monkeypatch, tmp_path):
    from space.runtime import Runtime

    calls: list[tuple[str, str | None]] = []

    def loader(model: str, adapter: str | None = None):
        calls.append((model, adapter))
        return _loader(model, adapter)

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    Runtime(fake_config(tmp_path / "a.duckdb", load_model=loader)).store.close()
    assert calls == []  # elsewhere models load on the first battle
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    defaults = DefaultSources(ADAPTER, probe=lambda: False, bundled=lambda: True)
    Runtime(fake_config(tmp_path / "b.duckdb", load_model=loader, defaults=defaults)).store.close()
    assert set(calls) == {("smollm2", None), ("smollm2", ADAPTER)}
    assert spaces.calls == []  # loading is not GPU work


def test_training_is_refused_on_zerogpu_with_a_clear_message(spaces, tmp_path):
    import argparse

    from space.leaderboard import loop_progress
    from train.commands import refuse_on_zero_gpu, run_loop_command

    rt = _runtime(tmp_path, "train")
    lines = list(loop_progress(rt, "smollm2-135m-world", None, None))  # an admin on loopback
    assert "refused on ZeroGPU" in lines[-1] and "fireact train" in lines[-1]
    assert rt.loop_job is None  # nothing started
    with pytest.raises(ConfigError, match="ZeroGPU"):
        refuse_on_zero_gpu()
    with pytest.raises(ConfigError, match="refused on ZeroGPU"):
        run_loop_command(argparse.Namespace(db=str(tmp_path / "x.duckdb"), recipe="r"))
    assert not (tmp_path / "x.duckdb").exists()
    rt.store.close()


def test_fireact_train_exits_with_the_reason_on_zerogpu(spaces, capsys):
    from fireact_core.cli import main

    assert main(["train", "--recipe", "smollm2-135m-world"]) == 2
    assert "training is refused on ZeroGPU hardware" in capsys.readouterr().err
