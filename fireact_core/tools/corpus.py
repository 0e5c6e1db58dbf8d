"""`search` and `lookup` over a local corpus of `{title, text}` articles: the offline default.

The corpus is a JSONL file (one `{"title", "text"}` object a line) or a Parquet file with
those columns; by default the offline world's `data/world/corpus.jsonl`. Its bm25s index is
built once and cached under `$FIREACT_CACHE/corpus/<file hash>/` (default
`~/.cache/fireact/`); in a process, each file is read and indexed once and shared.

The tools behave like ReAct's Wikipedia tools:
- `search[query]`: the article whose title matches the query exactly, else the best bm25
  hit; "Could not find [query]. Similar: [...]" when no article shares a word with it.
  The article becomes the current page.
- `lookup[keyword]`: the next sentence of the current page containing the keyword, as
  `(Result i / N) sentence`.

`load()` returns a fresh pair of tools with their own current page, so each agent (one
Toolbox each) browses on its own.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fireact_core.errors import ConfigError, FormatError
from fireact_core.jsonl import iter_jsonl
from fireact_core.models import cache_root
from fireact_core.tools.base import ToolError

DEFAULT_CORPUS = "world/corpus.jsonl"  # under a data folder (see fireact_core.tasks.data_dirs)
INDEX_VERSION = 1  # bump when the tokenisation changes, to ignore older caches
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class Article:
    title: str
    text: str


def resolve_path(path: str | Path | None = None) -> Path:
    """The corpus file: `path` when given, else the first data folder holding world/corpus.jsonl."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"corpus file not found: {p}")
        return p
    from fireact_core import paths
    from fireact_core.tasks import data_dirs

    dirs = data_dirs()
    for d in dirs:
        if (d / DEFAULT_CORPUS).is_file():
            return d / DEFAULT_CORPUS
    where = "\n".join(f"  - {d / DEFAULT_CORPUS}" for d in dirs)
    raise ConfigError(f"the offline corpus was not found. Looked for:\n{where}\n"
                      "Generate the offline world first (it writes data/world/corpus.jsonl), "
                      "or name a corpus with --tools corpus:PATH (JSONL or Parquet of {title, text}); "
                      f"{paths.where()}.")


