"""The `openai` backend over real HTTP: against `fireact serve` on 127.0.0.1, and against a
scripted server that returns 429s, 500s, malformed JSON, broken streams and slow replies."""

from __future__ import annotations

import socket

import pytest
from servers import ScriptedOpenAI

from fireact_core import pricing
from fireact_core.agent import Agent, AgentConfig
from fireact_core.backends.base import BackendError, complete
from fireact_core.backends.fake import FakeModel
from fireact_core.errors import ConfigError
from fireact_core.factory import load_model
from fireact_core.serve import start_in_thread

STOP = ["\nObservation:"]
Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "FIREACT_PRICES"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def served():
    fake = FakeModel(name="fake", default="Thought: I know this one.\nAction: finish[Paris]\nObservation: done")
    srv, _ = start_in_thread({"fake": fake})
    yield srv, fake
    srv.shutdown()
    srv.server_close()


def test_streaming_against_fireact_serve(served):
    srv, fake = served
    model = load_model("openai:fake", base_url=srv.url)
    items = list(model.stream(Q, stop=STOP, max_tokens=64))
    deltas, done = items[:-1], items[-1]
    assert len(deltas) >= 3 and all(isinstance(d, str) for d in deltas)
    assert "".join(deltas) == done.text == "Thought: I know this one.\nAction: finish[Paris]"
    assert (done.prompt_tokens, done.completion_tokens) == (6, 6)  # the fake model's word counts, via usage
    assert done.cost_usd == 0.0  # not in the price table
    assert fake.calls[-1] == Q


def test_non_streaming_against_fireact_serve(served):
    srv, _ = served
    model = load_model("openai:fake", base_url=srv.url, streaming=False)
    items = list(model.stream(Q, stop=STOP, max_tokens=64))
    assert items[0] == "Thought: I know this one.\nAction: finish[Paris]"
    assert items[-1].text == items[0] and items[-1].completion_tokens == 6


def test_agent_solves_through_the_backend(served, monkeypatch):
    srv, _ = served
    monkeypatch.setenv("OPENAI_BASE_URL", srv.url)  # the environment supplies the endpoint
    traj = Agent(load_model("openai:fake"), None, AgentConfig(method="cot")).solve("Capital of France?", gold="Paris")
    assert traj.status == "finished" and traj.answer == "Paris" and traj.em == 1.0
    assert traj.tokens_out == 6


def test_final_assistant_message_continues_the_turn(served):
    srv, fake = served
    fake.replies.append("search[Paris]")
    msgs = [*Q, {"role": "assistant", "content": "Thought: look it up\nAction:"}]
    done = complete(load_model("openai:fake", base_url=srv.url), msgs, stop=STOP)
    assert done.text == "search[Paris]"
    assert fake.calls[-1][-1] == msgs[-1]  # sent as-is, continued by the server


def test_continue_final_message_is_sent_only_for_a_final_assistant_turn():
    with ScriptedOpenAI(["fine"]) as s:
        model = load_model("openai:m", base_url=s.url)
        complete(model, Q, stop=STOP, max_tokens=33)
        complete(model, [*Q, {"role": "assistant", "content": "Action:"}])
        first, second = s.requests[0]["body"], s.requests[1]["body"]
    assert "continue_final_message" not in first
    assert second["continue_final_message"] is True and second["add_generation_prompt"] is False
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert first["stop"] == STOP and first["max_tokens"] == 33 and first["temperature"] == 0.0


@pytest.mark.parametrize("streaming", [True, False])
@pytest.mark.parametrize("reply", ["Action: search[Paris]", "Thought: look it up\nAction: search[Paris]",
                                   "search[Paris]"])
