"""The arena's handlers as functions of the runtime, without a page: battle → vote → thumbs → step label.

The page keeps a typed `ArenaState` (its sides' views hold the `Trajectory` objects the agents
returned); nothing is serialised to a dict and rebuilt on a vote.
"""

from __future__ import annotations

import gradio as gr
import pytest

from fireact_core.errors import InputError
from fireact_core.spec import AgentSpec
from fireact_core.trajectory import Trajectory
from space.arena import ArenaState, battle_updates, rate_step, refresh_choices, thumb, vote
from space.fakes import fake_config
from space.raters import Rater
from space.runtime import Runtime
from space.state import ArenaOutputs

ME = Rater("anon:handler-test", "anon")
UI = ArenaOutputs.detached()  # the handlers' components, on no page: they return {component: value}


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime(fake_config(tmp_path / "app.duckdb"))
    yield runtime
    runtime.store.close()


def _battle(rt: Runtime, blind: bool = True) -> tuple[list[dict], ArenaState]:
    outs = list(battle_updates(rt, UI, "What is the capital of France?", "fake:scripted", "react", 2, "model:fake:tuned",
                               "off", 0.5, 0, blind, who=lambda: ME))
    return outs, outs[-1][UI.state]


def test_a_battle_streams_and_ends_with_a_typed_state(rt):
    outs, st = _battle(rt)
    assert len(outs) >= 3 and "Running both agents" in outs[0][UI.status]
    assert all(set(o) == set(UI.sides) for o in outs[1:-1])  # while running: the sides alone change
    assert isinstance(st, ArenaState) and st.battle_id and st.blind and not st.voted
    trajs = [s.view.trajectory for s in st.sides]
    assert all(isinstance(t, Trajectory) and isinstance(t.agent, AgentSpec) for t in trajs)
    assert {t.agent.role for t in trajs} == {"prompted", "finetuned"}
    stored = rt.store.get_run(trajs[0].id)
    assert stored.agent == trajs[0].agent and stored.steps == trajs[0].steps  # the same record, typed both ways
    assert "Both agents finished" in outs[-1][UI.status] and UI.ticket not in outs[-1]


def test_vote_once_then_thumbs_and_a_step_label(rt):
    _, st = _battle(rt)
    voted = vote(rt, UI, st, "a", lambda: ME)
    reveal, side_a, st2, buttons = voted[UI.reveal], voted[UI.sides[0]], voted[UI.state], [voted[b] for b in UI.votes]
    assert st2.voted and not st.voted  # a new state; the old one is left as it was
    assert st.sides[0].label.split(":")[0] in reveal and st.sides[0].label in side_a  # names revealed
    assert rt.store.count("votes") == 1 and all(b["interactive"] is False for b in buttons)
    with pytest.raises(InputError, match="already voted"):
        vote(rt, UI, st2, "b", lambda: ME)
    assert "Saved" in thumb(rt, UI, st2, 1, -1, lambda: ME)[UI.rate_msg]
    assert "step 1 of B" in rate_step(rt, UI, st2, "B", 1, "wrong", "", "", lambda: ME)[UI.rate_msg]
    (label,) = rt.store.ratings(steps=True)
    assert label["run_id"] == st2.sides[1].run_id and label["thought_ok"] is False


