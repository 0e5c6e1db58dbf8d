"""The agent loop with the scripted fake model: finish, step limit, invalid actions, tool
failures, noise, replay, Reflexion, fine-tuned mode."""

from __future__ import annotations

import threading

import pytest

from fireact_core.agent import Agent, AgentConfig, Finished, StepDone, StepStarted, TokenDelta, TrialStarted
from fireact_core.backends.base import BackendError
from fireact_core.backends.fake import FakeModel
from fireact_core.errors import ConfigError, InputError
from fireact_core.tools.base import Toolbox, ToolError
from fireact_core.tools.noisy import NoiseConfig

Q = "Who designed the Velmora Library?"


def encyclopedia(query: str) -> str:
    """Look something up."""
    return f"Article about {query}."


def tools(**extra) -> Toolbox:
    return Toolbox({"search": encyclopedia, **extra}, timeout_s=5)


def searches(n: int) -> list[str]:
    return [f"Thought: step {i}\nAction: search[topic {i}]" for i in range(n)]


def test_finish_events_and_scores():
    model = FakeModel(["Thought: search first\nAction: search[Velmora Library]",
                       "Thought: found it\nAction: finish[Idris Kallum]"])
    events = list(Agent(model, tools()).run(Q, gold="idris kallum", task="hotpotqa"))
    kinds = [type(e) for e in events]
    assert kinds[0] is TrialStarted and kinds[-1] is Finished
    assert kinds.count(StepStarted) == kinds.count(StepDone) == 2
    assert "".join(e.text for e in events if isinstance(e, TokenDelta) and e.index == 1) == "Thought: found it\nAction: finish[Idris Kallum]"
    t = events[-1].trajectory
    assert t.answer == "Idris Kallum" and t.status == "finished" and t.em == 1.0 and t.f1 == 1.0
    assert t.steps[0].observation == "Article about Velmora Library."
    assert t.steps[1].observation == "Episode finished, reward = True"
    assert t.tokens_out == sum(s.tokens_out for s in t.steps) > 0
    # the second call saw the first step and its observation
    assert model.calls[1][-1] == {"role": "user", "content": "Observation: Article about Velmora Library."}
    assert model.calls[1][-2]["content"] == "Thought: search first\nAction: search[Velmora Library]"


def test_step_limit_forces_a_finish_with_a_reason():
    model = FakeModel(searches(10))
    t = Agent(model, tools(), AgentConfig(max_steps=3)).solve(Q, gold="x")
    assert t.num_steps == 3 and t.status == "step_limit"
    assert "step limit (3)" in t.reason
    assert t.answer == "" and t.em == 0.0
    assert AgentConfig().max_steps == 11  # the paper's


def test_invalid_action_is_asked_again_once_then_observed_and_the_loop_goes_on():
    model = FakeModel(["Thought: I should look it up", "look it up please",      # step 1: no action, re-ask, still none
                       "Thought: try again\nAction: search it",  "search[Velmora]",  # step 2: fixed on the re-ask
                       "Thought: done\nAction: finish[Idris]"])
    t = Agent(model, tools()).solve(Q)
    first, second, third = t.steps
    assert first.error.startswith("Invalid action:") and first.observation == first.error
    assert "search[...]" in first.observation and "finish[answer]" in first.observation
    assert first.raw.startswith("Thought: I should look it up\nAction:")
    # the re-ask continues the assistant turn after "Action:"
    assert model.calls[1][-1] == {"role": "assistant", "content": "Thought: I should look it up\nAction:"}
    assert (second.action, second.argument, second.error) == ("search", "Velmora", None)
    assert third.action == "finish" and t.answer == "Idris" and t.status == "finished"
    assert len(model.calls) == 5


