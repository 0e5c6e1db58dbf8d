"""The Annotate tab: crowd raters work through stored trajectories that still need ratings.

Each trajectory goes to `k` raters (AppConfig.k_raters) and never twice to the same rater
(the store remembers what it showed to whom, skips included). Keyboard: N next, U good,
D bad, S skip; in the arena 1/2/3/4 vote A/B/tie/both bad. An owner or admin can import a
JSONL of trajectories (from `fireact generate` or `fireact eval`) to be rated.
"""

# No `from __future__ import annotations`: Gradio reads the handlers' type hints at runtime.
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from fireact_core.errors import InputError
from fireact_core.formats import read_trajectories
from space.render import CSS, render_message, render_progress, render_trajectory
from space.runtime import Runtime, user_errors

GUIDELINES = """**What you rate.** A trajectory is an agent's attempt at a question: Thoughts, Actions (tool
calls: `search[...]`, `lookup[...]`, `finish[answer]`) and the Observations the tool returned.

- **👍 Good** when the reasoning is sound, the searches are to the point, and the final answer follows
  from what it found (even if the gold answer disagrees on wording).
- **👎 Bad** when it guesses, loops, ignores what it found, or answers something else.
- An orange **noise** badge marks an observation the noisy tool replaced on purpose; a good agent
  notices ("None" or an unrelated page) and searches again.
- **Step labels** (optional): was this step's thought right, was its action useful? Add a comment if
  something stands out.
- **Skip** when you can't judge it; you won't see it again.

Keyboard: **N** next · **U** good · **D** bad · **S** skip (not while typing in a field)."""

# Registers the shortcuts once per page (app.py runs it on page load: a tab's own components mount only
# when the tab is first opened, and the arena's 1-4 must work before that); only visible, enabled
# buttons are clicked.
KEYS_JS = """
if (!window.__fireactKeys) {
  window.__fireactKeys = true;
  const map = {n: 'fa-q-next', u: 'fa-q-up', d: 'fa-q-down', s: 'fa-q-skip',
               '1': 'fa-vote-a', '2': 'fa-vote-b', '3': 'fa-vote-tie', '4': 'fa-vote-bad'};
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
    const id = map[(e.key || '').toLowerCase()];
    if (!id) return;
    const el = document.getElementById(id);
    if (!el || el.offsetParent === null) return;
    const b = el.tagName === 'BUTTON' ? el : el.querySelector('button');
    if (b && !b.disabled) { e.preventDefault(); b.click(); }
  });
}
"""


@dataclass
class Tab:
    blocks: gr.Blocks


