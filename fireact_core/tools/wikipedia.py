"""`wikipedia`: ReAct's Wikipedia tools over the MediaWiki Action API.

- `search[entity]`: the first five sentences of the entity's page; when there is no such
  page (or it is a disambiguation page), `Could not find <entity>. Similar: [<titles>].`
- `lookup[keyword]`: the next sentence of the last page found that contains the keyword,
  as `(Result i / N) <sentence>`; `No more results.` once they run out.

As in ReAct's `wikienv`, a page is cut into sentences at ". ", headings and lines of two
words or fewer are dropped, and `lookup` walks the sentences of the page that the last
successful `search` found. The tools share that state, so build one set per trajectory
(`load()` is cheap). The API is `$WIKIPEDIA_API_URL`, or `https://<lang>.wikipedia.org/w/api.php`
for the spec `wikipedia[:<lang>]` (English by default). Service failures and malformed
replies raise `ToolError`, which the toolbox turns into a failed step with the reason.
"""

from __future__ import annotations

import os
import re
from typing import Any

from fireact_core.errors import ConfigError
from fireact_core.tools._http import get_json
from fireact_core.tools.base import ToolError, ToolFn

SENTENCES = 5
SIMILAR = 5
_HEADING_RE = re.compile(r"^=+\s*.*?\s*=+$")


class Wikipedia:
    """The search/lookup pair with the state they share (the current page and lookup cursor)."""

    def __init__(self, api_url: str, *, timeout: float = 10.0, sentences: int = SENTENCES) -> None:
        self.api_url = api_url
        self.timeout = timeout
        self.sentences = sentences
        self.title: str | None = None
        self.page: list[str] | None = None  # sentences of the current page
        self.keyword: str | None = None
        self.hits: list[str] = []
        self.cursor = 0

    # --- the tools ----------------------------------------------------------------------
    def search(self, entity: str) -> str:
        """Search Wikipedia for an entity and return the first sentences of its page, or similar titles."""
        entity = entity.strip()
        if not entity:
            return "Please give an entity to search for, e.g. search[Albert Einstein]."
        page = self._extract(entity)
        if page is None:
            titles = self._similar(entity)
            exact = next((t for t in titles if t.lower() == entity.lower()), None)
            page = self._extract(exact) if exact else None
            if page is None:
                return f"Could not find {entity}. Similar: {titles[:SIMILAR]}."
        self.title, self.page = page
        self.keyword, self.hits, self.cursor = None, [], 0
        return " ".join(self.page[: self.sentences]) or f"The page {self.title} is empty."

    def lookup(self, keyword: str) -> str:
        """Return the next sentence containing the keyword in the current Wikipedia page."""
        keyword = keyword.strip()
        if self.page is None:
            return "There is no page to look up in yet: use search[entity] first."
        if keyword != self.keyword:
            self.keyword, self.cursor = keyword, 0
            self.hits = [s for s in self.page if keyword.lower() in s.lower()]
        if self.cursor >= len(self.hits):
            return "No more results."
        self.cursor += 1
        return f"(Result {self.cursor} / {len(self.hits)}) {self.hits[self.cursor - 1]}"

    # --- the API ------------------------------------------------------------------------
    def _query(self, **params: Any) -> dict[str, Any]:
        data = get_json(self.api_url, {"action": "query", "format": "json", "formatversion": "2", **params},
                        service="the Wikipedia API", timeout=self.timeout)
        if not isinstance(data, dict):
            raise ToolError("the Wikipedia API returned malformed JSON: not an object")
        if "error" in data:
            err = data["error"] if isinstance(data["error"], dict) else {"info": str(data["error"])}
            raise ToolError(f"the Wikipedia API refused the query: {err.get('code', 'error')}: {err.get('info', '')}")
        query = data.get("query", {})
        if not isinstance(query, dict):
            raise ToolError("the Wikipedia API returned malformed JSON: 'query' is not an object")
        return query

    def _extract(self, title: str) -> tuple[str, list[str]] | None:
        """(title, sentences) of the page called `title` (after redirects); None if missing or a disambiguation."""
        query = self._query(prop="extracts", explaintext="1", exsectionformat="wiki", redirects="1", titles=title)
        pages = query.get("pages")
        if not isinstance(pages, list) or not pages or not isinstance(pages[0], dict):
            raise ToolError("the Wikipedia API returned malformed JSON: no 'pages' list")
        page = pages[0]
        if page.get("missing") or page.get("invalid") or not isinstance(page.get("extract"), str):
            return None
        text = page["extract"]
        if "may refer to:" in text[:2000]:  # a disambiguation page: ReAct shows similar titles instead
            return None
        return str(page.get("title", title)), split_sentences(text)

    def _similar(self, entity: str) -> list[str]:
        query = self._query(list="search", srsearch=entity, srlimit=str(SIMILAR), srprop="")
        results = query.get("search", [])
        if not isinstance(results, list):
            raise ToolError("the Wikipedia API returned malformed JSON: 'search' is not a list")
        return [str(r["title"]) for r in results if isinstance(r, dict) and "title" in r]


def split_sentences(text: str) -> list[str]:
    """ReAct's split: paragraphs of more than two words, cut at ". ", each ending with a period."""
    sentences: list[str] = []
    for para in text.split("\n"):
        para = para.strip()
        if not para or _HEADING_RE.match(para) or len(para.split(" ")) <= 2:
            continue
        sentences += [s.strip() for s in para.split(". ") if s.strip()]
    return [s if s.endswith(".") else s + "." for s in sentences]


def load(spec: str = "", **opts: Any) -> dict[str, ToolFn]:
    """`wikipedia[:<lang>]` → {"search", "lookup"}. Options: api_url, timeout, sentences."""
    lang = spec.strip() or "en"
    if not re.fullmatch(r"[a-z][a-z\-]{1,11}", lang):
        raise ConfigError(f"wikipedia:{spec}: expected a language code such as en, de, fr")
    api_url = opts.get("api_url") or os.environ.get("WIKIPEDIA_API_URL") or f"https://{lang}.wikipedia.org/w/api.php"
    wiki = Wikipedia(api_url, timeout=float(opts.get("timeout", 10.0)), sentences=int(opts.get("sentences", SENTENCES)))
    return {"search": wiki.search, "lookup": wiki.lookup}
