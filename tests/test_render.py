"""Pure render functions: escaping, noise badges, step contents, the result row."""

from __future__ import annotations

import re

from fireact_core.trajectory import Step, Trajectory
from space.render import (
    SideView,
    fmt_cost,
    noise_badge,
    render_live,
    render_progress,
    render_reveal,
    render_side,
    render_step,
    render_summary,
    render_trajectory,
)

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def _step(**kw) -> Step:
    base = dict(thought="I should search.", action="search", argument="Paris", observation="Paris is in France.",
                tokens_in=120, tokens_out=14, latency_s=0.53)
    base.update(kw)
    return Step(**base)


def test_step_shows_thought_action_observation_tokens_latency():
    out = render_step(_step(), 0)
    assert out.startswith("<details") and "open" in out.split(">")[0]
    assert "Step 1" in out and "I should search." in out and "Paris is in France." in out
    assert '<code class="fa-tool">search</code>[Paris]' in out
    assert "120 → 14 tok" in out and "0.53 s" in out


def test_everything_from_models_and_tools_is_escaped():
    step = _step(thought=XSS, argument=XSS, observation=XSS, error=None)
    traj = Trajectory(question=XSS, steps=[step], answer=XSS, gold=XSS, em=0.0, f1=0.0)
    for out in (render_step(step, 0), render_summary(traj), render_trajectory(traj, title=XSS),
                render_side(SideView(XSS, subtitle=XSS, steps=[step], status="error", message=XSS, trajectory=traj)),
                render_live(0, XSS), render_reveal(XSS, XSS, "a")):
        assert "<img" not in out and "<script" not in out
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in out


def test_noise_badge_marks_replaced_observations_only():
    assert noise_badge("clean") == ""
    none = render_step(_step(noise="none", observation="None"), 2)
    rand = render_step(_step(noise="random"), 2)
    clean = render_step(_step(), 2)
    assert 'data-noise="none"' in none and "“None”" in none and "fa-obs-noisy" in none
    assert 'data-noise="random"' in rand and "random earlier observation" in rand
    assert "fa-noise" not in clean and "fa-obs-noisy" not in clean


def test_summary_row_like_table_3():
    traj = Trajectory(question="q", steps=[_step(), _step(action="finish", argument="Paris")], answer="Paris",
                      gold="Paris", em=1.0, f1=1.0, time_s=2.345, tokens_in=300, tokens_out=40, cost_usd=0.00123)
    out = render_summary(traj)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", out)
    assert cells == ["Paris", "Paris", "1.00", "1.00", "ReAct search", "2", "2.35 s", "300 → 40", "$0.0012"]
    assert 'data-chosen="react"' in out  # what the agent chose to do (Trajectory.chosen_method)
    assert 'data-em="1.0"' in out and "fa-ok" in out
    wrong = render_summary(Trajectory(question="q", answer="Lyon", gold="Paris", em=0.0, f1=0.0))
    assert "fa-bad" in wrong
    unknown = render_summary(Trajectory(question="q", answer="x"))
    assert re.findall(r"<td[^>]*>(.*?)</td>", unknown)[1:4] == ["–", "–", "–"]


def test_failed_trajectory_shows_its_reason():
    traj = Trajectory(question="q", status="step_limit", reason="reached the step limit (8)")
    assert "step_limit: reached the step limit (8)" in render_summary(traj)


def test_side_view_streams_the_live_step_and_shows_errors():
    v = SideView("Agent A", steps=[_step()], live_index=1, live_text="Thought: hm", status="running")
    out = render_side(v)
    assert out.count("<details") == 2 and "generating…" in out and "Thought: hm" in out
    err = render_side(SideView("Agent B", status="error", message="model error: HTTP 503"))
    assert 'role="alert"' in err and "model error: HTTP 503" in err
    assert "Ask a question" in render_side(SideView("Agent A"))
    failed = Trajectory(question="q", steps=[_step()], status="failed", reason="model error: HTTP 503")
    side = render_side(SideView("Agent B", steps=failed.steps, status="error", message=failed.reason, trajectory=failed))
    assert side.count("model error: HTTP 503") == 1 and 'class="fa-summary"' in side  # the error once, the row kept


def test_small_formatters():
    assert fmt_cost(0) == "$0" and fmt_cost(0.5) == "$0.5000" and fmt_cost(3.456) == "$3.46"
    p = render_progress(2, 5, 10)
    assert 'data-mine="2"' in p and "(50%)" in p
    assert "B is better" in render_reveal("x", "y", "b")
