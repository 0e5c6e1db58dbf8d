"""Pure render functions: steps, trajectories and result rows to HTML.

Everything that came from a model, a tool or a user is escaped with `html.escape` here, so
no HTML or script from a search result or a model's output runs in the page. Each step is a
`<details>` element (collapsible), open by default. The styles live in `CSS`, which the app
attaches to its HTML components (`css_template`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from fireact_core.trajectory import NOISE_CLEAN, NOISE_NONE, Step, Trajectory

ACTION_ICONS = {"search": "🔎", "lookup": "📖", "finish": "🏁"}
NOISE_TEXT = {NOISE_NONE: "noise: “None”", "random": "noise: random earlier observation"}


@dataclass
class SideView:
    """What one side of the arena shows: a plain record the runner updates as events arrive."""

    title: str
    subtitle: str = ""
    steps: list[Step] = field(default_factory=list)
    live_index: int | None = None  # the step being generated
    live_text: str = ""
    status: str = "waiting"  # waiting | queued | running | done | error
    message: str | None = None  # why it waits, or the error
    trajectory: Trajectory | None = None
    trial: int = 0
    reflections: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


def esc(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def fmt_tokens(tokens_in: int, tokens_out: int) -> str:
    return f"{tokens_in:,} → {tokens_out:,}"


def fmt_cost(usd: float | None) -> str:
    if not usd:
        return "$0"
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def fmt_score(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def noise_badge(noise: str) -> str:
    """A visible badge for an observation the noisy tool replaced ('' when clean)."""
    if noise == NOISE_CLEAN or not noise:
        return ""
    text = NOISE_TEXT.get(noise, f"noise: {noise}")
    return (f'<span class="fa-badge fa-noise" data-noise="{esc(noise)}" '
            f'title="The noisy search tool replaced this observation">⚠ {esc(text)}</span>')


def render_step(step: Step, index: int, *, open_: bool = True) -> str:
    """One Thought / Action / Observation step as a collapsible block, with tokens and latency."""
    icon = ACTION_ICONS.get(step.action, "🛠")
    action = f"{icon} {esc(step.action)}[{esc(step.argument)}]" if step.action else "⚠ no valid action"
    meta = f"{fmt_tokens(step.tokens_in, step.tokens_out)} tok · {step.latency_s:.2f} s"
    trial = f'<span class="fa-trial">trial {step.trial + 1}</span> ' if step.trial else ""
    parts = [
        f'<details class="fa-step{" fa-step-error" if step.error else ""}" data-step="{index}"{" open" if open_ else ""}>',
        f'<summary><span class="fa-n">Step {index + 1}</span> {trial}<span class="fa-act">{action}</span> '
        f'{noise_badge(step.noise)}<span class="fa-meta">{esc(meta)}</span></summary>',
    ]
    if step.has_thought or step.thought:
        parts.append(f'<div class="fa-row"><b>Thought</b><div class="fa-text fa-thought">{esc(step.thought)}</div></div>')
    if step.action:
        parts.append(f'<div class="fa-row"><b>Action</b><div class="fa-text"><code class="fa-tool">{esc(step.action)}</code>'
                     f'[{esc(step.argument)}]</div></div>')
    elif step.raw:
        parts.append(f'<div class="fa-row"><b>Output</b><div class="fa-text">{esc(step.raw)}</div></div>')
    obs_cls = "fa-obs fa-obs-noisy" if step.noise not in (NOISE_CLEAN, "") else "fa-obs"
    parts.append(f'<div class="fa-row"><b>Observation</b><div class="fa-text {obs_cls}">{esc(step.observation)}</div></div>')
    parts.append("</details>")
    return "".join(parts)


def render_live(index: int, text: str) -> str:
    """The step being generated: its streamed text so far."""
    return (f'<details class="fa-step fa-live" data-step="{index}" open><summary><span class="fa-n">Step {index + 1}</span> '
            f'<span class="fa-meta">generating…</span></summary><div class="fa-text">{esc(text)}<span class="fa-cursor">▌</span>'
            f"</div></details>")


CHOSEN_LABELS = {"answer": "one-step answer", "react": "ReAct search", "cot": "CoT", "io": "IO"}


def render_summary(traj: Trajectory, *, with_status: bool = True) -> str:
    """The result row, as in the paper's Table 3: answer, gold with EM/F1, steps, time, tokens, cost;
    above it why the run did not finish, unless `with_status` is off (the side shows its error)."""
    gold = "–" if traj.gold is None else esc(traj.gold)
    em = fmt_score(traj.em)
    status = ("" if traj.status == "finished" or not with_status else
              f'<div class="fa-status">{esc(traj.status)}: {esc(traj.reason or "")}</div>')
    answer = "–" if traj.answer in (None, "") else esc(traj.answer)
    em_cls = "" if traj.em is None else (" fa-ok" if traj.em >= 1 else " fa-bad")
    chosen = CHOSEN_LABELS.get(traj.chosen_method or "", traj.chosen_method or "–")
    return (
        f'{status}<table class="fa-summary" data-em="{"" if traj.em is None else traj.em}" data-steps="{traj.num_steps}">'
        "<thead><tr><th>Answer</th><th>Gold</th><th>EM</th><th>F1</th><th>Chose</th><th>Steps</th><th>Time</th>"
        "<th>Tokens</th><th>Cost</th></tr></thead><tbody><tr>"
        f'<td class="fa-answer">{answer}</td><td>{gold}</td><td class="fa-em{em_cls}">{em}</td><td>{fmt_score(traj.f1)}</td>'
        f'<td class="fa-chose" data-chosen="{esc(traj.chosen_method or "")}">{esc(chosen)}</td>'
        f"<td>{traj.num_steps}</td><td>{traj.time_s:.2f} s{_engine(traj)}</td><td>{fmt_tokens(traj.tokens_in, traj.tokens_out)}</td>"
        f"<td>{fmt_cost(traj.cost_usd)}</td></tr></tbody></table>")


def _engine(traj: Trajectory) -> str:
    engine = traj.meta.get("engine") if isinstance(traj.meta, dict) else None
    return f'<br><span class="fa-engine">{esc(engine)}</span>' if engine else ""


def render_reflections(reflections: Sequence[str]) -> str:
    if not reflections:
        return ""
    items = "".join(f"<li>{esc(r)}</li>" for r in reflections)
    return f'<div class="fa-reflections"><b>Reflections</b><ul>{items}</ul></div>'


def render_steps(steps: Sequence[Step], live_index: int | None = None, live_text: str = "") -> str:
    body = [render_step(s, i) for i, s in enumerate(steps)]
    if live_index is not None and live_index >= len(steps):
        body.append(render_live(live_index, live_text))
    return "".join(body)


def render_side(view: SideView) -> str:
    """One arena side: title, status, its steps (and the one streaming), and the result row."""
    state = {"waiting": "", "queued": "⏳ ", "running": "⏳ ", "done": "✅ ", "error": "❌ "}.get(view.status, "")
    sub = f'<span class="fa-sub">{esc(view.subtitle)}</span>' if view.subtitle else ""
    head = (f'<div class="fa-head" data-status="{esc(view.status)}"><span class="fa-title">{state}{esc(view.title)}</span>{sub}'
            f'<span class="fa-meta">{view.elapsed_s:.1f} s</span></div>')
    parts = [f'<div class="fa-side" data-status="{esc(view.status)}">', head]
    if view.message and view.status != "error":
        parts.append(f'<div class="fa-note">{esc(view.message)}</div>')
    parts.append(render_reflections(view.reflections))
    parts.append(render_steps(view.steps, view.live_index, view.live_text))
    if view.status == "error":
        parts.append(f'<div class="fa-error" role="alert">⚠ {esc(view.message or "failed")}</div>')
    if view.trajectory is not None:  # a failed side's error is shown once, above
        parts.append(render_summary(view.trajectory, with_status=view.status != "error"))
    if view.status == "waiting" and not view.steps:
        parts.append('<div class="fa-empty">Ask a question to start.</div>')
    parts.append("</div>")
    return "".join(parts)


def render_trajectory(traj: Trajectory, *, title: str = "") -> str:
    """A stored trajectory (the annotation queue): question, steps and the result row."""
    head = f'<div class="fa-head"><span class="fa-title">{esc(title)}</span></div>' if title else ""
    return (f'<div class="fa-side" data-run="{esc(traj.id)}">{head}<div class="fa-question"><b>Question</b> '
            f"{esc(traj.question)}</div>{render_reflections(traj.reflections)}{render_steps(traj.steps)}"
            f"{render_summary(traj)}</div>")


def render_message(text: str, kind: str = "info") -> str:
    """A short escaped notice (kind: info | ok | warn | error)."""
    return f'<div class="fa-msg fa-msg-{esc(kind)}" role="status">{esc(text)}</div>' if text else ""


def render_progress(mine: int, done: int, target: int) -> str:
    pct = 0 if not target else min(100, round(100 * done / target))
    return (f'<div class="fa-progress" data-mine="{mine}" data-done="{done}" data-target="{target}">'
            f"<span>You rated <b>{mine}</b> · everyone: <b>{done}</b> of {target} ratings ({pct}%)</span>"
            f'<div class="fa-bar"><div style="width:{pct}%"></div></div></div>')


def render_reveal(a_label: str, b_label: str, choice: str) -> str:
    """After the vote: which agent was which, and what the vote was."""
    said = {"a": "A is better", "b": "B is better", "tie": "a tie", "bad": "both are bad"}.get(choice, choice)
    return (f'<div class="fa-reveal" role="status">Thanks, your vote (<b>{esc(said)}</b>) is saved. '
            f"<b>A</b> was <b>{esc(a_label)}</b>; <b>B</b> was <b>{esc(b_label)}</b>.</div>")


# Nested CSS, scoped by Gradio to each HTML component (`css_template`). No backslashes or
# template markers here: Gradio evaluates this as a JS template string.
CSS = """
.fa-side { font-size: 14px; line-height: 1.45; }
.fa-head { display: flex; gap: 8px; align-items: baseline; margin-bottom: 6px; }
.fa-title { font-weight: 700; font-size: 16px; }
.fa-sub { color: var(--body-text-color-subdued); }
.fa-meta { color: var(--body-text-color-subdued); font-size: 12px; margin-left: auto; white-space: nowrap; }
.fa-step { border: 1px solid var(--border-color-primary); border-radius: 8px; margin: 6px 0; padding: 4px 8px;
  background: var(--background-fill-secondary); }
