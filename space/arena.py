"""The Arena tab: one question, a prompted and a fine-tuned agent side by side, live; then a vote.

Blind mode shuffles the sides and hides their names until the vote (A better / B better /
tie / both bad); the names are revealed after it and the buttons close. Thumbs up/down on
each trajectory and per-step labels are stored too. Noise settings apply to both sides
identically (same mode, probability, seed and pool of earlier observations). The prompted side
has a Prompting control (`space.choices.PROMPTING_CHOICES`: scratchpad with constrained decoding
by default, plain scratchpad, chat, or the world's own exemplars); its setup is part of the side's
name (the spec key), so it shows only where names show (never in blind mode before the vote).
The search tool (the offline world, Wikipedia, Google) is one per battle, the same for both sides;
it is part of both sides' records and names (`AgentSpec.tools`), and the examples and the random
question follow it (`space.questions.TOOL_TASKS`). A tool that does not work here is labelled so and
refused (`space.loading.SearchTools`).
"""

# No `from __future__ import annotations` here: Gradio reads the handlers' type hints
# (gr.Request, gr.OAuthProfile) at runtime.
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from fireact_core.errors import InputError, check_visitor_question
from fireact_core.methods import METHODS
from fireact_core.spec import AgentSpec
from fireact_core.tools.noisy import NoiseConfig
from space.choices import (
    DEFAULT_METHOD,
    DEFAULT_PROMPTING,
    DEFAULT_SHOTS,
    PROMPTING_CHOICES,
    FinetunedChoice,
    Prompting,
    check_model,
    react_shots,
)
from space.loading import tool_menu
from space.questions import tasks_for, tool_examples
from space.raters import Rater
from space.render import CSS, SideView, render_message, render_reveal, render_side
from space.runner import Battle, run_battle
from space.runtime import Runtime, stream_user_errors, user_errors
from space.sides import side_specs
from space.state import (
    FAILED_NOTE,
    FAILED_STATUS,
    ArenaOutputs,
    ArenaState,
    Side,
    Updates,
    recover,
    restore,
    role_label,
    ticket_of,
)

VOTES = (("a", "👈 A is better", "fa-vote-a"), ("b", "👉 B is better", "fa-vote-b"), ("tie", "🤝 Tie", "fa-vote-tie"),
         ("bad", "👎 Both are bad", "fa-vote-bad"))
METHOD_LABELS = {"io": "IO", "cot": "CoT", "react": "ReAct", "reflexion": "Reflexion"}
NOISE_CHOICES = [("off", "off"), ('"None"', "none"), ("random earlier observation", "random")]
INTRO = """Ask a multi-hop question. The **prompted** agent (a base or API model with a few-shot prompt) and the
**fine-tuned** agent (an adapter trained on agent trajectories, FireAct) answer it at once with the same search tool.
Each step shows its Thought, Action and Observation. Then vote for the better trajectory."""


@dataclass
class Tab:
    blocks: gr.Blocks


F_INFO = "bundled, a local folder, a Hub repo id (owner/name) or an OpenAI ft: model."


def _with_note(text: str, note: str) -> str:
    return f"{text} {note}" if note else text


def _view(title: str, spec: AgentSpec, blind: bool) -> SideView:
    return SideView(title=title, subtitle="" if blind else role_label(spec))


