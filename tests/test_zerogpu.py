"""ZeroGPU: the local side of a battle runs inside `spaces.GPU`, wrapped once per process.

The `spaces` package is only on Spaces, so a stand-in is put on `sys.path`. It keeps the parts
of the real decorator (`spaces/zero/decorator.py`, `wrappers.py`) that the app depends on:
`GPU(duration=…)` returns a decorator; a function is wrapped once (a cache keyed by the
function); the wrapped generator runs elsewhere (a forked worker), so its arguments and each
event it yields cross a pickle boundary; it reads Gradio's request context variable to bill
the right user.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from fireact_core.spec import AgentSpec
from fireact_core.tools.noisy import NoiseConfig
from space.defaults import DefaultSources
from space.fakes import fake_config, fake_loader, fake_tools
from space.gpu import gpu_decorator
from space.render import SideView
from space.runner import Battle, ModelPool, gpu_runner, run_battle

FAKE_SPACES = textwrap.dedent('''
    import functools, inspect, pickle

    decorated = {}
    calls = []

    def GPU(task=None, *, duration=None):
        if task is None:
            return functools.partial(GPU, duration=duration)
        if task in decorated:
            return decorated[task]
        if not inspect.isgeneratorfunction(task):
            raise TypeError("expected a generator function")
        from gradio.context import LocalContext

        def handler(*args, **kwargs):
            calls.append({"request": LocalContext.request.get(None), "duration": duration, "args": args})
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # to the worker process
            for ev in task(*args, **kwargs):
                yield pickle.loads(pickle.dumps(ev))  # and back

        decorated[task] = handler
        return handler
''')


@pytest.fixture
def spaces(tmp_path, monkeypatch):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "__init__.py").write_text(FAKE_SPACES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    importlib.invalidate_caches()
    yield importlib.import_module("spaces")
    sys.modules.pop("spaces", None)


def _loader(model: str, adapter: str | None):
    # the "local" base answers like the fake fine-tuned model; nothing is downloaded
    return fake_loader("fake:tuned" if model == "smollm2" else model, adapter)


def test_only_on_zerogpu_hardware(spaces, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu_decorator() is None  # installed, but not ZeroGPU hardware
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert gpu_decorator() is not None


def test_the_local_side_runs_inside_spaces_gpu_wrapped_once(spaces, monkeypatch):
    from gradio.context import LocalContext

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    pool = ModelPool(_loader, {"local": 1, "fake": 4})
    gpu_run = gpu_runner(gpu_decorator(), pool, fake_tools)
    specs = [AgentSpec(role="prompted", model="fake:scripted", method="react", exemplars=2),
             AgentSpec(role="finetuned", model="smollm2", adapter="data/adapters/default", method="react", exemplars=0, finetuned=True)]
    request = object()  # what Gradio sets for the request being served
    LocalContext.request.set(request)
    for question in ("What is the capital of France?", "Which river flows through the capital of France?"):
        views = [SideView("Agent A"), SideView("Agent B")]
        battle = Battle(question, gold=None, noise=NoiseConfig("none", 0.0, 1))
        for _ in run_battle(battle, specs, views, pool=pool, make_tools=fake_tools, tick_s=0.02, gpu_run=gpu_run):
            pass
        assert [v.status for v in views] == ["done", "done"], [v.message for v in views]
        local = views[1].trajectory
        assert local.answer in ("Paris", "Seine") and local.agent.key == specs[1].key
        assert local.agent.adapter == "data/adapters/default"
    assert len(spaces.calls) == 2  # the local side each time; the fake prompted side never
    assert all(c["args"][0] == specs[1] and c["duration"] == 120 for c in spaces.calls)
    assert all(c["request"] is request for c in spaces.calls)  # the side's thread saw the request
    assert len(set(spaces.decorated.values())) == 1  # one wrapped function, not one per battle


def test_the_app_wraps_the_local_side_when_on_zerogpu(spaces, monkeypatch, tmp_path):
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
    defaults = DefaultSources("data/adapters/default", probe=lambda: False)
    Runtime(fake_config(tmp_path / "b.duckdb", load_model=loader, defaults=defaults)).store.close()
    assert calls == [("smollm2", None), ("smollm2", "data/adapters/default")]
    assert spaces.calls == []  # loading is not GPU work