def test_without_continuation_support_a_repeated_prefix_is_trimmed(reply, streaming):
    with ScriptedOpenAI([reply]) as s:  # the scripted server streams word by word: "Action:" then " search[Paris]"
        model = load_model("openai:m", base_url=s.url, continue_final=False, streaming=streaming)
        msgs = [*Q, {"role": "assistant", "content": "Thought: look it up\nAction:"}]
        assert complete(model, msgs).text.strip() == "search[Paris]"
        assert "continue_final_message" not in s.requests[0]["body"]


def test_429_backs_off_and_retries_then_succeeds():
    with ScriptedOpenAI(["429", "429", "Thought: ok\nAction: finish[yes]"]) as s:
        done = complete(load_model("openai:gpt-4o-mini", base_url=s.url, max_retries=3), Q)
        assert len(s.requests) == 3
    assert done.text == "Thought: ok\nAction: finish[yes]"
    assert done.cost_usd == pytest.approx((11 * 0.15 + 4 * 0.60) / 1e6)


@pytest.mark.parametrize(("script", "streaming", "reason"), [
    (["429"], True, "rate limited (HTTP 429) (after 2 retries)"),
    (["500"], False, "HTTP 500: The server had an error"),
    (["malformed"], False, "malformed reply"),
    (["malformed"], True, "malformed reply"),
    (["badstream"], True, "malformed reply"),
    (["error-event"], True, "upstream model crashed"),
])
def test_api_errors_become_backend_errors(script, streaming, reason):
    with ScriptedOpenAI(script) as s:
        model = load_model("openai:m", base_url=s.url, max_retries=2, streaming=streaming)
        with pytest.raises(BackendError) as e:
            complete(model, Q)
        retried = script[0] in ("429", "500")
        assert len(s.requests) == (3 if retried else 1)
    assert reason in str(e.value) and s.url in str(e.value)


def test_timeout_is_a_backend_error():
    with ScriptedOpenAI(["slow"]) as s, pytest.raises(BackendError, match=r"no reply within 0\.3 s"):
        complete(load_model("openai:m", base_url=s.url, timeout=0.3, max_retries=0), Q)