def build(rt: Runtime) -> Tab:
    cfg = rt.cfg
    bank = rt.bank
    prompted = cfg.prompted_choices()
    finetuned = rt.finetuned_choices()
    with gr.Blocks() as blocks:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            question = gr.Textbox(label="Question", lines=2, scale=5, elem_id="fa-question",
                                  placeholder="e.g. Which country is the birthplace of the founder of …?")
            with gr.Column(scale=1, min_width=180):
                run_btn = gr.Button("Run both ▶", variant="primary", elem_id="fa-run")
                rand_btn = gr.Button("🎲 Random question", elem_id="fa-random")
        menu = tool_menu(cfg.make_tools)
        first_tool = menu.initial()
        samples, note = tool_examples(bank, first_tool)
        # a Dataset, not gr.Examples: its samples change with the search tool
        examples = gr.Dataset(components=[question], samples=samples, label="Examples", elem_id="fa-examples",
                              visible=bool(samples))
        examples_note = gr.Markdown(note, elem_id="fa-examples-note")
        with gr.Accordion("Agents, search tool, noise and blind mode", open=not cfg.space):
            with gr.Row():
                with gr.Column():
                    gr.Markdown("**Prompted agent**")
                    p_model = gr.Dropdown(prompted, value=prompted[0][1] if prompted else None, label="Model",
                                          allow_custom_value=True, elem_id="fa-p-model",
                                          info="local base model or an OpenAI model (set OPENAI_API_KEY)")
                    p_method = gr.Radio([(METHOD_LABELS[m], m) for m in METHODS], value=DEFAULT_METHOD, label="Method")
                    p_shots = gr.Slider(0, 6, value=DEFAULT_SHOTS, step=1, label="Few-shot exemplars")
                    p_prompting = gr.Dropdown(PROMPTING_CHOICES, value=DEFAULT_PROMPTING, label="Prompting",
                                              elem_id="fa-p-prompting",
                                              info="how the prompted agent sees its steps: one growing scratchpad "
                                                   "(constrained decoding keeps each turn to a Thought and a valid "
                                                   "Action; local models only) or chat turns")
                with gr.Column():
                    gr.Markdown("**Fine-tuned agent**")
                    f_choice = gr.Dropdown(finetuned, value=finetuned[0][1] if finetuned else None,
                                           label="Adapter or fine-tuned model", allow_custom_value=True,
                                           elem_id="fa-f-model",
                                           info=f"{F_INFO} {cfg.defaults.describe()}")
            tool = gr.Radio(menu.choices(), value=first_tool, label="Search tool (both sides)", elem_id="fa-tool",
                            info="the offline world's invented encyclopedia, or the real web for real questions; "
                                 "the examples and the random question follow it")
            with gr.Row():
                noise_mode = gr.Radio(NOISE_CHOICES, value="off", label="Noisy search tool (both sides)")
                noise_p = gr.Slider(0, 1, value=0.5, step=0.05, label="Noise probability p")
                noise_seed = gr.Number(value=0, precision=0, label="Noise seed")
                blind = gr.Checkbox(value=cfg.blind, label="Blind: shuffle sides, hide names until the vote")
        status = gr.HTML(elem_id="fa-status")
        with gr.Row(equal_height=False):
            sides, thumbs = [], []
            for name in ("A", "B"):
                with gr.Column():
                    sides.append(gr.HTML(render_side(SideView(f"Agent {name}")), css_template=CSS, js_on_load=None,
                                         elem_id=f"fa-side-{name.lower()}", min_height=120))
                    with gr.Row():
                        # Always clickable (a message says when there is nothing to rate yet):
                        # toggling them costs four component updates per battle.
                        thumbs.append(gr.Button(f"👍 {name}", size="sm", elem_id=f"fa-up-{name.lower()}"))
                        thumbs.append(gr.Button(f"👎 {name}", size="sm", elem_id=f"fa-down-{name.lower()}"))
        with gr.Row():
            vote_btns = [gr.Button(label, interactive=False, elem_id=eid) for _, label, eid in VOTES]
        reveal = gr.HTML(css_template=CSS, js_on_load=None, elem_id="fa-reveal")
        with gr.Accordion("Label a step", open=False):
            with gr.Row():
                step_side = gr.Radio(["A", "B"], value="A", label="Side")
                step_no = gr.Number(value=1, precision=0, minimum=1, label="Step")
                thought = gr.Radio([("right", "right"), ("wrong", "wrong"), ("no label", "")], value="", label="Thought")
                action = gr.Radio([("useful", "useful"), ("useless", "useless"), ("no label", "")], value="",
                                  label="Action")
            comment = gr.Textbox(label="Comment (optional)", lines=1)
            save_step = gr.Button("Save step label", elem_id="fa-save-step")
        rate_msg = gr.HTML(css_template=CSS, js_on_load=None, elem_id="fa-rate-msg")
        state = gr.State(None)
        # The finished battle's id, kept by the page: gr.State lives in the server process, so after a
        # restart the vote and the ratings find the battle again in the store through it (`recover`).
        ticket = gr.Textbox("", visible="hidden", label="Battle ticket", elem_id="fa-ticket")
        # ... and the browser keeps it too: Gradio's page may reload itself once a restarted server is
        # back (a rater may reload it too), and a load takes the battle back (`restore`). Gradio's encryption of it is no secret
        # (its key is in the page's config), so the key is fixed to outlive a restart; `recover`
        # checks who may have the battle.
        saved = gr.BrowserState("", storage_key="fireact-arena-ticket", secret="fireact-arena-ticket")

        ui = ArenaOutputs(status, (sides[0], sides[1]), (vote_btns[0], vote_btns[1], vote_btns[2], vote_btns[3]),
                          reveal, state, run_btn, ticket, rate_msg)

        # --- wiring: thin closures (Gradio reads their type hints to pass the request and login) -------
        @stream_user_errors(status, on_error={run_btn: lambda: gr.update(interactive=True)})
        def battle(q: str, pm: str, pmeth: str, pshots: float, fchoice: str, nmode: str, np_: float, nseed: float,
                   is_blind: bool, prompting: str | None, tool_name: str | None, request: gr.Request,
                   profile: gr.OAuthProfile | None):
            yield from battle_updates(rt, ui, q, pm, pmeth, pshots, fchoice, nmode, np_, nseed, is_blind, prompting,
                                      tool=tool_name, who=lambda: rt.rater(profile, request))

        def make_vote(choice: str):
            @user_errors(reveal)
            def on_vote(st: ArenaState | None, tk: str, request: gr.Request, profile: gr.OAuthProfile | None):
                return vote(rt, ui, st, choice, lambda: rt.rater(profile, request), ticket=tk)

            on_vote.__name__ = f"vote_{choice}"
            return on_vote

        def make_thumb(side: int, score: int):
            @user_errors(rate_msg)
            def on_thumb(st: ArenaState | None, tk: str, request: gr.Request, profile: gr.OAuthProfile | None):
                return thumb(rt, ui, st, side, score, lambda: rt.rater(profile, request), ticket=tk)

            return on_thumb

        @user_errors(rate_msg)
        def on_rate_step(st: ArenaState | None, side: str, n: float, th: str, ac: str, text: str, tk: str,
                         request: gr.Request, profile: gr.OAuthProfile | None):
            return rate_step(rt, ui, st, side, n, th, ac, text, lambda: rt.rater(profile, request), ticket=tk)

        def on_load(current: str | None):
            return refresh_choices(rt, current)

        def on_restore(tk: str | None, request: gr.Request, profile: gr.OAuthProfile | None):
            return restore(rt, ui, tk, lambda: rt.rater(profile, request))

        def on_ticket(st: ArenaState | None, request: gr.Request) -> tuple[str, str]:
            tk = ticket_of(st, getattr(request, "session_hash", None))
            return tk, tk

        def on_random(tool_name: str | None) -> str:
            return random_question(rt, tool_name)

        def on_tool(tool_name: str | None) -> tuple:
            return tool_changed(rt, tool_name)

        def on_tool_load(tool_name: str | None) -> tuple:
            return tools_on_load(rt, tool_name)

        def on_example(sample: list[Any] | None) -> Any:
            return sample[0] if sample else gr.skip()

        def on_prompting(value: str | None) -> Any:
            return prompting_shots(value)

        blocks.load(on_load, [f_choice], [f_choice], api_visibility="private", queue=False)
        blocks.load(user_errors(status)(on_restore), [saved], [status, *sides, *vote_btns, state, ticket],
                    api_visibility="private", queue=False)
        blocks.load(on_tool_load, [tool], [tool, examples, examples_note], api_visibility="private", queue=False)
        rand_btn.click(on_random, [tool], question, api_name="random_question", queue=False)
        tool.change(on_tool, [tool], [examples, examples_note], api_visibility="private", queue=False)
        examples.click(on_example, [examples], [question], api_visibility="private", queue=False)
        p_prompting.change(on_prompting, [p_prompting], [p_shots], api_visibility="private", queue=False)
        # the prompting control and the search tool are last: API callers that send the first nine inputs get
        # the defaults (the owner's tool)
        inputs = [question, p_model, p_method, p_shots, f_choice, noise_mode, noise_p, noise_seed, blind, p_prompting,
                  tool]
        outputs = [status, *sides, *vote_btns, reveal, state, run_btn]
        # the ticket is not a battle output, so API callers keep the battle's four return values
        for trigger, kw in ((run_btn.click, {"api_name": "battle", "concurrency_limit": cfg.battle_concurrency}),
                            (question.submit, {"api_visibility": "private"})):
            # a new battle: no old ticket
            trigger(lambda: ("", ""), None, [ticket, saved], api_visibility="private", queue=False)
            trigger(battle, inputs, outputs, concurrency_id="battle", **kw).then(
                on_ticket, [state], [ticket, saved], api_visibility="private", queue=False)
        for (choice, _, _), btn in zip(VOTES, vote_btns):
            btn.click(make_vote(choice), [state, ticket], [reveal, *sides, state, *vote_btns],
                      api_name=f"vote_{choice}", concurrency_limit=None)
        for i, btn in enumerate(thumbs):
            side, score = divmod(i, 2)
            btn.click(make_thumb(side, 1 if score == 0 else -1), [state, ticket], [rate_msg],
                      api_name=f"thumb_{'ab'[side]}_{'up' if score == 0 else 'down'}", concurrency_limit=None)
        save_step.click(on_rate_step, [state, step_side, step_no, thought, action, comment, ticket], [rate_msg],
                        api_name="rate_step", concurrency_limit=None)
    return Tab(blocks)


