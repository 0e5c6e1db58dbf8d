"""A scripted stand-in world for tests, benchmarks and `python app.py --fake`: no model weights.

Models are `FakeModel`s whose replies are functions of the conversation: search the
question's key phrase, then answer from the observation. Special model specs exercise the
failure paths: `fake:raise` (a bug: RuntimeError), `fake:down` (a `BackendError`, as when an
endpoint is down), `fake:slow` (0.2 s per call). Each search tool has a fake (`fake_tools(name)`):
the offline world's answers from `ARTICLES`, Wikipedia's and Google's from `WEB_ARTICLES` (a few
real facts for the HotpotQA and Bamboogle questions it offers with them); Google needs
`SERPAPI_API_KEY` here too, as the real one does. The
replies follow either prompt format (chat or scratchpad) and accept a decoding constraint
(`AppFakeModel`), so every prompting setup of the arena runs on them.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fireact_core.backends.base import BackendError, Completion, Message
from fireact_core.backends.fake import FakeModel
from fireact_core.tools.base import Toolbox
from space.choices import DEFAULT_TOOL
from space.config import AppConfig
from space.defaults import DefaultSources
from space.loading import SearchTools, serpapi_key
from space.questions import Question, QuestionBank

XSS = '<img src=x onerror="window.__fireactXss=1"><script>window.__fireactXss=2</script>'
ARTICLES = {
    "france": "France is a country in Western Europe. Its capital is Paris.",
    "paris": "Paris is the capital and largest city of France. The Seine flows through Paris.",
    "seine": "The Seine is a river in northern France. It flows through Paris into the English Channel.",
    "mallory": f"Mallory's page says: {XSS} and nothing else.",
}
WEB_ARTICLES = {
    "scott derrickson": "Scott Derrickson (born July 16, 1966) is an American filmmaker.",
    "ed wood": "Edward Davis Wood Jr. (1924 – 1978) was an American filmmaker.",
    "citibank": "Citibank was founded in 1812 as the City Bank of New York. James Madison was president then.",
}
QUESTIONS = [
    Question("fake-1", "What is the capital of France?", "Paris", "world"),
    Question("fake-2", "Which river flows through the capital of France?", "Seine", "world"),
    Question("fake-3", "What does Mallory's page say?", "nothing", "world"),
    # HotpotQA's first dev question and one of Bamboogle's: offered with Wikipedia and Google
    Question("fake-hp-1", "Were Scott Derrickson and Ed Wood of the same nationality?", "yes", "hotpotqa"),
    Question("fake-bb-1", "Who was president of the United States in the year that Citibank was founded?",
             "James Madison", "bamboogle"),
]
ANSWERS = {"capital of france": "Paris", "river": "Seine", "mallory": "nothing", "scott derrickson": "yes",
           "citibank": "James Madison"}
TOPICS = {"mallory": "Mallory", "river": "Seine", "capital of france": "France", "scott derrickson": "Scott Derrickson",
          "citibank": "Citibank"}


def _searcher(articles: dict[str, str]) -> Any:
    def search(query: str) -> str:
        """Search the fake encyclopedia for an article."""
        q = query.lower()
        for key, text in articles.items():
            if key in q:
                return text
        return f"Could not find [{query}]. Similar: {list(articles)}."

    return search


search = _searcher(ARTICLES)


def lookup(keyword: str) -> str:
    """Look up a keyword in the current article."""
    return f"(Result 1 / 1) {keyword} is mentioned once."


def fake_tools(name: str = DEFAULT_TOOL) -> Toolbox:
    """The fake of the named search tool: the world's `ARTICLES` for `corpus`, `WEB_ARTICLES` for the web tools."""
    if name == "google":
        return Toolbox({"search": _searcher(WEB_ARTICLES)}, timeout_s=5)
    return Toolbox({"search": search if name != "wikipedia" else _searcher(WEB_ARTICLES), "lookup": lookup},
                   timeout_s=5)


def fake_search_tools(default: str | None = None) -> SearchTools:
    """The fake tools by name, offered as the real ones are (Google only with `SERPAPI_API_KEY`); no probes."""
    return SearchTools(default, loaders={n: functools.partial(fake_tools, n) for n in ("corpus", "wikipedia", "google")},
                       checks={"google": serpapi_key}, probes={})


