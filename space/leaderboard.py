"""The Leaderboard tab: blind win rates, Bradley–Terry scores with bootstrap CIs, EM by noise,
mean steps/time/tokens per agent configuration, and agreement (between raters; raters vs EM).

Owners and admins also export everything here: Parquet/JSONL of every table, and a
training set (best-rated and/or EM-correct trajectories) in the trainer's trajectory JSONL.
"""

# No `from __future__ import annotations`: Gradio reads the handlers' type hints at runtime.
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from fireact_core import stats
from fireact_core.errors import InputError
from fireact_core.store import Store
from space.render import CSS, esc, render_message
from space.runtime import Runtime, user_errors

COLUMNS = ["Agent", "Blind battles", "Win rate", "BT score", "95% CI", "Runs", "EM", "Steps", "Time (s)", "Tokens",
           "Cost ($)"]
TRAINING_MODES = [("best-rated or EM-correct", "rated_or_em"), ("EM-correct", "em"), ("best-rated", "rated"),
                  ("best-rated and EM-correct", "rated_and_em")]


@dataclass
class Tab:
    blocks: gr.Blocks
    refresh: Any
    outputs: list[Any]


def loop_progress(rt: Runtime, recipe: str, token: str | None, profile: Any) -> Iterator[str]:
    """The admin button's handler: start the loop (or follow the one running) and stream its progress."""
    from space.loopjob import follow, start_loop
    from train.loop import LoopConfig

    if not rt.cfg.is_admin(profile, token):
        yield rt.cfg.admin_refusal("train an adapter")
        return
    options = {**rt.cfg.loop_options, "recipe": (recipe or "").strip() or rt.cfg.loop_options.get("recipe", "")}
    job = start_loop(rt, LoopConfig(adapters_dir=rt.cfg.adapters_dir, **options))
    text = ""
    for text in follow(job):
        yield text
    if job.error:
        yield f"{text}\nfailed: {job.error}"
    elif job.result is not None:
        yield f"{text}\n{job.result.format()}\nThe fine-tuned side offers it now."


def loop_cancel(rt: Runtime, token: str | None, profile: Any) -> str:
    """The admin's cancel button: stop the training child (the progress stream then ends with "cancelled")."""
    if not rt.cfg.is_admin(profile, token):
        return rt.cfg.admin_refusal("cancel training")
    job = rt.loop_job
    if job is None or not job.running:
        return "No training is running."
    job.cancel()
    return "Training cancelled."


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(float(x), nd)


def _frame(rows: list[dict[str, Any]], types: dict[str, type]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(types)).astype(types)


def leaderboard_data(store: Store, *, rounds: int = 200) -> dict[str, Any]:
    """Everything the tab shows, computed from the store."""
    comps = store.blind_comparisons()
    wr = stats.win_rates(comps)
    bt = stats.bootstrap_bt(comps, rounds=rounds) if comps else {}
    runs = store.runs_table()
    summary = stats.summarise_runs(runs)
    rows = []
    for key in sorted(set(summary) | set(wr), key=lambda k: -(bt.get(k, (0.0,))[0])):
        w, s, b = wr.get(key, {}), summary.get(key, {}), bt.get(key)
        rows.append([key, int(w.get("battles", 0)), _r(w.get("win_rate")), _r(b[0], 0) if b else None,
                     f"[{b[1]:.0f}, {b[2]:.0f}]" if b else "", s.get("runs", 0), _r(s.get("em")), _r(s.get("steps"), 1),
                     _r(s.get("time_s")), _r(s.get("tokens"), 0), _r(s.get("cost_usd"), 4)])
    table = pd.DataFrame(rows, columns=COLUMNS)
    # Typed even when empty: the plot fixes its axis types from the first frame it gets.
    bt_df = _frame([{"agent": k, "score": v[0], "low": v[1], "high": v[2]} for k, v in bt.items()],
                   {"agent": str, "score": float, "low": float, "high": float})
    wr_df = _frame([{"agent": k, "win rate": v["win_rate"]} for k, v in wr.items()], {"agent": str, "win rate": float})
    noise_df = _frame([{**r, "setting": f"{r['agent']} | {r['noise']}"} for r in stats.em_by_noise(runs)],
                      {"setting": str, "agent": str, "noise": str, "runs": int, "em": float})
    method_df = _frame([{**r, "em": _r(r["em"])} for r in stats.em_by_chosen_method(runs)],
                       {"agent": str, "method": str, "runs": int, "em": float})
    return {"table": table, "bt": bt_df, "win_rate": wr_df, "em_by_noise": noise_df, "em_by_method": method_df,
            "agreement": agreement(store, runs), "votes": len(comps), "runs": len(runs)}


