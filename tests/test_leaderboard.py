"""The leaderboard's numbers from a real store: agreement on overlapping items, human vs EM, the plots' frames."""

from __future__ import annotations

import pytest

from fireact_core.store import Store
from fireact_core.trajectory import Step, Trajectory
from space.leaderboard import leaderboard_data


def _run(i: int, em: float, key: str) -> tuple[Trajectory, str]:
    steps = [Step(thought="look", action="search", argument=f"topic {i}", observation=f"page {i}"),
             Step(thought="done", action="finish", argument="ans" if em else "wrong")]
    t = Trajectory(question=f"question {i}?", steps=steps, id=f"run{i:03d}", gold="ans",
                   answer="ans" if em else "wrong", em=em, f1=em, status="finished",
                   agent={"model": "m", "noise": {"mode": "none" if i % 2 else "off", "p": 0.5, "seed": 0}})
    return t, key


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "lb.duckdb")
    yield s
    s.close()


def test_raters_who_agree_on_every_shared_item_give_alpha_and_kappa_one(store):
    for i, em in enumerate([1.0, 0.0, 1.0, 0.0]):
        t, key = _run(i, em, "agent-a")
        store.save_run(t, source="eval", agent_key=key)
    for rater in ("r1", "r2"):  # both thumbs up the correct runs and down the wrong ones
        for i, em in enumerate([1.0, 0.0, 1.0, 0.0]):
            store.rate(f"run{i:03d}", rater, source="annotate", score=1 if em else -1)
    store.rate("run000", "r3", source="annotate", score=1)  # a third rater on one item only
    a = leaderboard_data(store, rounds=20)["agreement"]
    assert a["items_overlap"] == 4
    assert a["alpha"] == pytest.approx(1.0) and a["fleiss"] == pytest.approx(1.0)
    assert a["human_em"]["n"] == 4 and a["human_em"]["agreement"] == 1.0 and a["human_em"]["kappa"] == pytest.approx(1.0)


def test_raters_who_disagree_bring_alpha_below_zero_and_the_thumbs_against_em_show(store):
    for i, em in enumerate([1.0, 1.0, 1.0, 1.0, 0.0, 0.0]):
        t, key = _run(i, em, "agent-a")
        store.save_run(t, source="eval", agent_key=key)
        store.rate(f"run{i:03d}", "r1", source="annotate", score=1)
        store.rate(f"run{i:03d}", "r2", source="annotate", score=-1 if i < 3 else 1)
    a = leaderboard_data(store, rounds=20)["agreement"]
    assert a["alpha"] < 0  # they disagree more often than their labels' frequencies would have them
    # mean thumbs 0 on runs 0-2 (not judged); runs 3-5 judged good, and EM says 4 and 5 are wrong
    assert a["human_em"]["n"] == 3 and a["human_em"]["agreement"] == pytest.approx(1 / 3)


def test_blind_votes_fill_the_table_and_the_plot_frames(store):
    for b in range(6):
        ta, _ = _run(10 + 2 * b, 1.0, "tuned")
        tb, _ = _run(11 + 2 * b, 0.0, "prompted")
        store.save_battle(f"b{b}", run_a=ta, run_b=tb, key_a="tuned", key_b="prompted", blind=True, rater_id=None)
        store.record_vote(f"b{b}", f"r{b}", "a" if b < 5 else "b")
    d = leaderboard_data(store, rounds=50)
    assert d["votes"] == 6
    table = d["table"].set_index(d["table"].columns[0])
    assert list(table.index[:2]) == ["tuned", "prompted"]  # ordered by Bradley–Terry score
    assert set(d["bt"]["agent"]) == {"tuned", "prompted"}
    assert (d["bt"]["low"] <= d["bt"]["score"]).all() and (d["bt"]["score"] <= d["bt"]["high"]).all()
    wr = dict(zip(d["win_rate"]["agent"], d["win_rate"]["win rate"]))
    assert wr["tuned"] == pytest.approx(5 / 6)
    em = {(r["agent"], r["noise"]): r["em"] for r in d["em_by_noise"].to_dict("records")}
    assert em[("tuned", "clean")] == 1.0 and em[("prompted", "none p=0.5")] == 0.0