def test_endpoint_down_fails_the_trajectory_with_the_reason():
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = load_model("openai:m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    traj = Agent(model, None, AgentConfig(method="react")).solve("Capital of France?", gold="Paris")
    assert traj.status == "failed" and "cannot connect" in traj.reason and f"127.0.0.1:{port}" in traj.reason
    assert traj.em == 0.0


def test_the_key_never_appears_in_an_error():
    key = "sk-proj-SuperSecret1234567890"
    with ScriptedOpenAI(["401"]) as s:
        with pytest.raises(BackendError) as e:
            complete(load_model("openai:m", base_url=s.url, api_key=key), Q)
        headers = {k.lower(): v for k, v in s.requests[0]["headers"].items()}
    assert headers["authorization"] == f"Bearer {key}"  # it was sent...
    assert "authentication failed" in str(e.value) and "OPENAI_API_KEY" in str(e.value)
    assert key not in str(e.value) and "SuperSecret" not in str(e.value)  # ...and is not repeated


def test_missing_key_names_the_variable(monkeypatch):
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        load_model("openai:gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert load_model("openai:gpt-4o-mini").name == "openai:gpt-4o-mini"
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a local server needs no key
    assert load_model("openai:local").base_url == "http://127.0.0.1:9/v1"


def test_bad_specs_and_options():
    with pytest.raises(ConfigError, match="needs a model name"):
        load_model("openai:")
    with pytest.raises(ConfigError, match="unknown openai option"):
        load_model("openai:m", base_url="http://127.0.0.1:9/v1", temprature=0.5)


def test_price_table():
    assert pricing.price_of("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert pricing.price_of("gpt-4-0613") == (30.0, 60.0)
    assert pricing.price_of("gpt-4o") == (2.50, 10.00)  # not gpt-4's price
    assert pricing.price_of("ft:gpt-3.5-turbo-0613:princeton-nlp::7woQRsdi") == (3.0, 6.0)
    assert pricing.price_of("ft:gpt-4o-mini-2024-07-18:org::abc") == (0.30, 1.20)
    assert pricing.price_of("smollm2") is None and pricing.cost_usd("smollm2", 1000, 1000) == 0.0
    assert pricing.cost_usd("gpt-4", 1000, 500) == pytest.approx(0.06)
    assert pricing.cost_usd("mine", 1_000_000, 0, {"mine": (1.0, 2.0)}) == 1.0


def test_price_file(tmp_path, monkeypatch):
    (tmp_path / "p.json").write_text('{"my-model": [2, 4]}')
    monkeypatch.setenv("FIREACT_PRICES", str(tmp_path / "p.json"))
    with ScriptedOpenAI(["a b c d e f g"]) as s:
        done = complete(load_model("openai:my-model", base_url=s.url), Q)
    assert done.cost_usd == pytest.approx((11 * 2 + 7 * 4) / 1e6)
    (tmp_path / "p.json").write_text('{"my-model": "cheap"}')
    with pytest.raises(ConfigError, match="must be \\[input, output\\]"):
        load_model("openai:my-model", base_url=s.url)


def test_trajectory_cost_sums_its_calls():
    with ScriptedOpenAI(["Thought: x\nAction: search[France]", "Thought: y\nAction: finish[Paris]"]) as s:
        model = load_model("openai:gpt-4o-mini", base_url=s.url)
        tools = {"search": lambda q: "Paris is the capital of France."}
        from fireact_core.tools.base import Toolbox

        traj = Agent(model, Toolbox(tools), AgentConfig(method="react")).solve("Capital of France?", gold="Paris")
    assert traj.answer == "Paris" and len(traj.steps) == 2
    assert traj.tokens_in == 22 and traj.tokens_out == 8
    assert traj.cost_usd == pytest.approx((22 * 0.15 + 8 * 0.60) / 1e6)


# --- the real SmolLM2 behind `fireact serve` -----------------------------------------------------
@pytest.fixture(scope="module")
def smollm2_url():
    from fireact_core.serve import load_served_models

    srv, _ = start_in_thread(load_served_models("smollm2", quantize=False))  # fp32: no int8 copy to build
    yield srv.url
    srv.shutdown()
    srv.server_close()


def test_smollm2_through_serve_streaming_and_not(smollm2_url):
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    plain = list(load_model("openai:smollm2", base_url=smollm2_url, streaming=False).stream(msgs, stop=["\n"], max_tokens=8))
    streamed = list(load_model("openai:smollm2", base_url=smollm2_url).stream(msgs, stop=["\n"], max_tokens=8))
    done = streamed[-1]
    assert "Paris" in done.text
    assert plain[-1].text == done.text  # greedy, and a reused cache gives the same text as a fresh prompt
    assert len(streamed) - 1 >= 3 and "".join(streamed[:-1]) == done.text  # token-by-token deltas
    assert done.prompt_tokens == plain[-1].prompt_tokens > 10 and 1 <= done.completion_tokens <= 8
    assert done.cost_usd == 0.0


def test_smollm2_continues_a_final_assistant_message(smollm2_url):
    msgs = [{"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is"}]
    done = complete(load_model("openai:smollm2", base_url=smollm2_url), msgs, max_tokens=3)
    assert done.text.strip().startswith("Paris")  # the turn goes on; no new "The capital..." reply


def test_reasoning_models_get_no_stop_or_temperature_and_stop_is_applied_locally():
    with ScriptedOpenAI(["Thought: t\nAction: search[x]\nObservation: made up"]) as s:
        for streaming in (True, False):
            done = complete(load_model("openai:o4-mini", base_url=s.url, streaming=streaming), Q, stop=STOP)
            assert done.text == "Thought: t\nAction: search[x]"
        body = s.requests[0]["body"]
    assert "stop" not in body and "temperature" not in body and body["max_tokens"] == 256