def test_unknown_tool_and_a_tool_that_raises_become_observations():
    def broken(query: str) -> str:
        """Always fails."""
        raise ValueError("index is corrupt")

    def down(query: str) -> str:
        """A service that is down."""
        raise ToolError("service unavailable")

    model = FakeModel(["Thought: a\nAction: broken[x]", "Thought: b\nAction: down[x]", "Thought: c\nAction: fly[x]",
                       "Thought: d\nAction: finish[y]"])
    t = Agent(model, tools(broken=broken, down=down)).solve(Q)
    assert t.steps[0].observation == "Tool error: broken raised ValueError: index is corrupt"
    assert t.steps[1].observation == "Tool error: down failed: service unavailable"
    assert "unknown tool 'fly'" in t.steps[2].observation and "search" in t.steps[2].observation
    assert all(s.error for s in t.steps[:3])
    assert t.answer == "y" and t.status == "finished"


def test_a_tool_that_times_out_becomes_an_observation():
    release = threading.Event()

    def slow(query: str) -> str:
        """Never answers in time."""
        release.wait(10)
        return "too late"

    box = Toolbox({"slow": slow, "search": encyclopedia}, timeout_s=0.2)
    model = FakeModel(["Thought: a\nAction: slow[x]", "Thought: b\nAction: search[x]", "Thought: c\nAction: finish[y]"])
    try:
        t = Agent(model, box).solve(Q)
    finally:
        release.set()
    assert t.steps[0].observation == "Tool error: slow timed out after 0.2 s."
    assert t.steps[1].observation == "Article about x."  # the toolbox still works after a timeout
    assert t.answer == "y"


@pytest.mark.parametrize("mode", ["none", "random"])
def test_noise_is_applied_and_recorded_per_step(mode):
    cfg = AgentConfig(noise=NoiseConfig(mode=mode, p=1.0, seed=3), max_steps=4)
    t = Agent(FakeModel(searches(3)), tools(), cfg).solve(Q)
    steps = t.steps[:3]
    if mode == "none":
        assert [s.noise for s in steps] == ["none"] * 3 and all(s.observation == "None" for s in steps)
    else:
        # nothing earlier to replay on the first call: "None"; then earlier clean observations
        assert steps[0].noise == "none" and steps[0].observation == "None"
        assert [s.noise for s in steps[1:]] == ["random", "random"]
        assert steps[1].observation == "Article about topic 0."
        assert steps[2].observation in ("Article about topic 0.", "Article about topic 1.")


def test_noise_off_and_supplied_pool():
    t = Agent(FakeModel(searches(2)), tools(), AgentConfig(max_steps=3)).solve(Q)
    assert [s.noise for s in t.steps[:2]] == ["clean", "clean"]
    cfg = AgentConfig(noise=NoiseConfig(mode="random", p=1.0, seed=0), max_steps=2)
    t = Agent(FakeModel(searches(1)), tools(), cfg, noise_pool=["from the store"]).solve(Q)
    assert (t.steps[0].noise, t.steps[0].observation) == ("random", "from the store")


def _noisy_run(seed: int) -> list[tuple[str, str]]:
    cfg = AgentConfig(noise=NoiseConfig(mode="random", p=0.5, seed=seed), max_steps=12)
    t = Agent(FakeModel(searches(10)), tools(), cfg).solve(Q)
    return [(s.noise, s.observation) for s in t.steps[:10]]


def test_replay_from_the_same_seed_is_identical():
    a, b = _noisy_run(11), _noisy_run(11)
    assert a == b
    kinds = {k for k, _ in a}
    assert "clean" in kinds and kinds & {"none", "random"}  # p = 0.5 over 10 calls hits some, not all
    runs = [_noisy_run(s) for s in range(5)]
    assert len({tuple(r) for r in runs}) > 1  # the seed matters


