"""The app in a real browser: Debian's chromium driven by Playwright (no `playwright install`).

A full blind battle and a vote, screenshots into test-artifacts/, an XSS canary (an
observation carrying `<img onerror>` and `<script>` shows as text and runs nothing), and the
annotation tab's keyboard shortcuts.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fireact_core.trajectory import Step, Trajectory

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make browser-deps)"),
]
if str(ROOT) not in sys.path:  # app.py lives at the repository root
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app import create_app
    from space.fakes import fake_config

    demo = create_app(fake_config(tmp_path_factory.mktemp("browser") / "app.duckdb", blind_default=True, k_raters=2))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", demo.fireact_runtime.store
    demo.close()


@contextlib.contextmanager
def open_page(url: str, *, init_script: str | None = None,
              on_response: Callable[[Any], None] | None = None) -> Iterator[Any]:
    """Debian's chromium on `url`, once the arena is there; page errors and dialogs collect in `page.errors`."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1100})
            if init_script:
                pg.add_init_script(init_script)
            if on_response:
                pg.on("response", on_response)
            errors: list[str] = []
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
            pg.goto(url, wait_until="load")
            pg.locator("#fa-question textarea").wait_for(timeout=60_000)
            pg.errors = errors
            yield pg
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(app):
    with open_page(app[0]) as pg:
        yield pg


def test_a_blind_battle_and_a_vote_in_the_browser_with_an_xss_canary(app, page):
    _, store = app
    ARTIFACTS.mkdir(exist_ok=True)
    # the prompted side's Prompting control starts on the best-effort setup
    assert page.locator("#fa-p-prompting input").input_value() == "scratchpad · extractive · nearest teacher exemplars (2 shots)"
    page.locator("#fa-question textarea").fill("What does Mallory's page say?")
    page.locator("#fa-run").click()
    for side in ("a", "b"):
        page.locator(f'#fa-side-{side} .fa-side[data-status="done"]').wait_for(timeout=30_000)
    page.locator("#fa-vote-a:not([disabled])").wait_for(timeout=10_000)
    # The observation carrying markup is shown as text, and none of it ran.
    obs = page.locator("#fa-side-a .fa-obs").first.inner_text()
    assert '<img src=x onerror="window.__fireactXss=1">' in obs and "<script>" in obs
    assert page.evaluate("window.__fireactXss") is None
    assert page.locator('#fa-side-a img[src="x"], #fa-side-b img[src="x"], #fa-side-a script').count() == 0
    # Blind: no names before the vote; each step is a collapsible block with its result row.
    sides_text = page.locator("#fa-side-a").inner_text() + page.locator("#fa-side-b").inner_text()
    assert "fake:tuned" not in sides_text and "fake:scripted" not in sides_text and "scratchpad" not in sides_text
    assert page.locator("#fa-side-a details.fa-step").count() == 2
    assert page.locator("#fa-side-b table.fa-summary").count() == 1
    page.screenshot(path=str(ARTIFACTS / "arena-battle.png"), full_page=True)

    votes = store.count("votes")
    page.locator("body").click(position={"x": 5, "y": 5})  # out of the question box: keys are shortcuts
    page.keyboard.press("1")  # vote A
    page.locator("#fa-reveal .fa-reveal").wait_for(timeout=10_000)
    reveal = page.locator("#fa-reveal").inner_text()
    assert "A is better" in reveal and "fake:tuned" in reveal and "fake:scripted" in reveal
    assert "fake:scripted · react 2-shot · nearest · scratchpad · constrained · extractive" in reveal  # the prompted side's setup, revealed
    assert store.count("votes") == votes + 1
    for vid in ("a", "b", "tie", "bad"):
        assert page.locator(f"#fa-vote-{vid}").is_disabled()
    assert "fake:" in page.locator("#fa-side-a .fa-sub").inner_text()  # names revealed on the sides
    page.screenshot(path=str(ARTIFACTS / "arena-voted.png"), full_page=True)
    assert page.errors == []