# --- the handlers: functions of the runtime, testable without a page ------------------------------
# gr.update, not gr.Button(...): cheaper per event, and a Button built here would join the page
def _closed(ui: ArenaOutputs) -> Updates:
    return {b: gr.update(interactive=False) for b in ui.votes}


def random_question(rt: Runtime, tool: str | None = None) -> str:
    """A random question that goes with the search tool (None: the default's); '' when there is none."""
    q = rt.bank.random(tasks=tasks_for(tool or tool_menu(rt.cfg.make_tools).default))
    return q.question if q else ""


def tool_changed(rt: Runtime, tool: str | None) -> tuple:
    """The examples (and their note) for the picked search tool."""
    samples, note = tool_examples(rt.bank, tool or tool_menu(rt.cfg.make_tools).default)
    return gr.update(samples=samples, visible=bool(samples)), note


def tools_on_load(rt: Runtime, current: str | None) -> tuple:
    """On page load: the tools' labels as they stand now (a probe may have answered since the page was built),
    the tool kept while it works (else the one a new page starts on), and its examples."""
    menu = tool_menu(rt.cfg.make_tools)
    value = current if current and menu.state(current).ready else menu.initial()
    return (gr.update(choices=menu.choices(), value=value), *tool_changed(rt, value))


def prompting_shots(value: str | None) -> Any:
    """The exemplar count a prompting setup is meant with (the world's exemplars: 6), for the slider."""
    try:
        return gr.update(value=react_shots(Prompting.parse(value).prompts))
    except InputError:
        return gr.skip()


