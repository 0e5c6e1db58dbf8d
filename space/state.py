"""What the arena's page keeps between a battle and its vote, and how a battle comes back when the
server lost it (a restart) or the page did (a reload): the battle's ticket, checked against its rater.
"""

# No `from __future__ import annotations`: Gradio reads the type hints of handlers built from these.
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from fireact_core.spec import AgentSpec
from fireact_core.trajectory import Trajectory
from space.raters import Rater, rater_of
from space.render import SideView, render_message, render_side
from space.runtime import Runtime

FAILED_NOTE = "One side could not finish (see its error), so this battle cannot be voted on."
FAILED_STATUS = f"{FAILED_NOTE} You can still rate what each side did."  # the page's status for such a battle


def role_label(spec: AgentSpec) -> str:
    return f"{spec.role}: {spec.name}"


@dataclass
class Side:
    """One side of a finished battle as the page holds it: its view (with the typed trajectory) and its name."""

    view: SideView
    label: str  # "role: agent key", shown at once, or after the vote in blind mode

    @property
    def run_id(self) -> str | None:
        return self.view.trajectory.id if self.view.trajectory else None


@dataclass
class ArenaState:
    """What the page keeps between a battle and its vote and ratings (`gr.State`): typed, never re-parsed."""

    battle_id: str | None
    blind: bool
    sides: list[Side]
    voted: bool = False
    failed: bool = False  # a side failed: its record is kept and both sides can be rated, never voted on
    rater_id: str | None = None  # the battle's rater, when a reloaded page took it back (`recover`)


@dataclass(frozen=True)
class ArenaOutputs:
    """The arena's components that its handlers update. A handler returns a `{component: value}` mapping over
    them (`Updates`); Gradio puts each value on its component among the event's outputs and leaves the
    others as they are, so no handler counts positions. API clients still get the outputs in order."""

    status: Any
    sides: tuple[Any, Any]
    votes: tuple[Any, Any, Any, Any]  # the vote buttons, in `arena.VOTES`' order
    reveal: Any
    state: Any
    run_btn: Any
    ticket: Any
    rate_msg: Any

    @classmethod
    def detached(cls) -> "ArenaOutputs":
        """Fresh components on no page, for calling the handlers without one (the tests)."""
        return cls(gr.HTML(), (gr.HTML(), gr.HTML()), (gr.Button(), gr.Button(), gr.Button(), gr.Button()),
                   gr.HTML(), gr.State(), gr.Button(), gr.Textbox(), gr.HTML())


Updates = dict[Any, Any]  # {component: value}


def ticket_of(st: ArenaState | None, session_hash: str | None = None) -> str:
    """The page's ticket for a finished battle: its id, and the session that ran it (empty when
    there is no battle to vote on). The session names an anonymous rater, so a reloaded page (a new
    session) still proves it is the same browser's battle; a login proves itself."""
    if st is None or not st.battle_id:
        return ""
    return f"{st.battle_id}:{session_hash}" if session_hash else st.battle_id


def recover(rt: Runtime, st: ArenaState | None, ticket: str | None, who: Callable[[], Rater]) -> ArenaState | None:
    """The page's state; or, when the server lost it (a restart, or the page reloaded) and the page
    still holds its battle's ticket (`ticket_of`), the battle rebuilt from the store, for the rater
    who ran it only (another rater gets None)."""
    if st is not None or not ticket or not isinstance(ticket, str) or len(ticket) > 200:
        return st
    battle_id, _, session = ticket.partition(":")
    rec = rt.store.battle_of(battle_id)
    if rec is None or rec.rater_id not in {who().id, rater_of(None, session).id if session else None}:
        return None
    sides = [Side(_view_of(n, t, rec.blind), role_label(t.agent)) for n, t in zip("AB", (rec.run_a, rec.run_b))]
    return ArenaState(rec.id, rec.blind, sides, voted=rec.voted, failed=rec.failed, rater_id=rec.rater_id)


def _view_of(n: str, traj: Trajectory, blind: bool) -> SideView:
    failed = traj.status == "failed"
    return SideView(f"Agent {n}", "" if blind else role_label(traj.agent), steps=list(traj.steps),
                    status="error" if failed else "done", message=traj.reason if failed else None, trajectory=traj,
                    elapsed_s=traj.time_s)


def restore(rt: Runtime, ui: ArenaOutputs, ticket: str | None, who: Callable[[], Rater]) -> Updates:
    """A loaded page's updates: its browser's last battle back when it has not been voted on (after a
    restart Gradio's page may reload itself; the status, both sides, the vote buttons, the state and the
    ticket), else none."""
    st = recover(rt, None, ticket, who)
    if st is None or st.voted:
        return {ui.status: gr.skip()}  # nothing changes (Gradio refuses an empty mapping)
    back = "Your last battle is back (the page reloaded)."
    if st.failed:
        msg = render_message(f"{back} {FAILED_STATUS}", "warn")
    else:
        msg = render_message(f"{back} Which trajectory is better?", "ok")
    out = {ui.status: msg, **{c: render_side(s.view) for c, s in zip(ui.sides, st.sides)}, ui.state: st,
           ui.ticket: ticket}
    if not st.failed:  # a failed battle's vote buttons stay closed
        out.update({b: gr.update(interactive=True) for b in ui.votes})
    return out
