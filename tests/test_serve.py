"""`fireact serve`: the OpenAI-compatible server, spoken to over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fireact_core.backends.base import BackendError, Completion
from fireact_core.backends.fake import FakeModel
from fireact_core.serve import load_served_models, start_in_thread

ROOT = Path(__file__).resolve().parents[1]


def post(url: str, body: object) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def sse_events(raw: bytes) -> list[object]:
    out: list[object] = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


@pytest.fixture
def server():
    models = {"fake": FakeModel(name="fake", default="Thought: easy.\nAction: finish[Paris]\nObservation: x"),
              "fake-adapter": FakeModel(name="fake-adapter", default="adapter says hi")}
    srv, _ = start_in_thread(models)
    yield srv
    srv.shutdown()
    srv.server_close()


def test_models_lists_one_name_per_model(server):
    with urllib.request.urlopen(server.url + "/models", timeout=10) as r:
        body = json.load(r)
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["fake", "fake-adapter"]
    assert all(m["object"] == "model" for m in body["data"])


def test_chat_completion_non_streaming(server):
    status, raw = post(server.url + "/chat/completions", {
        "model": "fake", "messages": [{"role": "user", "content": "Capital of France?"}],
        "stop": ["\nObservation:"], "max_tokens": 50})
    body = json.loads(raw)
    assert status == 200 and body["object"] == "chat.completion" and body["model"] == "fake"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Thought: easy.\nAction: finish[Paris]"}
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_adapter_name_routes_to_its_model(server):
    _, raw = post(server.url + "/chat/completions", {"model": "fake-adapter", "messages": [{"role": "user", "content": "hi"}]})
    assert json.loads(raw)["choices"][0]["message"]["content"] == "adapter says hi"


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_completion_streaming_sse(server, include_usage):
    status, raw = post(server.url + "/chat/completions", {
        "model": "fake", "messages": [{"role": "user", "content": "Capital of France?"}], "stream": True,
        "stream_options": {"include_usage": include_usage}, "stop": ["\nObservation:"]})
    assert status == 200
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Thought: easy.\nAction: finish[Paris]"
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) >= 3
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    else:
        assert all("usage" not in c for c in chunks)


def test_final_assistant_message_is_continued(server):
    model = server.served.get("fake")
    post(server.url + "/chat/completions", {"model": "fake", "continue_final_message": True,
                                            "messages": [{"role": "user", "content": "q"},
                                                         {"role": "assistant", "content": "Thought: x\nAction:"}]})
    assert model.calls[-1][-1] == {"role": "assistant", "content": "Thought: x\nAction:"}


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"model": "nope", "messages": [{"role": "user", "content": "q"}]}, 404, "served: fake, fake-adapter"),
    ({"model": "fake", "messages": []}, 400, "'messages'"),
    ({"model": "fake", "messages": [{"role": "robot", "content": "q"}]}, 400, "role"),
    ({"model": "fake", "messages": [{"role": "user", "content": "q"}], "max_tokens": -1}, 400, "max_tokens"),
    (b"{not json", 400, "not valid JSON"),
])
def test_bad_requests_get_openai_shaped_errors(server, body, status, needle):
    got, raw = post(server.url + "/chat/completions", body)
    err = json.loads(raw)["error"]
    assert got == status and needle in err["message"] and "type" in err


def test_unknown_route_is_404(server):
    assert post(server.url.removesuffix("/v1") + "/v2/whatever", {})[0] == 404


def test_model_failure_is_a_500_and_mid_stream_an_error_event():
    def fail_late(messages, *, stop=(), max_tokens=256):
        yield "partial"
        raise BackendError("the GPU caught fire")

    early = FakeModel([BackendError("weights missing")], name="early")
    late = FakeModel(name="late")
    late.stream = fail_late  # type: ignore[method-assign]
    srv, _ = start_in_thread({"early": early, "late": late})
    try:
        status, raw = post(srv.url + "/chat/completions", {"model": "early", "messages": [{"role": "user", "content": "q"}]})
        assert status == 500 and "weights missing" in json.loads(raw)["error"]["message"]
        status, raw = post(srv.url + "/chat/completions", {"model": "late", "stream": True,
                                                            "messages": [{"role": "user", "content": "q"}]})
        events = sse_events(raw)
        assert status == 200 and any(isinstance(e, dict) and "error" in e and "caught fire" in e["error"]["message"]
                                     for e in events)
    finally:
        srv.shutdown()
        srv.server_close()


def test_calls_to_one_model_are_serialized():
    active, peak, lock = [0], [0], threading.Lock()

    class Slow:
        name = "slow"

        def session(self):
            return self

        def stream(self, messages, *, stop=(), max_tokens=256):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.1)
            with lock:
                active[0] -= 1
            yield "ok"
            yield Completion("ok", 1, 1, 1)

    srv, _ = start_in_thread({"slow": Slow()})
    try:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(post(srv.url + "/chat/completions", {
            "model": "slow", "messages": [{"role": "user", "content": "q"}]})[0])) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        srv.shutdown()
        srv.server_close()
    assert results == [200] * 4 and peak[0] == 1


def test_load_served_models_names_each_adapter():
    models = load_served_models("fake", {"tuned": "/some/adapter"}, name="base")
    assert list(models) == ["base", "tuned"]


def test_cli_serve_subprocess():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "fireact_core.cli", "serve", "--model", "fake:Paris", "--port", "0",
                             "--adapter", "mine=/tmp/adapter"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split("listening on ")[1].split()[0]
        with urllib.request.urlopen(url + "/models", timeout=10) as r:
            assert [m["id"] for m in json.load(r)["data"]] == ["fake:Paris", "mine"]
        _, raw = post(url + "/chat/completions", {"model": "mine", "messages": [{"role": "user", "content": "q"}]})
        assert "finish[Paris]" in json.loads(raw)["choices"][0]["message"]["content"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_serve_rejects_bad_adapter_flag():
    from fireact_core.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--adapter", "no-equals-sign"])
    assert main(["serve", "--model", "fake", "--adapter", "fake=/x"]) == 2  # clashes with the base name
