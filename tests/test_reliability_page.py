"""Hostile content and secrets in the page (issue 14, parts 5 and 6), in Debian's chromium through Playwright.

5. A question, a tool observation and an adapter name carrying `<script>`, `<img onerror>`,
   `<svg onload>` and markdown-link payloads show as text in the arena, the annotation queue
   and the leaderboard: no canary global is set, no such element or `javascript:` link exists.
6. Canary values in OPENAI_API_KEY, SERPAPI_API_KEY, HF_TOKEN and FIREACT_ADMIN_TOKEN, echoed
   back by stand-ins (an OpenAI endpoint's 401 body, SerpAPI's results, the Hub's 400 body):
   0 hits in the page's HTML and every payload it received, the app's log, the DuckDB file
   (raw bytes and every text column) and every export (Parquet, JSONL, the training set).
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from servers import FakeSerpAPI, LocalServer, ScriptedOpenAI, _json  # noqa: E402
from test_app_e2e import _free_port  # noqa: E402
from test_browser import CHROMIUM, open_page  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make browser-deps)")]

CANARIES = {"OPENAI_API_KEY": "sk-canary-openai-7f3a9c1e", "SERPAPI_API_KEY": "serp-canary-4b8d2e6f",
            "HF_TOKEN": "hf_canaryToken9c7e5a3b", "FIREACT_ADMIN_TOKEN": "admin-canary-1d9f7b3c"}
PAYLOADS = ['<img src=x onerror="window.__fireactXss=1">', "<script>window.__fireactXss=2</script>",
            "<svg onload=window.__fireactXss=3>", "[click me](javascript:window.__fireactXss=4)"]
HOSTILE_Q = "Who wrote " + " ".join(PAYLOADS) + "?"  # no topic the fake model knows: it searches all of it
ADAPTER = "<img src=x onerror=window.__fireactXss=5>"  # a folder name (no slash)
INJECTED = 'img[src="x"], script:not([src]):has-text("__fireactXss"), svg[onload], a[href^="javascript:"]'
# The page's received payloads (Gradio streams over fetch; EventSource and WebSocket too, if used).
CAPTURE_JS = """
window.__faPayloads = [];
const keep = (s) => window.__faPayloads.push(String(s));
const _fetch = window.fetch;
window.fetch = async (...args) => {
  const r = await _fetch(...args);
  try { const c = r.clone(); (async () => { try { const rd = c.body.getReader(); const d = new TextDecoder();
    for (;;) { const {done, value} = await rd.read(); if (done) break; keep(d.decode(value)); } } catch (e) {} })();
  } catch (e) {}
  return r;
};
const _ES = window.EventSource;
if (_ES) window.EventSource = function (...a) { const es = new _ES(...a); es.addEventListener('message', (e) => keep(e.data)); return es; };
"""


class EchoSerpAPI(FakeSerpAPI):
    """SerpAPI that answers every query with the query and the key it was sent (a careless proxy)."""

    def __init__(self) -> None:
        super().__init__({}, api_key=CANARIES["SERPAPI_API_KEY"])

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        q, key = query.get("q", ""), query.get("api_key", "")
        return _json({"search_metadata": {"status": "Success"}, "search_parameters": dict(query),
                      "organic_results": [{"position": 1, "title": q, "snippet": f"{q}: Paris (request key {key})"}]})


class EchoHub(LocalServer):
    """A Hub that answers every call with a 400 echoing the Authorization header it got."""

    def __init__(self) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        auth = {k.lower(): v for k, v in self.requests[-1]["headers"].items()}.get("authorization", "")
        return _json({"error": f"Bad request with Authorization: {auth}"}, 400)  # 5xx: retried for 31 s


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from huggingface_hub import constants

    from app import RedactSecrets, create_app
    from fireact_core.tools.base import Toolbox
    from fireact_core.tools.serpapi import load as load_google
    from space.choices import hub_adapter_choices
    from space.fakes import fake_config, fake_loader
    from space.loading import CachedLoader

    tmp = tmp_path_factory.mktemp("page")
    (tmp / ADAPTER).mkdir()
    (tmp / ADAPTER / "adapter_config.json").write_text("{}")
    saved = {k: os.environ.get(k) for k in [*CANARIES, "OPENAI_BASE_URL", "SERPAPI_BASE_URL", "HF_ENDPOINT",
                                            "HF_HUB_OFFLINE"]}
    offline = constants.HF_HUB_OFFLINE
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.addFilter(RedactSecrets())  # what app.main() puts on every handler
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    openai = ScriptedOpenAI(["Thought: I should search.\nAction: search[France]",
                             "Thought: found it.\nAction: finish[Paris]", "401"])
    with openai, EchoSerpAPI() as serp, EchoHub() as hub:
        os.environ.update(CANARIES, OPENAI_BASE_URL=openai.url, SERPAPI_BASE_URL=serp.url, HF_ENDPOINT=hub.url,
                          HF_HUB_OFFLINE="0")
        constants.HF_HUB_OFFLINE = False  # read once at import; the Hub listing runs at start
        demo = None
        try:
            real = CachedLoader()
            google = load_google(use_cache=False)
            cfg = fake_config(tmp / "app.duckdb", blind_default=False, k_raters=2, export_dir=str(tmp / "exports"),
                              load_model=lambda spec, adapter=None: real(spec, adapter) if spec.startswith("openai:")
                              else fake_loader(spec, adapter),
                              make_tools=lambda _tool="corpus": Toolbox(google, timeout_s=10),
                              prompted_choices=lambda: [("OpenAI stand-in", "openai:gpt-4o-mini"),
                                                        ("Fake scripted model", "fake:scripted")],
                              finetuned_choices=lambda: [("Hostile adapter", f"adapter:{tmp / ADAPTER}")],
                              hub_choices=hub_adapter_choices)
            demo = create_app(cfg)
            port = _free_port()
            demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
            yield {"url": f"http://127.0.0.1:{port}/", "store": demo.fireact_runtime.store, "tmp": tmp, "log": log,
                   "hub": hub, "openai": openai, "serp": serp}
        finally:
            if demo is not None:
                demo.close()
            root.removeHandler(handler)
            root.setLevel(level)
            constants.HF_HUB_OFFLINE = offline
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def page(app):
    bodies: list[str] = []

    def keep(response: Any) -> None:
        if "text/event-stream" in response.headers.get("content-type", ""):
            return  # streamed: the page's own capture has it
        try:
            bodies.append(response.text())
        except Exception:  # a redirect or a body the browser did not keep
            pass

    with open_page(app["url"], init_script=CAPTURE_JS, on_response=keep) as pg:
        pg.bodies = bodies
        yield pg


def no_script_ran(page: Any, where: str) -> None:
    assert page.evaluate("window.__fireactXss") is None, where
    assert page.locator(INJECTED).count() == 0, where


def run_battle(page: Any, question: str) -> None:
    page.locator("#fa-question textarea").fill(question)
    # mark the last battle's sides stale: the new battle's updates replace them
    page.evaluate("document.querySelectorAll('#fa-side-a .fa-side, #fa-side-b .fa-side')"
                  ".forEach(e => e.dataset.status = 'stale')")
    page.locator("#fa-run").click()
    for side in ("a", "b"):
        page.locator(f'#fa-side-{side} .fa-side[data-status="done"], #fa-side-{side} .fa-side[data-status="error"]'
                     ).wait_for(timeout=30_000)


def test_hostile_question_observation_and_adapter_name_render_as_text(app, page):
    from playwright.sync_api import expect

    page.locator("#fa-p-model input").fill("fake:scripted")  # a typed value the app offers
    page.locator("#fa-p-model input").press("Enter")
    run_battle(page, HOSTILE_Q)
    sides = page.locator("#fa-side-a").inner_text() + page.locator("#fa-side-b").inner_text()
    for text in (PAYLOADS[0], PAYLOADS[1], PAYLOADS[3]):
        assert text in sides  # the question and the observation that echoes it, as text
    assert ADAPTER in page.locator("#fa-side-b .fa-sub").inner_text()  # not blind: the adapter's name shows
    no_script_ran(page, "arena")
    page.locator("#fa-vote-a:not([disabled])").click()
    page.locator("#fa-reveal .fa-reveal").wait_for(timeout=10_000)
    assert ADAPTER in page.locator("#fa-reveal").inner_text()
    no_script_ran(page, "reveal")
    page.get_by_role("tab", name="Annotate").click()
    page.locator("#fa-q-next").click()
    page.locator("#fa-q-item .fa-side[data-run]").wait_for(timeout=10_000)
    assert PAYLOADS[1] in page.locator("#fa-q-item").inner_text()
    no_script_ran(page, "annotation queue")
    page.get_by_role("tab", name="Leaderboard").click()
    expect(page.locator("#fa-lb-table")).to_contain_text(ADAPTER, timeout=15_000)
    no_script_ran(page, "leaderboard")
    assert page.errors == []


def test_canary_secrets_reach_no_page_log_database_or_export(app, page):
    from fireact_core.formats import read_trajectories

    store, tmp = app["store"], app["tmp"]
    page.get_by_role("tab", name="Arena").click()
    page.locator("#fa-p-model input").fill("openai:gpt-4o-mini")
    page.locator("#fa-p-model input").press("Enter")
    run_battle(page, "What is the capital of France?")  # OpenAI stand-in → search → the key-echoing SerpAPI
    assert "[redacted]" in page.locator("#fa-side-a .fa-obs").first.inner_text()  # the echo happened, scrubbed
    run_battle(page, "What is the capital of France?")  # the OpenAI stand-in's 401 echoes the key it got
    assert "Incorrect API key provided:" in page.locator("#fa-side-a").inner_text()  # the echo, masked
    # Exports, as the admin (the token typed into the page) and refused with a wrong one.
    page.get_by_role("tab", name="Leaderboard").click()
    page.get_by_text("Export (owner / admin)").click()
    page.locator("#fa-lb-table").wait_for()
    page.locator('input[type="password"]:visible').fill(CANARIES["FIREACT_ADMIN_TOKEN"])
    for button in ("Export every table", "Export training set (trajectory JSONL)"):
        page.get_by_role("button", name=button).click()
        page.locator(".fa-msg-ok").last.wait_for(timeout=15_000)
    for server, name in (("hub", "HF_TOKEN"), ("openai", "OPENAI_API_KEY")):  # the stand-ins got the keys to echo
        assert any(CANARIES[name] in json.dumps(r["headers"]) for r in app[server].requests), (server, app[server].requests)
    html = page.content()
    payloads = page.evaluate("window.__faPayloads")
    assert payloads and any("process_completed" in p or "Both agents" in p for p in payloads)
    store._tx(lambda cur: cur.execute("CHECKPOINT"))
    exports = [p for p in (tmp / "exports").rglob("*") if p.is_file()]
    assert {p.suffix for p in exports} >= {".parquet", ".jsonl"}
    texts = {"page HTML": html, "page payloads": "\n".join(payloads), "HTTP bodies": "\n".join(page.bodies),
             "log": app["log"].getvalue(), "database file": _raw(tmp / "app.duckdb"), "database rows": _rows(store)}
    for p in exports:
        texts[f"export {p.name}"] = _raw(p) + (_parquet(p) if p.suffix == ".parquet" else "")
        if p.name.startswith("training"):
            texts[f"export {p.name}"] += "".join(json.dumps(t.to_dict()) for t in read_trajectories(p))
    hub_lines = [line for line in texts["log"].splitlines() if "Hub" in line]
    # the Hub's failure was logged (huggingface_hub keeps the first line of its 400, not the echoing body)
    assert any("could not list Hub adapters" in line for line in hub_lines), hub_lines
    hits = {(where, name) for where, text in texts.items() for name, value in CANARIES.items() if value in text}
    assert hits == set()


def _raw(path: Path) -> str:
    data = path.read_bytes() + (Path(f"{path}.wal").read_bytes() if Path(f"{path}.wal").exists() else b"")
    return data.decode("latin-1")


def _rows(store: Any) -> str:
    """Every row of every table, as text (the file may compress strings)."""
    tables = [r["table_name"] for r in store._rows("SELECT table_name FROM information_schema.tables")]
    return "\n".join(json.dumps(r, default=str) for t in tables for r in store._rows(f'SELECT * FROM "{t}"'))


def _parquet(path: Path) -> str:
    import duckdb

    con = duckdb.connect()
    try:
        return "\n".join(json.dumps(r, default=str) for r in con.execute("SELECT * FROM read_parquet(?)",
                                                                          [str(path)]).fetchall())
    finally:
        con.close()
