"""The Google (SerpAPI) tool against a local SerpAPI server (tests/servers.py)."""

from __future__ import annotations

import json

import pytest
from servers import FakeSerpAPI

from fireact_core.errors import ConfigError
from fireact_core.factory import load_tools
from fireact_core.tools.serpapi import extract_answer, load

KEY = "serp-test-key"
RESULTS = {
    "capital of France": {"answer_box": {"type": "organic_result", "answer": "Paris", "snippet": "Paris is the capital."},
                          "organic_results": [{"position": 1, "title": "Paris", "snippet": "Paris, France's capital"}]},
    "who wrote Hamlet": {"answer_box": {"type": "organic_result", "snippet": "Hamlet was written by William Shakespeare.",
                                        "snippet_highlighted_words": ["William Shakespeare"]},
                         "organic_results": [{"position": 1, "snippet": "Hamlet ..."}]},
    "Milhouse middle name": {"organic_results": [{"position": 1, "title": "Milhouse Van Houten - Wikipedia",
                                                  "link": "https://en.wikipedia.org/wiki/Milhouse_Van_Houten",
                                                  "snippet": "Milhouse Mussolini Van Houten is a fictional character."},
                                                 {"position": 2, "snippet": "second"}]},
}


@pytest.fixture
def serp(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SERPAPI_API_KEY", KEY)
    with FakeSerpAPI(RESULTS, api_key=KEY) as server:
        monkeypatch.setenv("SERPAPI_BASE_URL", server.url)
        yield server


def test_answer_box_answer_then_snippet_then_organic(serp):
    search = load()["search"]
    assert search("capital of France") == "Paris"
    assert search("who wrote Hamlet") == "Hamlet was written by William Shakespeare."
    assert search("Milhouse middle name") == "Milhouse Mussolini Van Houten is a fictional character."
    assert search("no such thing xyzzy") == "No results found for no such thing xyzzy."
    q = serp.requests[0]["query"]
    assert q["engine"] == "google" and q["q"] == "capital of France" and q["gl"] == "us" and q["hl"] == "en"


def test_highlighted_words_fallback():
    assert extract_answer({"answer_box": {"snippet_highlighted_words": ["42"]}}) == "42"
    assert extract_answer({"organic_results": []}) is None


def test_results_are_cached_on_disk_without_the_key(serp, tmp_path):
    search = load()["search"]
    assert search("capital of France") == "Paris"
    assert search("capital  of France") == "Paris"  # same query after whitespace normalisation
    assert load()["search"]("capital of France") == "Paris"  # a new tool instance reads the disk
    assert len(serp.requests) == 1
    files = list((tmp_path / "cache" / "serpapi").glob("*.json"))
    assert len(files) == 1
    text = files[0].read_text()
    assert KEY not in text and json.loads(text)["answer"] == "Paris"


def test_missing_key_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("SERPAPI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="SERPAPI_API_KEY"):
        load_tools("google")


def test_invalid_key_is_a_failed_step_without_the_key(serp, monkeypatch):
    monkeypatch.setenv("SERPAPI_API_KEY", "wrong-secret-key")
    result = load_tools("google").run("search", "capital of France")
    assert result.error is not None and "HTTP 401" in result.error and "Invalid API key" in result.error
    assert "wrong-secret-key" not in result.observation


@pytest.mark.parametrize(("fault", "reason"), [("malformed", "malformed JSON"), ("429", "HTTP 429")])
def test_service_failures_become_failed_steps(fault, reason, monkeypatch, tmp_path):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path))
    with FakeSerpAPI(RESULTS, api_key=KEY, fault=fault) as server:
        tools = load_tools("google", api_key=KEY, base_url=server.url)
        result = tools.run("search", "capital of France")
        assert result.error is not None and reason in result.error
        assert KEY not in result.error
        if fault == "429":
            assert len(server.requests) == 3  # retried twice, then gave up
    assert not (tmp_path / "serpapi").exists() or not list((tmp_path / "serpapi").glob("*.json"))  # failures not cached
