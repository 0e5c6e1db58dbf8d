"""The offline search tool: bm25s over a tiny tmp corpus, ReAct-style search and lookup."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fireact_core.errors import ConfigError, FormatError
from fireact_core.factory import load_tools
from fireact_core.tools import corpus
from fireact_core.tools.corpus import get_index, load

ARTICLES = [
    {"title": "Velmora Library", "text": "The Velmora Library is a public library in Ostrand. It was designed by the "
                                          "architect Idris Kallum. It opened in 1931. The library holds two million books."},
    {"title": "Idris Kallum", "text": "Idris Kallum (1888-1960) was an architect born in Tessary. He worked mostly in "
                                      "Ostrand. Kallum also designed the Ostrand Opera House."},
    {"title": "Ostrand", "text": "Ostrand is the capital of Norvale. It lies on the river Ost.\nOstrand has an opera house."},
    {"title": "Tessary", "text": "Tessary is a coastal town in Norvale, known for its shipyards."},
]


@pytest.fixture
def corpus_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(a) + "\n" for a in ARTICLES))
    return path


def test_search_exact_title_top_hit_and_not_found(corpus_file):
    tools = load(str(corpus_file))
    search = tools["search"]
    assert search("Idris Kallum") == ARTICLES[1]["text"]
    assert search('  "ostrand" ') == "Ostrand is the capital of Norvale. It lies on the river Ost. Ostrand has an opera house."
    assert search("where was the architect born tessary") == ARTICLES[1]["text"]  # best bm25 hit
    assert search("coastal shipyards") == ARTICLES[3]["text"]
    assert search("quantum chromodynamics") == "Could not find quantum chromodynamics. Similar: []."
    assert search("Velmora Librar") == ARTICLES[0]["text"]  # a near miss still finds the page by its words
    assert search("Tesary") == "Could not find Tesary. Similar: ['Tessary']."


def test_search_returns_the_first_five_sentences(tmp_path, monkeypatch):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"title": "Long", "text": " ".join(f"Sentence {i} is here." for i in range(9))}) + "\n")
    assert load(str(path))["search"]("Long") == " ".join(f"Sentence {i} is here." for i in range(5))


def test_sentences_option(corpus_file):
    search = load(str(corpus_file), sentences=1)["search"]
    assert search("Velmora Library") == "The Velmora Library is a public library in Ostrand."


def test_lookup_iterates_over_the_current_page(corpus_file):
    tools = load(str(corpus_file))
    assert tools["lookup"]("architect").startswith("No page is open")
    tools["search"]("Idris Kallum")
    assert tools["lookup"]("Ostrand") == "(Result 1 / 2) He worked mostly in Ostrand."
    assert tools["lookup"]("ostrand") == "(Result 2 / 2) Kallum also designed the Ostrand Opera House."
    assert tools["lookup"]("Ostrand") == "No more results."
    assert tools["lookup"]("born") == "(Result 1 / 1) Idris Kallum (1888-1960) was an architect born in Tessary."
    tools["search"]("Velmora Library")  # a new page restarts the lookup
    assert tools["lookup"]("architect") == "(Result 1 / 1) It was designed by the architect Idris Kallum."


def test_each_load_has_its_own_current_page(corpus_file):
    a, b = load(str(corpus_file)), load(str(corpus_file))
    a["search"]("Tessary")
    assert b["lookup"]("town").startswith("No page is open")
    b["search"]("Ostrand")
    assert a["lookup"]("town") == "(Result 1 / 1) Tessary is a coastal town in Norvale, known for its shipyards."
    assert get_index(corpus_file) is get_index(corpus_file)  # one index per file in a process


def test_index_is_cached_by_file_hash(corpus_file, tmp_path):
    first = get_index(corpus_file)
    assert not first.cached
    cached = list((tmp_path / "cache" / "corpus").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith(first.digest[:24])
    corpus._index.cache_clear()
    again = get_index(corpus_file)
    assert again is not first and again.cached
    assert load(str(corpus_file))["search"]("coastal shipyards") == ARTICLES[3]["text"]
    # a changed file is a new index
    corpus_file.write_text(corpus_file.read_text() + json.dumps({"title": "Norvale", "text": "Norvale is a country."}) + "\n")
    changed = get_index(corpus_file)
    assert not changed.cached and changed.digest != first.digest
    assert load(str(corpus_file))["search"]("Norvale") == "Norvale is a country."


def test_parquet_corpus(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "corpus.parquet"
    pq.write_table(pa.Table.from_pylist(ARTICLES), path)
    assert load(str(path))["search"]("Tessary") == ARTICLES[3]["text"]


def test_through_the_tool_factory(corpus_file):
    box = load_tools(f"corpus:{corpus_file}")
    assert box.names() == ["search", "lookup"]
    assert "search[...]" in box.describe() and "lookup[...]" in box.describe()
    assert box.run("search", "Ostrand").observation.startswith("Ostrand is the capital")
    empty = box.run("search", "  ")
    assert empty.error and "needs a query" in empty.observation


def test_bad_corpus_files(tmp_path, monkeypatch):
    monkeypatch.setenv("FIREACT_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ARTICLES[0]) + "\n" + json.dumps({"title": "No text"}) + "\n")
    with pytest.raises(FormatError, match=re.escape(f"{bad}:2: ")):
        load(str(bad))
    bad.write_text(json.dumps(ARTICLES[0]) + "\n{broken\n")
    with pytest.raises(FormatError, match=re.escape(f"{bad}:2: invalid JSON")):
        load(str(bad))
    with pytest.raises(ConfigError, match="corpus file not found"):
        load(str(tmp_path / "missing.jsonl"))


def test_default_corpus_missing_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("FIREACT_DATA", str(tmp_path))
    monkeypatch.setattr("fireact_core.tasks.ROOT", tmp_path / "project")
    with pytest.raises(ConfigError) as e:
        load()
    assert "world/corpus.jsonl" in str(e.value) and "--tools corpus:PATH" in str(e.value)