def build(rt: Runtime) -> Tab:
    cfg = rt.cfg
    with gr.Blocks() as blocks:
        with gr.Accordion("Guidelines", open=False):
            gr.Markdown(GUIDELINES)
        progress = gr.HTML(css_template=CSS, js_on_load=None, elem_id="fa-q-progress")
        with gr.Row():
            next_btn = gr.Button("Start / next (N)", variant="primary", elem_id="fa-q-next")
            up_btn = gr.Button("👍 Good (U)", interactive=False, elem_id="fa-q-up")
            down_btn = gr.Button("👎 Bad (D)", interactive=False, elem_id="fa-q-down")
            skip_btn = gr.Button("Skip (S)", interactive=False, elem_id="fa-q-skip")
        msg = gr.HTML(css_template=CSS, js_on_load=None, elem_id="fa-q-msg")
        item = gr.HTML(css_template=CSS, js_on_load=None, elem_id="fa-q-item")
        with gr.Accordion("Label a step", open=False):
            with gr.Row():
                step_no = gr.Number(value=1, precision=0, minimum=1, label="Step")
                thought = gr.Radio([("right", "right"), ("wrong", "wrong"), ("no label", "")], value="", label="Thought")
                action = gr.Radio([("useful", "useful"), ("useless", "useless"), ("no label", "")], value="",
                                  label="Action")
            comment = gr.Textbox(label="Comment (optional)", lines=1)
            save_step = gr.Button("Save step label", elem_id="fa-q-save-step")
        with gr.Accordion("Import trajectories to rate (owner / admin)", open=False):
            upload = gr.File(label="Trajectory JSONL (or Alpaca JSON / chat JSONL)", file_types=[".jsonl", ".json"])
            token = gr.Textbox(label="Admin token", type="password", visible=cfg.admin_needs_token)
            import_btn = gr.Button("Import")
            import_msg = gr.HTML(css_template=CSS, js_on_load=None)
        current = gr.State(None)

        buttons = (up_btn, down_btn, skip_btn)

        def _next(rater_id: str, note: str = "", kind: str = "ok") -> dict[Any, Any]:
            it = rt.store.next_for(rater_id, cfg.k_raters)
            p = rt.store.progress(rater_id, cfg.k_raters)
            prog = render_progress(p["mine"], p["done"], p["target"])
            if it is None:
                text = (note + " " if note else "") + "Nothing left for you to rate. Thank you!"
                return {progress: prog, msg: render_message(text.strip(), "ok"), item: "", current: None,
                        **{b: gr.update(interactive=False) for b in buttons}}
            title = f"{it.ratings_so_far} of {cfg.k_raters} ratings so far"
            return {progress: prog, msg: render_message(note, kind), item: render_trajectory(it.trajectory, title=title),
                    current: it.run_id, **{b: gr.update(interactive=True) for b in buttons}}

        outs = [progress, msg, item, current, *buttons]

        @user_errors(msg)
        def next_item(request: gr.Request, profile: gr.OAuthProfile | None):
            return _next(rt.rater(profile, request).id)

        def make_rate(score: int):
            @user_errors(msg)
            def rate(run_id: str | None, request: gr.Request, profile: gr.OAuthProfile | None):
                if not run_id:
                    raise InputError("Press Start to get a trajectory to rate.")
                rater = rt.rater(profile, request)
                rt.rate_limiter.check(rater.id)
                rt.store.rate(run_id, rater.id, source="queue", score=score)
                return _next(rater.id, f"Saved {'👍' if score > 0 else '👎'}.")

            return rate

        @user_errors(msg)
        def skip(run_id: str | None, request: gr.Request, profile: gr.OAuthProfile | None):
            rater = rt.rater(profile, request)
            if run_id:
                rt.store.skip(run_id, rater.id)
            return _next(rater.id, "Skipped.", "info")

        @user_errors(msg)
        def rate_step(run_id: str | None, n: float, th: str, ac: str, text: str, request: gr.Request,
                      profile: gr.OAuthProfile | None):
            if not run_id:
                raise InputError("Press Start to get a trajectory to rate.")
            rater = rt.rater(profile, request)
            rt.rate_limiter.check(rater.id)
            idx = int(n or 0) - 1
            rt.store.rate(run_id, rater.id, source="queue", step_idx=idx,
                          thought_ok={"right": True, "wrong": False}.get(th),
                          action_ok={"useful": True, "useless": False}.get(ac), comment=text)
            return render_message(f"Saved your label for step {idx + 1}.", "ok")

        @user_errors(import_msg)
        def do_import(path: str | None, tok: str, profile: gr.OAuthProfile | None):
            if not cfg.is_admin(profile, tok):
                raise InputError(cfg.admin_refusal("import trajectories"))
            if not path:
                raise InputError("Choose a file to import.")
            n_new = rt.store.import_trajectories(read_trajectories(path))
            return render_message(f"Imported {n_new} new trajectories from {Path(path).name}.", "ok")

        next_btn.click(next_item, None, outs, api_name="queue_next", concurrency_limit=None)
        up_btn.click(make_rate(1), [current], outs, api_name="queue_up", concurrency_limit=None)
        down_btn.click(make_rate(-1), [current], outs, api_name="queue_down", concurrency_limit=None)
        skip_btn.click(skip, [current], outs, api_name="queue_skip", concurrency_limit=None)
        save_step.click(rate_step, [current, step_no, thought, action, comment], [msg], api_name="queue_rate_step",
                        concurrency_limit=None)
        import_btn.click(do_import, [upload, token], [import_msg], api_name="import_trajectories")
    return Tab(blocks)
