"""`google`: the paper's search tool, Google through SerpAPI.

`search[query]` returns, as the FireAct code does, the answer box's `answer`, else its
`snippet`, else its first highlighted words, else the first organic result's `snippet`.
Replies are cached on disk under `$FIREACT_CACHE/serpapi/` (one JSON file per query and
locale, holding only the fields used, never the key), so a rerun costs no searches.

The key comes from `$SERPAPI_API_KEY` (or the `api_key` option); without one, `load`
raises `ConfigError` naming the variable before any work starts. `$SERPAPI_BASE_URL`
points it elsewhere (tests use a local server). Failures raise `ToolError` with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError
from fireact_core.models import cache_root
from fireact_core.tools._http import get_json
from fireact_core.tools.base import ToolError, ToolFn

DEFAULT_BASE_URL = "https://serpapi.com"
NO_RESULTS = "Google hasn't returned any results"


def extract_answer(res: dict[str, Any]) -> str | None:
    """The paper's choice of text from a SerpAPI Google reply; None when it has none."""
    box = res.get("answer_box")
    if isinstance(box, dict):
        if box.get("answer"):
            return str(box["answer"])
        if box.get("snippet"):
            return str(box["snippet"])
        words = box.get("snippet_highlighted_words")
        if isinstance(words, list) and words:
            return str(words[0])
    organic = res.get("organic_results")
    if isinstance(organic, list) and organic and isinstance(organic[0], dict) and organic[0].get("snippet"):
        return str(organic[0]["snippet"])
    return None


class GoogleSearch:
    """SerpAPI's Google engine with an on-disk cache."""

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL, cache_dir: Path | None = None,
                 timeout: float = 20.0, gl: str = "us", hl: str = "en", use_cache: bool = True) -> None:
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.cache_dir = cache_dir if cache_dir is not None else cache_root() / "serpapi"
        self.timeout = timeout
        self.params = {"engine": "google", "google_domain": "google.com", "gl": gl, "hl": hl}
        self.use_cache = use_cache

    def search(self, query: str) -> str:
        """Search Google and return the answer box, or the top result's snippet."""
        query = " ".join(query.split())
        if not query:
            return "Please give a query to search for, e.g. search[capital of France]."
        params = {**self.params, "q": query}
        path = self.cache_dir / f"{hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]}.json"
        if self.use_cache and path.is_file():
            try:
                cached = json.loads(path.read_text(encoding="utf-8"))
                return self._observation(query, cached["answer"])
            except (json.JSONDecodeError, KeyError, TypeError, OSError):
                pass  # a damaged cache entry: fetch again and overwrite it
        res = get_json(f"{self.base_url}/search.json", {**params, "api_key": self._key}, service="SerpAPI",
                       timeout=self.timeout, secrets=[self._key])
        if not isinstance(res, dict):
            raise ToolError("SerpAPI returned malformed JSON: not an object")
        error = res.get("error")
        if error and NO_RESULTS not in str(error):
            raise ToolError(f"SerpAPI: {error}")
        answer = None if error else extract_answer(res)
        if self.use_cache:
            self._store(path, {"params": params, "answer": answer,
                               "answer_box": res.get("answer_box"), "organic_results": (res.get("organic_results") or [])[:3]})
        return self._observation(query, answer)

    @staticmethod
    def _observation(query: str, answer: str | None) -> str:
        return answer if answer is not None else f"No results found for {query}."

    def _store(self, path: Path, record: dict[str, Any]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache must not fail the search


def load(spec: str = "", **opts: Any) -> dict[str, ToolFn]:
    """`google` → {"search"}. Options: api_key, base_url, cache_dir, timeout, gl, hl, use_cache."""
    key = opts.get("api_key") or os.environ.get("SERPAPI_API_KEY")
    if not key:
        raise ConfigError("the google tool needs a SerpAPI key: set SERPAPI_API_KEY (get one at https://serpapi.com)")
    base_url = opts.get("base_url") or os.environ.get("SERPAPI_BASE_URL") or DEFAULT_BASE_URL
    cache_dir = Path(opts["cache_dir"]) if opts.get("cache_dir") else None
    google = GoogleSearch(str(key), base_url=base_url, cache_dir=cache_dir, timeout=float(opts.get("timeout", 20.0)),
                          gl=str(opts.get("gl", "us")), hl=str(opts.get("hl", "en")),
                          use_cache=bool(opts.get("use_cache", True)))
    return {"search": google.search}