def test_nothing_to_vote_on_asks_no_rater(rt):
    asked = []

    def who() -> Rater:
        asked.append(1)
        return ME

    with pytest.raises(InputError, match="Run a battle first"):
        vote(rt, UI, None, "a", who)
    with pytest.raises(InputError, match="Run a battle first"):
        thumb(rt, UI, None, 0, 1, who)
    with pytest.raises(InputError):
        list(battle_updates(rt, UI, "", "fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, True, who=who))
    assert asked == [] and rt.store.count("raters") == 0


def test_refresh_lists_an_adapter_registered_while_the_app_runs(rt, tmp_path):
    rt.register_adapter(str(tmp_path / "loop-1"), "Loop adapter: loop-1")
    update = refresh_choices(rt, None)
    assert update["choices"][0] == ("Loop adapter: loop-1", f"adapter:{tmp_path / 'loop-1'}")
    assert update["value"] == f"adapter:{tmp_path / 'loop-1'}"


def test_the_hub_listing_refreshes_after_a_push(tmp_path):
    import time

    listing = [[("Hub: a/one", "adapter:a/one")]]
    runtime = Runtime(fake_config(tmp_path / "hub.duckdb", hub_choices=lambda: listing[-1]))
    try:
        deadline = time.time() + 10
        while "adapter:a/one" not in [v for _, v in runtime.finetuned_choices()] and time.time() < deadline:
            time.sleep(0.02)
        listing.append([("Hub: a/one", "adapter:a/one"), ("Hub: me/new", "adapter:me/new")])  # the loop pushed
        runtime.refresh_hub()
        while "adapter:me/new" not in [v for _, v in runtime.finetuned_choices()] and time.time() < deadline:
            time.sleep(0.02)
        assert "adapter:me/new" in [v for _, v in runtime.finetuned_choices()]
    finally:
        runtime.store.close()


def test_the_training_button_is_for_admins_only(tmp_path):
    from space.leaderboard import loop_progress

    runtime = Runtime(fake_config(tmp_path / "admin.duckdb", admin_token="s3cret-token"))
    try:
        (msg,) = list(loop_progress(runtime, "smollm2-135m-world", "wrong", None))
        assert "Only" in msg and "train an adapter" in msg and runtime.loop_job is None  # nothing started
    finally:
        runtime.store.close()


# --- the prompted side's Prompting control ----------------------------------------------------
def _capturing(tmp_path, name: str, **overrides):
    """A runtime whose loader keeps the models it made, by spec (the prompted side's own model)."""
    from space.fakes import fake_loader

    made: dict[str, object] = {}

    def load(spec: str, adapter: str | None = None):
        made[spec] = model = fake_loader(spec, adapter)
        return model

    return Runtime(fake_config(tmp_path / name, load_model=load, **overrides)), made


@pytest.mark.parametrize("value, fmt, constrained, prompts, suffix", [
    ("scratchpad+constrained", "scratchpad", True, "default", " · scratchpad · constrained"),
    ("scratchpad", "scratchpad", False, "default", " · scratchpad"),
    ("chat", "chat", False, "default", ""),
    ("scratchpad+constrained:world", "scratchpad", True, "world", " · world · scratchpad · constrained"),
    (None, "scratchpad", True, "nearest", " · nearest · scratchpad · constrained · extractive"),  # the default
    ("scratchpad+extractive", "scratchpad", True, "default", " · scratchpad · constrained · extractive"),
])
def test_each_prompting_setup_reaches_the_prompted_agent_and_its_stored_key(tmp_path, value, fmt, constrained,
                                                                           prompts, suffix):
    from fireact_core.methods import load_prompts

    runtime, made = _capturing(tmp_path, "prompting.duckdb")
    try:
        args = (runtime, UI, "What is the capital of France?", "fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5,
                0, False)
        outs = list(battle_updates(*args, who=lambda: ME) if value is None else
                    battle_updates(*args, value, who=lambda: ME))
        st = outs[-1][UI.state]
        prompted, tuned = (s.view.trajectory for s in st.sides)  # not blind: A is the prompted side
        agent = prompted.agent
        assert (agent.prompt_format, agent.constrained, agent.prompts) == (fmt, constrained, prompts)
        key = f"fake:scripted · react 2-shot{suffix}"
        assert agent.key == key and runtime.store.get_run(prompted.id).agent.key == key
        assert {r["agent_key"] for r in runtime.store.runs_table()} == {key, "fake:tuned · fine-tuned"}
        assert f"prompted: {key}" in outs[-1][UI.sides[0]] and st.sides[0].label == f"prompted: {key}"  # its subtitle
        assert tuned.agent.key == "fake:tuned · fine-tuned" and not tuned.agent.constrained  # the other side as before
        assert prompted.em == 1.0 and [s.action for s in prompted.steps] == ["search", "finish"]
        model = made["fake:scripted"]
        assert all((c is not None) == constrained for c in model.constraints) and model.constraints
        extractive = "extractive" in (value or "scratchpad+extractive:nearest")
        assert agent.extractive == extractive
        assert all((c.source is not None) == extractive for c in model.constraints if c is not None)
        second = model.calls[1]  # the call after the search: where its Observation went
        if fmt == "scratchpad":
            assert second[-1]["role"] == "assistant" and "\nObservation: France is" in second[-1]["content"]
        else:
            assert second[-1] == {"role": "user", "content": f"Observation: {prompted.steps[0].observation}"}
        world_q = load_prompts("world").examples["react"][0]["question"]
        assert (world_q in second[0]["content"]) == (prompts == "world")  # the side's own exemplars
        nearest = load_prompts("nearest").exemplars("react", 2, "What is the capital of France?")
        assert (nearest in second[0]["content"]) == (prompts == "nearest")
    finally:
        runtime.store.close()


def test_an_api_model_runs_without_constrained_decoding_and_the_status_says_so(tmp_path):
    """The constraint is dropped for an API model (not refused): the agent would refuse it, the page says why."""
    from fireact_core.backends.fake import FakeModel
    from space.fakes import fake_loader, scripted_reply

    def load(spec: str, adapter: str | None = None):  # an API model: no `supports_constraint`
        if spec.startswith("openai:"):
            return FakeModel([scripted_reply] * 10, name=spec)
        return fake_loader(spec, adapter)

    runtime = Runtime(fake_config(tmp_path / "api.duckdb", load_model=load,
                                  prompted_choices=lambda: [("OpenAI stand-in", "openai:gpt-4o-mini")]))
    try:
        outs = list(battle_updates(runtime, UI, "What is the capital of France?", "openai:gpt-4o-mini", "react", 2,
                                   "model:fake:tuned", "off", 0.5, 0, True, "scratchpad+constrained", who=lambda: ME))
        st = outs[-1][UI.state]
        first, last = outs[0][UI.status], outs[-1][UI.status]
        assert "Constrained decoding needs a local model" in first and "Both agents finished" in last
        assert "Constrained decoding needs a local model" in last
        (prompted,) = [s.view.trajectory for s in st.sides if s.view.trajectory.agent.role == "prompted"]
        assert prompted.status == "finished" and prompted.em == 1.0
        assert (prompted.agent.prompt_format, prompted.agent.constrained) == ("scratchpad", False)
        assert runtime.store.get_run(prompted.id).agent.key == "openai:gpt-4o-mini · react 2-shot · scratchpad"
        # blind: neither the note nor the sides tell which side is which before the vote
        for side in (outs[-1][c] for c in UI.sides):
            assert "openai" not in side and "scratchpad" not in side and "prompted" not in side
        assert "side A" not in last and "side B" not in last
        reveal = vote(runtime, UI, st, "a", lambda: ME)[UI.reveal]
        assert "openai:gpt-4o-mini · react 2-shot · scratchpad" in reveal  # named after the vote
    finally:
        runtime.store.close()


def test_a_blind_battle_hides_the_prompting_setup_until_the_vote(rt):
    outs, st = _battle(rt, blind=True)
    for side in (outs[-1][c] for c in UI.sides):
        assert "scratchpad" not in side and "constrained" not in side and "nearest" not in side and "fake:" not in side
    voted = vote(rt, UI, st, "tie", lambda: ME)
    reveal, a, b = voted[UI.reveal], voted[UI.sides[0]], voted[UI.sides[1]]
    assert "fake:scripted · react 2-shot · nearest · scratchpad · constrained · extractive" in reveal + a + b


@pytest.mark.parametrize("bad", ["scratchpad+fast", "json", "scratchpad:/etc/passwd", "chat:../default", "", "x" * 500])
def test_a_bad_prompting_value_is_refused_with_nothing_stored(rt, bad):
    asked = []

    def who() -> Rater:
        asked.append(1)
        return ME

    with pytest.raises(InputError, match="Unknown prompting setup") as e:
        list(battle_updates(rt, UI, "What is the capital of France?", "fake:scripted", "react", 2, "model:fake:tuned",
                            "off", 0.5, 0, True, bad, who=who))
    assert "scratchpad[+constrained|+extractive]" in str(e.value) and len(str(e.value)) < 300  # the form, not the value
    assert asked == [] and rt.store.count("runs") == 0 and rt.store.count("raters") == 0


def test_prompting_values_parse_to_the_spec_fields():
    from space.arena import prompting_shots
    from space.choices import PROMPTING_CHOICES, Prompting, parse_prompting

    def fields(v):
        f = parse_prompting(v)
        assert isinstance(f, Prompting) and Prompting.parse(f.value) == f  # its dropdown string gives it back
        return f.prompt_format, f.constrained, f.prompts, f.extractive

    assert [fields(v) for _, v in PROMPTING_CHOICES] == [
        ("scratchpad", True, "nearest", True), ("scratchpad", True, "default", False),
        ("scratchpad", False, "default", False), ("chat", False, "default", False),
        ("scratchpad", True, "world", False), ("scratchpad", True, "default", True), ("text", False, "paper", False)]
    assert fields(None) == ("scratchpad", True, "nearest", True)
    assert [parse_prompting(v).value for _, v in PROMPTING_CHOICES] == [v for _, v in PROMPTING_CHOICES]
    assert fields(" chat+constrained:world ") == ("chat", True, "world", False)  # the form, not only the presets
    assert fields("chat+extractive:world") == ("chat", True, "world", True)
    assert prompting_shots("scratchpad+constrained:world")["value"] == 6  # the world's exemplars are six
    assert prompting_shots("chat")["value"] == 2
    assert prompting_shots("scratchpad+extractive:nearest")["value"] == 2  # two of its pool, not all 696


def test_a_reloaded_page_takes_back_its_unvoted_battle_and_votes_as_its_rater(rt):
    from space.raters import rater_of
    from space.state import restore, ticket_of

    owner, reloaded, stranger = (rater_of(None, s) for s in ("sess-old", "sess-new", "sess-other"))
    outs = list(battle_updates(rt, UI, "What is the capital of France?", "fake:scripted", "react", 2,
                               "model:fake:tuned", "off", 0.5, 0, True, who=lambda: owner))
    st = outs[-1][UI.state]
    ticket = ticket_of(st, "sess-old")
    assert ticket == f"{st.battle_id}:sess-old" and ticket_of(None, "sess-old") == ""
    # a stranger holding the id, or the id with another session, gets nothing
    nothing = {UI.status: gr.skip()}  # no component changes
    for tk in (st.battle_id, f"{st.battle_id}:sess-other", "", None, "x" * 500):
        assert restore(rt, UI, tk, lambda: stranger) == nothing
    back_ = restore(rt, UI, ticket, lambda: reloaded)
    msg, side_a, side_b, back, tk = (back_[c] for c in (UI.status, *UI.sides, UI.state, UI.ticket))
    assert "is back" in msg and tk == ticket and all(back_[b]["interactive"] for b in UI.votes)
    assert back.battle_id == st.battle_id and back.rater_id == owner.id and back.blind and not back.voted
    assert [s.run_id for s in back.sides] == [s.run_id for s in st.sides]
    assert "fake:" not in side_a + side_b  # still blind: no names before the vote
    assert "Saved" in thumb(rt, UI, back, 0, 1, lambda: reloaded)[UI.rate_msg]
    vote(rt, UI, back, "b", lambda: reloaded)
    assert [r["rater_id"] for r in rt.store.ratings()] == [owner.id]
    assert rt.store._rows("SELECT rater_id, choice FROM votes") == [{"rater_id": owner.id, "choice": "b"}]
    assert restore(rt, UI, ticket, lambda: reloaded) == nothing  # voted: the page stays as it loaded


def test_a_battle_whose_side_failed_keeps_both_sides_rateable_after_a_restart_but_takes_no_vote(rt, tmp_path):
    from space.raters import rater_of
    from space.state import FAILED_NOTE, restore, ticket_of

    owner = rater_of(None, "sess-old")
    outs = list(battle_updates(rt, UI, "What is the capital of France?", "fake:raise", "react", 2, "model:fake:tuned",
                               "off", 0.5, 0, False, who=lambda: owner))
    status, st = outs[-1][UI.status], outs[-1][UI.state]
    assert FAILED_NOTE in status and st.failed and st.battle_id
    assert not any(b in outs[-1] for b in UI.votes)  # the vote buttons stay closed
    by_role = {s.view.trajectory.agent.role: s.view.trajectory for s in st.sides}
    bad, good = by_role["prompted"], by_role["finetuned"]
    assert bad.status == "failed" and "internal error (RuntimeError)" in bad.reason and good.em == 1.0
    assert {r.id: r.status for r in map(rt.store.get_run, (bad.id, good.id))} == {bad.id: "failed", good.id: "finished"}
    with pytest.raises(InputError, match="cannot be voted on"):
        vote(rt, UI, st, "a", lambda: owner)
    # the server restarts: only the page's ticket is left, and a reloaded page has a new session
    ticket = ticket_of(st, "sess-old")
    rt.store.close()
    again = Runtime(fake_config(tmp_path / "app.duckdb"))
    try:
        reloaded = rater_of(None, "sess-new")
        back_ = restore(again, UI, ticket, lambda: reloaded)
        msg, side_a, side_b, back = (back_[c] for c in (UI.status, *UI.sides, UI.state))
        assert FAILED_NOTE in msg and not any(b in back_ for b in UI.votes) and back.failed
        assert 'data-status="error"' in side_a + side_b and "internal error (RuntimeError)" in side_a + side_b
        for side in (0, 1):
            assert "Saved" in thumb(again, UI, None, side, -1, lambda: reloaded, ticket=ticket)[UI.rate_msg]
        assert "step 1 of" in rate_step(again, UI, None, "AB"[[s.run_id for s in back.sides].index(good.id)], 1,
                                        "right", "useful", "", lambda: reloaded, ticket=ticket)[UI.rate_msg]
        with pytest.raises(InputError, match="cannot be voted on"):
            vote(again, UI, None, "b", lambda: reloaded, ticket=ticket)
        assert {r["run_id"] for r in again.store.ratings()} == {bad.id, good.id}
        assert {r["rater_id"] for r in again.store.ratings()} == {owner.id}
        assert again.store.count("votes") == 0
    finally:
        again.store.close()


def test_a_failing_handler_updates_its_message_and_resets_by_component_not_by_position():
    from space.runtime import stream_user_errors, user_errors

    @user_errors(UI.rate_msg)
    def refused() -> dict:
        raise InputError("Run a battle first; then rate its trajectories.")

    @stream_user_errors(UI.status, on_error={UI.run_btn: lambda: gr.update(interactive=True)})
    def broken():
        yield {UI.status: "running"}
        raise RuntimeError("secret internals")

    assert set(refused()) == {UI.rate_msg} and "Run a battle first" in refused()[UI.rate_msg]
    first, failed = list(broken())
    assert first == {UI.status: "running"} and set(failed) == {UI.status, UI.run_btn}
    assert "Something went wrong" in failed[UI.status] and "secret" not in failed[UI.status]
    assert failed[UI.run_btn]["interactive"] is True  # the run button opens again
