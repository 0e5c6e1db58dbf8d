"""The arena's handlers as functions of the runtime, without a page: battle → vote → thumbs → step label.

The page keeps a typed `ArenaState` (its sides' views hold the `Trajectory` objects the agents
returned); nothing is serialised to a dict and rebuilt on a vote.
"""

from __future__ import annotations

import pytest

from fireact_core.errors import InputError
from fireact_core.spec import AgentSpec
from fireact_core.trajectory import Trajectory
from space.arena import ArenaState, battle_updates, rate_step, refresh_choices, thumb, vote
from space.fakes import fake_config
from space.raters import Rater
from space.runtime import Runtime

ME = Rater("anon:handler-test", "anon")


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime(fake_config(tmp_path / "app.duckdb"))
    yield runtime
    runtime.store.close()


def _battle(rt: Runtime, blind: bool = True) -> tuple[list[tuple], ArenaState]:
    outs = list(battle_updates(rt, "What is the capital of France?", "fake:scripted", "react", 2, "model:fake:tuned",
                               "off", 0.5, 0, blind, who=lambda: ME))
    return outs, outs[-1][8]


def test_a_battle_streams_and_ends_with_a_typed_state(rt):
    outs, st = _battle(rt)
    assert len(outs) >= 3 and "Running both agents" in outs[0][0]
    assert isinstance(st, ArenaState) and st.battle_id and st.blind and not st.voted
    trajs = [s.view.trajectory for s in st.sides]
    assert all(isinstance(t, Trajectory) and isinstance(t.agent, AgentSpec) for t in trajs)
    assert {t.agent.role for t in trajs} == {"prompted", "finetuned"}
    stored = rt.store.get_run(trajs[0].id)
    assert stored.agent == trajs[0].agent and stored.steps == trajs[0].steps  # the same record, typed both ways
    assert "Both agents finished" in outs[-1][0]


def test_vote_once_then_thumbs_and_a_step_label(rt):
    _, st = _battle(rt)
    reveal, side_a, _b, st2, *buttons = vote(rt, st, "a", lambda: ME)
    assert st2.voted and not st.voted  # a new state; the old one is left as it was
    assert st.sides[0].label.split(":")[0] in reveal and st.sides[0].label in side_a  # names revealed
    assert rt.store.count("votes") == 1 and len(buttons) == 4
    with pytest.raises(InputError, match="already voted"):
        vote(rt, st2, "b", lambda: ME)
    assert "Saved" in thumb(rt, st2, 1, -1, lambda: ME)
    assert "step 1 of B" in rate_step(rt, st2, "B", 1, "wrong", "", "", lambda: ME)
    (label,) = rt.store.ratings(steps=True)
    assert label["run_id"] == st2.sides[1].run_id and label["thought_ok"] is False


def test_nothing_to_vote_on_asks_no_rater(rt):
    asked = []

    def who() -> Rater:
        asked.append(1)
        return ME

    with pytest.raises(InputError, match="Run a battle first"):
        vote(rt, None, "a", who)
    with pytest.raises(InputError, match="Run a battle first"):
        thumb(rt, None, 0, 1, who)
    with pytest.raises(InputError):
        list(battle_updates(rt, "", "fake:scripted", "react", 2, "model:fake:tuned", "off", 0.5, 0, True, who=who))
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