def battle_updates(rt: Runtime, ui: ArenaOutputs, q: str, pm: str, pmeth: str, pshots: float, fchoice: str, nmode: str, np_: float,
                   nseed: float, is_blind: bool, prompting: str | None = DEFAULT_PROMPTING, *,
                   tool: str | None = None, who: Callable[[], Rater]) -> Iterator[Updates]:
    """Check the request, run both sides and stream the page's updates (`ui`'s components); the last holds
    the `ArenaState`.

    `prompting` is the prompted side's setup (`space.choices.PROMPTING_CHOICES`); `tool` the search
    tool both sides use (`space.choices.TOOL_CHOICES`; None: the owner's default). `who` gives the
    rater (stored on first sight), asked only once the request passed its checks."""
    cfg = rt.cfg
    text = check_visitor_question(q)  # binary data and forged steps are refused too
    tool = tool_menu(cfg.make_tools).check(tool)  # unknown, or not working here: a message, nothing runs
    left, right, note = side_specs(pm, pmeth, pshots, fchoice, prompting)
    left, right = replace(left, tools=tool), replace(right, tools=tool)  # the same tool on both sides
    # the choices are listed (a folder scan) only for a model the rule alone does not allow
    check_model(left.model, lambda: [v for _, v in cfg.prompted_choices()])
    check_model(right.model, lambda: [c.model for c in (FinetunedChoice.parse(v) for _, v in rt.finetuned_choices())
                                      if c is not None and c.model is not None])
    left, right = cfg.defaults.resolve(left), cfg.defaults.resolve(right)
    note = _with_note(cfg.defaults.note(left, right), note)  # where the default model runs from now
    noise = NoiseConfig.from_values(nmode, np_, nseed)  # NaN, infinite or huge values: a message
    rater = who()
    rt.battle_limiter.check(rater.id)
    known = rt.bank.lookup(text)
    specs = [left, right]
    if is_blind:
        random.shuffle(specs)
    views = [_view(f"Agent {n}", s, is_blind) for n, s in zip("AB", specs)]
    # the stored observations of this tool's runs only: an invented-world page is no plausible Wikipedia reply
    pool = rt.store.noise_pool(tools=tool) if noise.active and noise.mode == "random" else None
    b = Battle(text, gold=known.answer if known else None, task=known.task if known else "",
               noise=noise, noise_pool=pool or None, max_steps=cfg.max_steps)
    yield {ui.status: render_message(_with_note("Running both agents…", note)), **_sides(ui, views), **_closed(ui),
           ui.reveal: "", ui.state: None, ui.run_btn: gr.update(interactive=False)}
    for vs in run_battle(b, specs, views, pool=rt.pool, make_tools=cfg.make_tools, tick_s=cfg.tick_s,
                         gpu_run=rt.gpu_run):
        yield _sides(ui, vs)
    yield finish_battle(rt, ui, specs, views, is_blind, rater.id, note=note)


