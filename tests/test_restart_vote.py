"""A vote after the server restarted: the real `python app.py --fake`, killed with SIGKILL between a battle and its vote.

Gradio keeps a session's `gr.State` in the server process, so a restart loses it, and its page reloads
itself once the server is back (not always); the page keeps the battle's ticket (its id and session, in a hidden
textbox and in the browser's storage) and the battle comes back from the DuckDB file. Only the rater
who ran the battle can vote with its ticket, and still only once.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from test_browser import CHROMIUM, open_page  # noqa: E402

from bench.app import free_port, start, stop  # noqa: E402
from bench.reliability import NO_LIMITS, SETTINGS  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def _client(url: str, session_hash: str | None = None):
    from gradio_client import Client

    c = Client(url, verbose=False, download_files=False, ssl_verify=False)
    if session_hash:  # the same page session as before the restart: the same anonymous rater
        c.session_hash = session_hash
    return c


def _kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)  # the app is down: nobody holds the file
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_the_battles_own_session_votes_with_its_ticket_after_a_kill_and_no_one_else_can(tmp_path):
    db, port, log = tmp_path / "restart.duckdb", free_port(), tmp_path / "app.log"
    args = ["--fake", "--db", str(db)]
    proc, url, _ = start(args, NO_LIMITS, port=port, log=log)
    try:
        owner = _client(url)
        question = "What is the capital of France? (before the kill)"
        assert "Both agents finished" in owner.predict(question, *SETTINGS, api_name="/battle")[0]
        _kill(proc)
        (battle_id,), = _rows(db, "SELECT id FROM battles WHERE question = ?", [question])
        proc, _, _ = start(args, NO_LIMITS, port=port, log=log)
        # the session's state is gone: without the ticket there is no battle
        assert "Run a battle first" in _client(url, owner.session_hash).predict(api_name="/vote_a")[0]
        # another session with the owner's ticket is refused, and rates nothing
        stranger = _client(url)
        assert "Run a battle first" in stranger.predict(battle_id, api_name="/vote_b")[0]
        assert "Run a battle first" in stranger.predict(battle_id, api_name="/thumb_a_up")
        assert "Run a battle first" in _client(url).predict("x" * 10_000, api_name="/vote_b")[0]
        back = _client(url, owner.session_hash)
        reveal, a, b = back.predict(battle_id, api_name="/vote_a")
        assert "is saved" in reveal and "A is better" in reveal
        assert "fake:" in a and "fake:" in b  # the names, revealed from the stored runs
        assert "already voted" in back.predict(battle_id, api_name="/vote_b")[0]
        assert "Saved" in back.predict(battle_id, api_name="/thumb_b_down")
    finally:
        stop(proc)
    assert _rows(db, "SELECT choice, rater_id FROM votes WHERE battle_id = ?", [battle_id]) == [
        ("a", _rows(db, "SELECT rater_id FROM battles WHERE id = ?", [battle_id])[0][0])]
    assert _rows(db, "SELECT score FROM ratings r JOIN battles b ON r.run_id = b.run_b WHERE b.id = ?",
                 [battle_id]) == [(-1,)]
    assert _rows(db, "SELECT count(*) FROM ratings")[0][0] == 1
    assert "Traceback" not in log.read_text(errors="replace")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make browser-deps)")
def test_a_vote_clicked_after_the_server_restarted_is_stored(tmp_path):
    db, port, log = tmp_path / "page.duckdb", free_port(), tmp_path / "app.log"
    args = ["--fake", "--blind", "--db", str(db)]
    proc, url, _ = start(args, NO_LIMITS, port=port, log=log)
    try:
        with open_page(url) as page:
            page.locator("#fa-question textarea").fill("What is the capital of France?")
            page.locator("#fa-run").click()
            page.locator("#fa-vote-b:not([disabled])").wait_for(timeout=60_000)
            # the ticket reaches the browser's storage just after the battle's last output
            page.wait_for_function("localStorage.getItem('fireact-arena-ticket') !== null", timeout=30_000)
            _kill(proc)
            (battle_id,), = _rows(db, "SELECT id FROM battles")
            proc, _, _ = start(args, NO_LIMITS, port=port, log=log)
            # Gradio's page may reload itself once the server it lost is back (seen under load), and a
            # rater may reload it: the page's own state (the hidden ticket too) goes, and the browser's
            # stored ticket brings the battle back. Reloaded here, so no reload of Gradio's can race
            # the click.
            page.reload(wait_until="load")
            page.locator("#fa-vote-b:not([disabled])").wait_for(timeout=60_000)
            assert "is back" in page.locator("#fa-status").inner_text()
            assert "Paris" in page.locator("#fa-side-b").inner_text() + page.locator("#fa-side-a").inner_text()
            page.locator("#fa-vote-b").click()
            page.locator("#fa-reveal .fa-reveal").wait_for(timeout=30_000)
            reveal = page.locator("#fa-reveal").inner_text()
            assert "B is better" in reveal and "fake:tuned" in reveal, reveal
            assert "fake:" in page.locator("#fa-side-a .fa-sub").inner_text()  # names on the sides too
            for vid in ("a", "b", "tie", "bad"):
                assert page.locator(f"#fa-vote-{vid}").is_disabled()
    finally:
        stop(proc)
    assert _rows(db, "SELECT battle_id, choice FROM votes") == [(battle_id, "b")]
    # the reloaded page is a new session, and the vote is still the battle's rater's
    assert _rows(db, "SELECT rater_id FROM votes") == _rows(db, "SELECT rater_id FROM battles")