def read_articles(path: Path) -> list[Article]:
    """Articles of a JSONL or Parquet corpus; `FormatError` names the file and line (or row)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=["title", "text"])
        except (OSError, ValueError, KeyError) as e:
            raise FormatError(f"cannot read Parquet with columns title, text: {e}", path=str(path)) from None
        rows = table.to_pylist()
        out = []
        for i, r in enumerate(rows):
            if not isinstance(r["title"], str) or not isinstance(r["text"], str):
                raise FormatError(f"row {i}: title and text must be strings", path=str(path))
            out.append(Article(r["title"], r["text"]))
        return out
    out = []
    for n, r in iter_jsonl(path):
        if not isinstance(r, dict) or not isinstance(r.get("title"), str) or not isinstance(r.get("text"), str):
            raise FormatError("an article needs string fields 'title' and 'text'", path=str(path), line=n)
        out.append(Article(r["title"], r["text"]))
    return out


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _norm_title(s: str) -> str:
    return " ".join(s.strip().strip("\"'").lower().split())


def split_sentences(text: str) -> list[str]:
    return [s.strip() for p in text.split("\n") for s in _SENTENCE_RE.split(p) if s.strip()]


class CorpusIndex:
    """The articles of one corpus file and their bm25s index (read-only, shared)."""

    def __init__(self, path: Path, cache_dir: Path | None = None) -> None:
        import bm25s

        self.path = path
        self.articles = read_articles(path)
        if not self.articles:
            raise FormatError("the corpus has no articles", path=str(path))
        self.by_title: dict[str, int] = {}
        for i, a in enumerate(self.articles):
            self.by_title.setdefault(_norm_title(a.title), i)
        self.digest = file_hash(path)
        where = (cache_dir or cache_root() / "corpus") / f"{self.digest[:24]}-v{INDEX_VERSION}"
        if (where / "params.index.json").is_file():
            self.bm25 = bm25s.BM25.load(str(where), show_progress=False)
            self.cached = True
        else:
            self.bm25 = bm25s.BM25()
            self.bm25.index(self._tokenize([f"{a.title}\n{a.text}" for a in self.articles]), show_progress=False)
            self._save(where)
            self.cached = False

    def _save(self, where: Path) -> None:
        where.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=where.parent, prefix=".tmp-"))
        try:
            self.bm25.save(str(tmp), show_progress=False)
            tmp.rename(where)  # atomic; another process may have won the race, which is fine
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _tokenize(texts: list[str]) -> Any:
        import bm25s
        import Stemmer

        return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)

    def exact(self, query: str) -> int | None:
        return self.by_title.get(_norm_title(query))

    def top(self, query: str, k: int = 5) -> list[int]:
        """Indices of the best bm25 hits with a positive score, best first."""
        import bm25s
        import Stemmer

        tokens = bm25s.tokenize([query], stopwords="en", stemmer=Stemmer.Stemmer("english"),
                                return_ids=False, show_progress=False)
        if not tokens or not tokens[0]:
            return []
        docs, scores = self.bm25.retrieve(tokens, k=min(k, len(self.articles)), show_progress=False)
        return [int(d) for d, s in zip(docs[0], scores[0]) if s > 0]

    def similar_titles(self, query: str, n: int = 5) -> list[str]:
        titles = [a.title for a in self.articles]
        return difflib.get_close_matches(query, titles, n=n, cutoff=0.5)


@functools.lru_cache(maxsize=8)
def _index(path: str, mtime_ns: int, size: int, cache_dir: str | None) -> CorpusIndex:
    return CorpusIndex(Path(path), Path(cache_dir) if cache_dir else None)


def get_index(path: str | Path | None = None, cache_dir: str | Path | None = None) -> CorpusIndex:
    """The (process-wide, shared) index of a corpus file; rebuilt when the file changes."""
    p = resolve_path(path).resolve()
    st = p.stat()
    return _index(str(p), st.st_mtime_ns, st.st_size, str(cache_dir) if cache_dir else None)


class CorpusBrowser:
    """One agent's view of a corpus: `search` and `lookup` with its own current page."""

    def __init__(self, index: CorpusIndex, sentences: int = 5) -> None:
        self.index = index
        self.sentences = sentences
        self.page: Article | None = None
        self._lookup_key: str | None = None
        self._lookup_hits: list[str] = []
        self._lookup_at = 0

    def search(self, query: str) -> str:
        """Search the encyclopedia for an entity or topic; returns the start of its best article."""
        q = query.strip()
        if not q:
            raise ToolError("search needs a query, e.g. search[Marie Curie]")
        i = self.index.exact(q)
        if i is None:
            hits = self.index.top(q)
            i = hits[0] if hits else None
        if i is None:
            similar = self.index.similar_titles(q)
            return f"Could not find {q}. Similar: {similar}."
        self.page = self.index.articles[i]
        self._lookup_key = None
        return " ".join(split_sentences(self.page.text)[: self.sentences])

    def lookup(self, keyword: str) -> str:
        """Look up a keyword in the current article (after a search); returns the next sentence containing it."""
        if self.page is None:
            return "No page is open: search for an article first."
        key = keyword.strip().lower()
        if not key:
            raise ToolError("lookup needs a keyword, e.g. lookup[born]")
        if key != self._lookup_key:
            self._lookup_key = key
            self._lookup_hits = [s for s in split_sentences(self.page.text) if key in s.lower()]
            self._lookup_at = 0
        if self._lookup_at >= len(self._lookup_hits):
            return "No more results."
        self._lookup_at += 1
        return f"(Result {self._lookup_at} / {len(self._lookup_hits)}) {self._lookup_hits[self._lookup_at - 1]}"


def load(spec: str = "", *, path: str | Path | None = None, cache_dir: str | Path | None = None,
         sentences: int = 5, **_: Any) -> dict[str, Callable[[str], str]]:
    """`corpus[:PATH]` tool spec → `{"search": fn, "lookup": fn}` sharing one fresh current page."""
    browser = CorpusBrowser(get_index(spec or path, cache_dir), sentences=sentences)
    return {"search": browser.search, "lookup": browser.lookup}


__all__ = ["Article", "CorpusBrowser", "CorpusIndex", "get_index", "load", "read_articles", "resolve_path"]