def _question(messages: Sequence[Message]) -> str:
    text = messages[0]["content"]
    m = re.findall(r"Question: (.*)", text)
    return (m[-1] if m else text).strip()


def _topic(question: str) -> str:
    q = question.lower()
    return next((topic for key, topic in TOPICS.items() if key in q), question)


def scripted_reply(messages: Sequence[Message], delay_s: float = 0.0) -> str:
    """Search the question's topic once, then finish with the answer the fake world knows.

    In the chat format an Observation is a user turn; in the scratchpad format it is inline in the
    last (assistant) turn, which the agent opened with `Thought:` for the reply to continue."""
    if delay_s:
        time.sleep(delay_s)
    q = _question(messages)
    searched = any(m["content"].startswith("Observation") if m["role"] == "user" else "\nObservation:" in m["content"]
                   for m in messages[1:])
    if not searched:
        reply = f"Thought: I need to search {_topic(q)}.\nAction: search[{_topic(q)}]"
    else:
        answer = next((a for k, a in ANSWERS.items() if k in q.lower()), "unknown")
        reply = f"Thought: The observation answers it.\nAction: finish[{answer}]"
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and last["content"].endswith("Thought:"):
        return reply.removeprefix("Thought:")  # continue the turn the agent opened
    return reply


class AppFakeModel(FakeModel):
    """The app's scripted model: a `FakeModel` that takes a decoding constraint and ignores it.

    The arena's prompted side asks for format-constrained decoding by default, and the agent passes
    a constraint only to a model that declares `supports_constraint`. The scripted replies are
    already one Thought line and one well-formed Action, so a grammar would change nothing in them:
    accepting it and ignoring it is honest here (a real local model is held to it,
    `fireact_core.backends.local`). The constraints it was given are kept in `constraints`.
    """

    supports_constraint = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.constraints: list[object] = []

    def stream(self, messages: Sequence[Message], *, stop: Sequence[str] = (), max_tokens: int = 256,
               constraint: object | None = None) -> Iterator[str | Completion]:
        self.constraints.append(constraint)
        return super().stream(messages, stop=stop, max_tokens=max_tokens)


def fake_loader(spec: str, adapter: str | None = None) -> AppFakeModel:
    """A fresh scripted `AppFakeModel` per call (FakeModels keep per-run state)."""
    kind = spec.split(":", 1)[-1] if ":" in spec else ""
    name = spec + (f"+{adapter}" if adapter else "")
    if kind == "raise":
        return AppFakeModel([RuntimeError("the fake backend exploded")], name=name)
    if kind == "down":
        return AppFakeModel([BackendError("fake endpoint is down (HTTP 503)")], name=name)
    if kind == "leaky":  # an SDK error that echoes the key it was given
        key = os.environ.get("OPENAI_API_KEY", "")
        return AppFakeModel([BackendError(f"HTTP 401: Incorrect API key provided: {key}")], name=name)
    delay = 0.2 if kind == "slow" else 0.0
    return AppFakeModel([lambda m: scripted_reply(m, delay)] * 40, name=name)


def fake_config(db_path: str | Path | None, **overrides: Any) -> AppConfig:
    """An `AppConfig` on the fake world: scripted models, a fake of each search tool, a few questions per tool."""
    kw: dict[str, Any] = dict(
        db_path=str(db_path) if db_path is not None else None,
        load_model=fake_loader,
        make_tools=fake_search_tools(),
        questions=lambda: QuestionBank(list(QUESTIONS)),
        prompted_choices=lambda: [("Fake scripted model", "fake:scripted"), ("Fake slow model", "fake:slow"),
                                  ("Fake raising model", "fake:raise")],
        finetuned_choices=lambda: [("Fake fine-tuned", "model:fake:tuned"), ("Fake endpoint down", "model:fake:down")],
        hub_choices=lambda: [],
        more_questions=None,
        defaults=DefaultSources("", probe=lambda: False),
        model_limits={"fake": 64},
        tick_s=0.05,
        preload=False,  # the tests that want it say so
    )
    kw.update(overrides)
    return AppConfig(**kw)