def test_annotation_keyboard_shortcuts_and_the_leaderboard(app, page):
    from playwright.sync_api import expect

    _, store = app
    for i in range(3):  # enough trajectories in the queue for N, U, D and S
        store.save_run(Trajectory(question=f"Queued question {i}?", id=f"queued{i}", gold="x", answer="x", em=1.0,
                                  steps=[Step(thought="t", action="finish", argument="x")], agent={"model": "teacher"}),
                       source="import", agent_key="teacher")
    page.get_by_role("tab", name="Annotate").click()
    page.locator("#fa-q-next").wait_for(state="visible")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("n")
    page.locator("#fa-q-item .fa-side[data-run]").wait_for(timeout=10_000)
    run_id = page.locator("#fa-q-item .fa-side").get_attribute("data-run")
    page.locator("#fa-q-up:not([disabled])").wait_for(timeout=10_000)
    before = store._scalar("SELECT count(*) FROM ratings WHERE source = 'queue'")
    page.keyboard.press("u")
    page.locator("#fa-q-msg .fa-msg-ok").wait_for(timeout=10_000)
    assert store._scalar("SELECT count(*) FROM ratings WHERE source = 'queue'") == before + 1
    assert store._scalar("SELECT score FROM ratings WHERE run_id = ? AND source = 'queue'", [run_id]) == 1
    # A rating brings the next trajectory: D rates it bad, S skips the one after (never shown again)
    for key in ("d", "s"):
        expect(page.locator("#fa-q-item .fa-side")).not_to_have_attribute("data-run", run_id, timeout=10_000)
        run_id = page.locator("#fa-q-item .fa-side").get_attribute("data-run")
        page.locator("#fa-q-up:not([disabled])").wait_for(timeout=10_000)
        page.keyboard.press(key)
        expect(page.locator("#fa-q-msg")).to_contain_text("Saved 👎" if key == "d" else "Skipped", timeout=10_000)
        seen = store._scalar("SELECT outcome FROM queue_seen WHERE run_id = ? AND outcome <> 'shown'", [run_id])
        assert seen == ("rated" if key == "d" else "skipped"), (key, seen)
        if key == "d":
            assert store._scalar("SELECT score FROM ratings WHERE run_id = ? AND source = 'queue'", [run_id]) == -1
    page.screenshot(path=str(ARTIFACTS / "annotate.png"), full_page=True)
    page.get_by_role("tab", name="Leaderboard").click()
    expect(page.locator("#fa-lb-agree .fa-agree")).to_contain_text("1 blind votes", timeout=15_000)
    expect(page.locator("#fa-lb-table")).to_contain_text("fake:tuned · fine-tuned")
    page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)
    assert page.errors == []


def test_the_search_tool_control_picks_wikipedia_and_its_questions(app, page):
    import os

    from playwright.sync_api import expect

    from space.fakes import QUESTIONS, WEB_ARTICLES

    page.get_by_role("tab", name="Arena").click()
    tool = page.locator("#fa-tool")
    expect(tool).to_contain_text("Offline world")
    if not os.environ.get("SERPAPI_API_KEY"):  # shown, and labelled as not working here
        expect(tool).to_contain_text("Google via SerpAPI — needs SERPAPI_API_KEY")
    expect(page.locator("#fa-examples")).to_contain_text("What is the capital of France?")
    tool.get_by_label("Wikipedia (ReAct's tool)").check()
    examples = page.locator("#fa-examples")
    expect(examples).to_contain_text("Scott Derrickson")  # the examples follow the tool
    expect(examples).not_to_contain_text("capital of France")
    web = {q.question for q in QUESTIONS if q.task in ("hotpotqa", "bamboogle")}
    for _ in range(3):  # cleared first: an earlier test on this page may have left a question there
        page.locator("#fa-question textarea").fill("")
        page.locator("#fa-random").click()
        expect(page.locator("#fa-question textarea")).not_to_have_value("", timeout=10_000)
        assert page.locator("#fa-question textarea").input_value() in web
    examples.get_by_text("Were Scott Derrickson and Ed Wood of the same nationality?").click()
    expect(page.locator("#fa-question textarea")).to_have_value(
        "Were Scott Derrickson and Ed Wood of the same nationality?", timeout=10_000)
    page.locator("#fa-run").click()
    for side in ("a", "b"):  # both sides searched the fake Wikipedia (the first battle's sides are replaced)
        expect(page.locator(f"#fa-side-{side} .fa-obs").first).to_contain_text(WEB_ARTICLES["scott derrickson"],
                                                                               timeout=30_000)
        page.locator(f'#fa-side-{side} .fa-side[data-status="done"]').wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "arena-wikipedia.png"), full_page=True)
    assert page.errors == []