def agreement(store: Store, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Inter-rater agreement on overlapping items and human-vs-EM agreement."""
    by_run: dict[str, list[int]] = defaultdict(list)
    for r in store.ratings():
        by_run[r["run_id"]].append(r["score"])
    overlap = [v for v in by_run.values() if len(v) >= 2]
    alpha = stats.krippendorff_alpha(overlap)
    kappa = None
    if overlap:  # Fleiss needs the same number of raters per item: the most common count
        counts = defaultdict(list)
        for v in overlap:
            counts[len(v)].append(v)
        same = max(counts.values(), key=len)
        table = [[v.count(1), v.count(-1)] for v in same]
        kappa = stats.fleiss_kappa(table) if len(table) >= 2 else None
    steps_by: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for r in store.ratings(steps=True):
        if r["thought_ok"] is not None:
            steps_by[(r["run_id"], r["step_idx"])].append(r["thought_ok"])
    step_alpha = stats.krippendorff_alpha([v for v in steps_by.values() if len(v) >= 2])
    em = {r["id"]: r["em"] for r in runs if r.get("gold") is not None}
    pairs = [(sum(v) / len(v), em[k]) for k, v in by_run.items() if k in em]
    return {"items_overlap": len(overlap), "alpha": alpha, "fleiss": kappa, "step_alpha": step_alpha,
            "human_em": stats.rating_em_agreement(pairs)}


def render_agreement(a: dict[str, Any], votes: int, runs: int) -> str:
    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.2f}"

    h = a["human_em"]
    return (f'<div class="fa-agree"><b>{votes}</b> blind votes · <b>{runs}</b> stored runs<br>'
            f"Inter-rater agreement on {a['items_overlap']} trajectories rated by ≥ 2 people: Krippendorff's α = "
            f"<b>{f(a['alpha'])}</b> · Fleiss' κ = <b>{f(a['fleiss'])}</b> · step thoughts α = {f(a['step_alpha'])}<br>"
            f"Human thumbs vs exact match on {h['n']} trajectories: agreement <b>{f(h['agreement'])}</b>, "
            f"Cohen's κ = {f(h['kappa'])}</div>")


def build(rt: Runtime) -> Tab:
    cfg = rt.cfg
    with gr.Blocks() as blocks:
        gr.Markdown("Only **blind** votes count. Bradley–Terry scores are on the Elo scale (1000 = even odds against a "
                    "reference), with 95% bootstrap intervals. An agent's name ends with its search tool "
                    "(`wikipedia`, `google`) unless it searched the offline world.")
        refresh_btn = gr.Button("Refresh", elem_id="fa-lb-refresh")
        agree = gr.HTML(css_template=CSS, js_on_load=None, elem_id="fa-lb-agree")
        table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_id="fa-lb-table")
        with gr.Row():
            bt_plot = gr.BarPlot(x="agent", y="score", title="Bradley–Terry score (blind votes)", x_title="",
                                 y_title="score", height=300)
            wr_plot = gr.BarPlot(x="agent", y="win rate", title="Blind win rate", x_title="", y_lim=[0, 1], height=300)
        # One bar per (agent, noise): Gradio stacks bars sharing an x, and its `color` legend keeps
        # the first update's agents only, so the pair is the x label and there is no color.
        noise_plot = gr.BarPlot(x="setting", y="em", title="EM by noise setting (agent | noisy search)", x_title="",
                                y_lim=[0, 1], height=320, x_label_angle=-15, tooltip=["agent", "noise", "runs", "em"])
        gr.Markdown("**EM by chosen method**: what each agent chose to do on a question (a one-step answer, a "
                    "ReAct search, CoT) and how often it was right.")
        method_table = gr.Dataframe(headers=["agent", "method", "runs", "em"], interactive=False, elem_id="fa-lb-method")
        with gr.Accordion("Export (owner / admin)", open=False):
            token = gr.Textbox(label="Admin token", type="password", visible=cfg.admin_needs_token)
            with gr.Row():
                fmt = gr.Radio(["parquet", "jsonl"], value="parquet", label="Format of the full export")
                export_btn = gr.Button("Export every table")
            with gr.Row():
                mode = gr.Dropdown(TRAINING_MODES, value="rated_or_em", label="Training set: which trajectories")
                train_btn = gr.Button("Export training set (trajectory JSONL)")
            files = gr.File(label="Download", file_count="multiple", interactive=False)
            export_msg = gr.HTML(css_template=CSS, js_on_load=None)
            with gr.Row():
                recipe = gr.Textbox(value=cfg.loop_options.get("recipe", ""), label="Recipe for a new adapter",
                                    info="fireact loop: the rated set → an adapter, compared with its predecessor")
                loop_btn = gr.Button("Train a new adapter from the ratings", elem_id="fa-loop")
                cancel_btn = gr.Button("Cancel training", elem_id="fa-loop-cancel", variant="stop")
            loop_log = gr.Textbox(label="Training progress", lines=8, interactive=False, elem_id="fa-loop-log")

        def refresh():
            d = leaderboard_data(rt.store)
            return (render_agreement(d["agreement"], d["votes"], d["runs"]), d["table"], d["bt"], d["win_rate"],
                    d["em_by_noise"], d["em_by_method"])

        def _out_dir(kind: str) -> Path:
            base = Path(cfg.export_dir) if cfg.export_dir else Path(tempfile.mkdtemp(prefix="fireact-export-"))
            d = base / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
            d.mkdir(parents=True, exist_ok=True)
            return d

        @user_errors(export_msg)
        def export_all(f: str, tok: str, profile: gr.OAuthProfile | None):
            if not cfg.is_admin(profile, tok):
                raise InputError(cfg.admin_refusal("export"))
            paths = rt.store.export_tables(_out_dir("tables"), f)
            return {files: [str(p) for p in paths], export_msg: render_message(f"Exported {len(paths)} tables as {esc(f)}.", "ok")}

        @user_errors(export_msg)
        def export_training(m: str, tok: str, profile: gr.OAuthProfile | None):
            if not cfg.is_admin(profile, tok):
                raise InputError(cfg.admin_refusal("export"))
            path = _out_dir("training") / f"training-{m}.jsonl"
            n = rt.store.export_training_set(path, m)
            return {files: [str(path)], export_msg: render_message(f"{n} trajectories in the training set ({m}).", "ok")}

        def train_adapter(rec: str, tok: str, profile: gr.OAuthProfile | None):
            yield from loop_progress(rt, rec, tok, profile)

        def cancel_training(tok: str, profile: gr.OAuthProfile | None) -> str:
            return loop_cancel(rt, tok, profile)

        outputs = [agree, table, bt_plot, wr_plot, noise_plot, method_table]
        refresh_btn.click(refresh, None, outputs, api_name="leaderboard", concurrency_limit=4)
        blocks.load(refresh, None, outputs, api_visibility="private")
        export_btn.click(export_all, [fmt, token], [files, export_msg], api_name="export_tables")
        train_btn.click(export_training, [mode, token], [files, export_msg], api_name="export_training_set")
        loop_btn.click(train_adapter, [recipe, token], [loop_log], api_name="train_adapter", concurrency_limit=2)
        cancel_btn.click(cancel_training, [token], [loop_log], api_name="cancel_training")
    return Tab(blocks, refresh, outputs)