def _sides(ui: ArenaOutputs, views: list[SideView]) -> Updates:
    return {c: render_side(v) for c, v in zip(ui.sides, views)}


def finish_battle(rt: Runtime, ui: ArenaOutputs, specs: list[AgentSpec], views: list[SideView], is_blind: bool,
                  rater_id: str, *, note: str = "") -> Updates:
    """Store the battle and open the vote. A battle whose side failed is stored too, with the
    failed side's record, so both sides can still be rated (after a restart too), but it cannot be
    voted on. `note` joins the status."""
    trajs = [v.trajectory for v in views]
    ok = all(t is not None and t.status != "failed" for t in trajs)
    battle_id = uuid.uuid4().hex[:16]
    rt.store.save_battle(battle_id, run_a=trajs[0], run_b=trajs[1], blind=is_blind, rater_id=rater_id, failed=not ok)
    if ok:
        msg = render_message(_with_note("Both agents finished. Which trajectory is better?" +
                             ("" if is_blind else " (Not blind: this vote will not count on the leaderboard.)"), note),
                             "ok")
    else:
        msg = render_message(_with_note(FAILED_STATUS, note), "warn")
    st = ArenaState(battle_id, is_blind, [Side(v, role_label(s)) for v, s in zip(views, specs)], failed=not ok)
    votes_on = {b: gr.update(interactive=True) for b in ui.votes} if ok else {}  # a failed battle's stay closed
    return {ui.status: msg, **_sides(ui, views), **votes_on, ui.reveal: "", ui.state: st,
            ui.run_btn: gr.update(interactive=True)}