.fa-step > summary { cursor: pointer; display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.fa-step-error { border-color: #d97706; }
.fa-live { border-style: dashed; }
.fa-n { font-weight: 600; }
.fa-act { font-family: var(--font-mono); overflow-wrap: anywhere; }
.fa-row { display: grid; grid-template-columns: 92px 1fr; gap: 6px; margin: 4px 0; }
.fa-text { white-space: pre-wrap; overflow-wrap: anywhere; }
.fa-obs { color: var(--body-text-color); }
.fa-obs-noisy { text-decoration: line-through wavy #d97706; text-decoration-thickness: 1px; }
.fa-badge { border-radius: 999px; padding: 0 8px; font-size: 12px; font-weight: 600; }
.fa-noise { background: #fde68a; color: #78350f; }
.fa-trial { font-size: 12px; color: var(--body-text-color-subdued); }
.fa-cursor { color: #f97316; }
.fa-error { background: #fee2e2; color: #7f1d1d; border-radius: 8px; padding: 8px; margin: 6px 0; white-space: pre-wrap; }
.fa-note, .fa-status, .fa-empty { color: var(--body-text-color-subdued); margin: 4px 0; }
.fa-summary { width: 100%; border-collapse: collapse; margin-top: 8px; font-size: 13px; }
.fa-summary th, .fa-summary td { border: 1px solid var(--border-color-primary); padding: 3px 6px; text-align: left; }
.fa-ok { background: #dcfce7; color: #14532d; font-weight: 700; }
.fa-bad { background: #fee2e2; color: #7f1d1d; font-weight: 700; }
.fa-reflections { font-size: 13px; color: var(--body-text-color-subdued); }
.fa-question { margin-bottom: 6px; }
.fa-msg { padding: 6px 10px; border-radius: 8px; margin: 4px 0; }
.fa-msg-ok { background: #dcfce7; color: #14532d; }
.fa-msg-warn { background: #fef3c7; color: #78350f; }
.fa-msg-error { background: #fee2e2; color: #7f1d1d; }
.fa-reveal { background: #e0f2fe; color: #0c4a6e; padding: 8px 10px; border-radius: 8px; }
.fa-progress .fa-bar { height: 6px; background: var(--border-color-primary); border-radius: 3px; margin-top: 4px; }
.fa-progress .fa-bar > div { height: 6px; background: #f97316; border-radius: 3px; }
"""