def test_reflexion_with_gold_reflects_and_retries():
    model = FakeModel(["Thought: guess\nAction: finish[Paris]",
                       "I answered without searching; next time search the library first.",
                       "Thought: search\nAction: search[Velmora Library]",
                       "Thought: found\nAction: finish[Idris Kallum]"])
    t = Agent(model, tools(), AgentConfig(method="reflexion", trials=3)).solve(Q, gold="Idris Kallum")
    assert t.reflections == ["I answered without searching; next time search the library first."]
    assert [s.trial for s in t.steps] == [0, 1, 1]
    assert t.answer == "Idris Kallum" and t.em == 1.0
    trial2_prompt = model.calls[2][0]["content"]
    assert "next time search the library first" in trial2_prompt
    assert len(model.calls) == 4  # stopped after the success, no third trial


def test_reflexion_without_gold_asks_itself():
    model = FakeModel(["Thought: guess\nAction: finish[Paris]", "no", "Look harder.",
                       "Thought: again\nAction: finish[London]", "yes"])
    t = Agent(model, tools(), AgentConfig(method="reflexion", trials=2)).solve(Q)
    assert t.reflections == ["Look harder."] and t.answer == "London"
    assert t.em is None


def test_backend_error_ends_the_trajectory_as_failed():
    model = FakeModel(["Thought: a\nAction: search[x]", BackendError("endpoint down")])
    t = Agent(model, tools()).solve(Q, gold="x")
    assert t.status == "failed" and "endpoint down" in t.reason
    assert t.num_steps == 1 and t.em == 0.0


def test_no_key_of_ours_leaves_the_agent_in_an_observation_or_a_failure(monkeypatch):
    secret = "serp-key-0123456789-not-real"
    monkeypatch.setenv("SERPAPI_API_KEY", secret)

    def echoing(query: str) -> str:
        """A search whose error page quotes the request URL."""
        return f"HTTP 429 for https://serpapi.com/search.json?q={query}&api_key={secret}"

    def failing(query: str) -> str:
        """A tool whose exception quotes the key."""
        raise ToolError(f"quota exceeded for key {secret}")

    model = FakeModel(["Thought: s\nAction: search[x]", "Thought: l\nAction: lookup[y]",
                       BackendError(f"401: Incorrect API key provided: {secret}")])
    traj = Agent(model, tools(search=echoing, lookup=failing)).solve(Q)
    assert traj.status == "failed" and "[redacted]" in traj.reason
    assert "api_key=[redacted]" in traj.steps[0].observation and "[redacted]" in traj.steps[1].error
    assert secret not in str(traj.to_dict())


def test_finetuned_mode_sends_the_question_alone():
    model = FakeModel(["Thought: t\nAction: finish[a]"])
    Agent(model, tools(), AgentConfig(finetuned=True)).solve(Q)
    assert model.calls[0] == [{"role": "user", "content": Q}]
    prompted = FakeModel(["Thought: t\nAction: finish[a]"])
    Agent(prompted, tools()).solve(Q)
    assert prompted.calls[0][0]["content"].endswith(f"Question: {Q}") and "search[...]" in prompted.calls[0][0]["content"]


def test_cot_has_no_tools_and_io_one_step():
    t = Agent(FakeModel(["Thought: hm\nAction: search[x]"]), tools(), AgentConfig(method="cot")).solve(Q)
    assert t.num_steps == 1 and "not available" in t.steps[0].observation and t.status == "step_limit"
    t = Agent(FakeModel(["Action: finish[42]"]), tools(), AgentConfig(method="io")).solve("What is 6 x 7?", gold="42")
    assert t.answer == "42" and t.em == 1.0


def test_bad_questions_and_configs():
    agent = Agent(FakeModel(), tools())
    with pytest.raises(InputError, match="empty"):
        agent.solve("   ")
    with pytest.raises(InputError, match="4,000"):
        agent.solve("x" * 4001)
    with pytest.raises(ConfigError, match="unknown method"):
        AgentConfig(method="tot")
    with pytest.raises(ConfigError):
        NoiseConfig(mode="loud")
    with pytest.raises(ConfigError):
        NoiseConfig(mode="none", p=1.5)