def vote(rt: Runtime, ui: ArenaOutputs, st: ArenaState | None, choice: str, who: Callable[[], Rater], *,
         ticket: str = "") -> Updates:
    """Record the battle's one vote and reveal both sides' names. `ticket`: see `recover`."""
    st = recover(rt, st, ticket, who)
    if st is None or not st.battle_id:
        raise InputError("Run a battle first; then vote.")
    if st.failed:
        raise InputError(FAILED_NOTE)
    if st.voted:
        raise InputError("You already voted on this battle.")
    rater = who()
    rt.rate_limiter.check(rater.id)
    rt.store.record_vote(st.battle_id, st.rater_id or rater.id, choice)
    st = replace(st, voted=True)
    a, b = st.sides
    return {ui.reveal: render_reveal(a.label, b.label, choice), **_sides(ui, [replace(s.view, subtitle=s.label)
                                                                               for s in st.sides]),
            ui.state: st, **_closed(ui)}


def thumb(rt: Runtime, ui: ArenaOutputs, st: ArenaState | None, side: int, score: int, who: Callable[[], Rater], *,
          ticket: str = "") -> Updates:
    """A thumbs up (+1) or down (-1) on one side's trajectory. `ticket`: see `recover`."""
    st = recover(rt, st, ticket, who)
    run_id = _run_of(st, side)
    rater = who()
    rt.rate_limiter.check(rater.id)
    rt.store.rate(run_id, st.rater_id or rater.id, source="arena", score=score)
    return {ui.rate_msg: render_message(f"Saved: {'👍' if score > 0 else '👎'} for {'AB'[side]}.", "ok")}


def rate_step(rt: Runtime, ui: ArenaOutputs, st: ArenaState | None, side: str, n: float, th: str, ac: str, text: str,
              who: Callable[[], Rater], *, ticket: str = "") -> Updates:
    """A label on one step (thought right/wrong, action useful/useless, a comment). `ticket`: see `recover`."""
    st = recover(rt, st, ticket, who)
    run_id = _run_of(st, 0 if side == "A" else 1)
    rater = who()
    rt.rate_limiter.check(rater.id)
    idx = int(n or 0) - 1
    rt.store.rate(run_id, st.rater_id or rater.id, source="arena", step_idx=idx, thought_ok={"right": True, "wrong": False}.get(th),
                  action_ok={"useful": True, "useless": False}.get(ac), comment=text)
    return {ui.rate_msg: render_message(f"Saved your label for step {idx + 1} of {side}.", "ok")}


def refresh_choices(rt: Runtime, current: str | None) -> Any:
    """The fine-tuned choices again: new local folders and loop adapters, and the Hub's listing once it arrived."""
    choices = rt.finetuned_choices()
    return gr.update(choices=choices, value=current or (choices[0][1] if choices else None),
                     info=f"{F_INFO} {rt.cfg.defaults.describe()}")  # the Hub probe may have answered since


def _run_of(st: ArenaState | None, side: int) -> str:
    if st is None or not st.sides:
        raise InputError("Run a battle first; then rate its trajectories.")
    run_id = st.sides[side].run_id
    if not run_id:
        raise InputError(f"Side {'AB'[side]} has no trajectory to rate.")
    return run_id
