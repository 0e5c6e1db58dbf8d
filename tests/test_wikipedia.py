"""The Wikipedia tools against a local MediaWiki API server (tests/servers.py)."""

from __future__ import annotations

import pytest
from servers import FakeWikipedia

from fireact_core.errors import ConfigError
from fireact_core.factory import load_tools
from fireact_core.tools.base import ToolError
from fireact_core.tools.wikipedia import load, split_sentences

PAGES = {
    "Milhouse Van Houten": (
        "Milhouse Mussolini Van Houten is a recurring character in the Fox animated television series The Simpsons. "
        "He is voiced by Pamela Hayden and was created by Matt Groening. Milhouse is Bart Simpson's best friend.\n\n"
        "== Role in The Simpsons ==\n"
        "Milhouse first appeared in a 1988 commercial for Butterfinger. Groening named him after Richard Nixon, "
        "whose middle name was Milhous. He lives with his divorced parents in Springfield. "
        "His father Kirk Van Houten works at a cracker factory.\n"
        "Trivia\n"
        "The name Milhous was chosen because it was the most unfortunate name Groening could think of."
    ),
    "Mercury (planet)": "Mercury is the first planet from the Sun. It is the smallest planet in the Solar System.",
    "Mercury (element)": "Mercury is a chemical element with the symbol Hg. It is a heavy, silvery metal.",
    "Mercury": "Mercury may refer to:\nMercury (planet), the first planet\nMercury (element), a metal",
}


@pytest.fixture
def wiki():
    with FakeWikipedia(PAGES, redirects={"Milhouse": "Milhouse Van Houten"}) as server:
        yield server


def test_search_returns_first_five_sentences(wiki):
    tools = load(api_url=wiki.url)
    obs = tools["search"]("Milhouse Van Houten")
    assert obs.startswith("Milhouse Mussolini Van Houten is a recurring character")
    assert obs.count(".") == 5  # five sentences, heading and two-word line dropped
    assert "==" not in obs and "Trivia" not in obs
    q = wiki.requests[-1]["query"]
    assert q["prop"] == "extracts" and q["explaintext"] == "1" and q["titles"] == "Milhouse Van Houten"


def test_search_follows_redirects_and_normalisation(wiki):
    tools = load(api_url=wiki.url)
    assert tools["search"]("Milhouse").startswith("Milhouse Mussolini")
    assert tools["search"]("mercury (planet)").startswith("Mercury is the first planet")


def test_missing_page_lists_similar_titles(wiki):
    tools = load(api_url=wiki.url)
    obs = tools["search"]("Kirk Van Houten")
    assert obs == "Could not find Kirk Van Houten. Similar: ['Milhouse Van Houten']."
    assert wiki.requests[-1]["query"]["list"] == "search"


def test_disambiguation_page_lists_similar_titles(wiki):
    obs = load(api_url=wiki.url)["search"]("Mercury")
    assert obs.startswith("Could not find Mercury. Similar: [")
    assert "'Mercury (planet)'" in obs and "'Mercury (element)'" in obs


def test_case_insensitive_title_found_through_search(wiki):
    obs = load(api_url=wiki.url)["search"]("milhouse van houten")  # extracts: "Milhouse van houten" is missing
    assert obs.startswith("Milhouse Mussolini")


def test_lookup_walks_matching_sentences(wiki):
    tools = load(api_url=wiki.url)
    assert tools["lookup"]("Nixon").startswith("There is no page")
    tools["search"]("Milhouse Van Houten")
    first = tools["lookup"]("groening")
    assert first == "(Result 1 / 3) He is voiced by Pamela Hayden and was created by Matt Groening."
    assert tools["lookup"]("groening").startswith("(Result 2 / 3) Groening named him after Richard Nixon")
    assert tools["lookup"]("groening").startswith("(Result 3 / 3) The name Milhous was chosen")
    assert tools["lookup"]("groening") == "No more results."
    assert tools["lookup"]("Butterfinger").startswith("(Result 1 / 1)")  # a new keyword restarts
    tools["search"]("Nobody At All")  # a failed search keeps the current page, as in ReAct
    assert tools["lookup"]("cracker").startswith("(Result 1 / 1) His father Kirk")


@pytest.mark.parametrize(("fault", "reason"), [
    ("malformed", "malformed JSON"),
    ("status", "HTTP 503"),
    ("apierror", "badvalue"),
])
def test_service_failures_become_failed_steps(fault, reason, monkeypatch):
    with FakeWikipedia(PAGES, fault=fault) as server:
        monkeypatch.setenv("WIKIPEDIA_API_URL", server.url)
        toolbox = load_tools("wikipedia", timeout_s=10)
        result = toolbox.run("search", "Milhouse")
        if fault == "status":
            assert len(server.requests) == 3  # 503 retried twice (Retry-After: 0), then given up
    assert result.error is not None and reason in result.error
    assert result.observation.startswith("Tool error: search failed:")


def test_timeout_is_a_failed_step():
    # A listening socket that never answers.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        tools = load(api_url=f"http://127.0.0.1:{s.getsockname()[1]}/w/api.php", timeout=0.3)
        with pytest.raises(ToolError, match=r"did not answer within 0\.3 s"):
            tools["search"]("Milhouse")
    finally:
        s.close()


def test_bad_language_code():
    with pytest.raises(ConfigError, match="language code"):
        load("not a language!")


def test_split_sentences_like_react():
    text = "== Heading ==\nShort line\nA first one. A second one. A third.\n\nEnd here now."
    assert split_sentences(text) == ["A first one.", "A second one.", "A third.", "End here now."]
