"""The scripted teacher's policy: what to think and do next, given the question and the history.

For each question the teacher writes a *script* (the steps it would take with a clean tool)
and replays it against the history of the episode: a search whose observation is not the
article it expected (the noisy tool said "None" or replayed an earlier page) is retried,
alternately rephrased and repeated, with a thought that says what went wrong. So the policy
is a pure function of (question, mode, trial, history), and the same code drives the agent
loop step by step, exactly as an LLM teacher would.

Modes: `react` (search, read, search, finish), `cot` (one Thought, then finish),
`reflexion` (trial 0 makes a planned mistake and finishes wrong; later trials are right),
`reflexion-flat` (the training form: the mistake, then a Thought that reflects on it, then
the corrected search, all in one clean episode; see `teacher.py`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fireact_core.metrics import exact_match
from worldgen.generator import World
from worldgen.relations import FACT, NEED, NP, follow, value_text

KIND_WORD = {"film": "film", "book": "novel", "album": "album", "band": "band", "team": "team", "city": "city",
             "country": "country"}
PLACEHOLDER = {"person": ("that person",), "city": ("that city",), "organisation": ("that company", "it"),
               "band": ("that band",), "country": ("that country",)}
ATTR = {"film_year": "release years", "book_year": "publication years", "born": "birth years",
        "population": "populations", "formed": "formation years", "org_founded": "founding years",
        "team_founded": "founding years", "director": "directors", "author": "authors",
        "birth_city": "birthplaces", "country": "countries", "origin": "home cities", "band": "bands",
        "sport": "sports"}
YEARS = {"film_year", "book_year", "born", "formed", "org_founded", "team_founded"}
REFLECT = ("Let me do a reflection: ", "Wait, let me do a reflection. ",
           "Before answering, let me do a reflection and think about how to improve my strategy. ")


@dataclass
class Planned:
    """One step the teacher means to take with a clean tool."""

    thought: str
    action: str  # search | finish
    arg: str
    target: str = ""  # for a search: the title of the article it wants
    alts: list[str] = field(default_factory=list)  # other queries for the same article


@dataclass
class Script:
    steps: list[Planned]
    answer: str
    mistake: str = ""  # kind of planned mistake (reflexion trial 0 / flat)
    reflection: str = ""  # the lesson, as the reflexion loop records it
    reflect_at: int = -1  # flat mode: index of the step whose thought reflects


def _singular(s: str) -> str:
    return s[:-3] + "y" if s.endswith("ies") else s[:-1]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:] if s else s


def _join(parts: list[str]) -> str:
    """`a`, `a and then b`, `a, b and then c`."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" and then {parts[-1]}"


class Policy:
    """Scripts for one world; `search(query)` must be the clean corpus tool."""

    def __init__(self, world: World, search: Callable[[str], str]) -> None:
        self.world = world
        self._search = search
        self._cache: dict[str, str] = {}
        self.title_of: dict[str, str] = {}  # clean observation text -> article title
        self._mapped = False

    # --- the tool, as the teacher knows it ---------------------------------------------
    def clean(self, query: str) -> str:
        if query not in self._cache:
            self._cache[query] = self._search(query)
        return self._cache[query]

    def expected(self, title: str) -> str:
        obs = self.clean(title)
        self.title_of.setdefault(obs, title)
        return obs

    def rephrasings(self, title: str) -> list[str]:
        """Other queries that the clean tool answers with the same article."""
        e = self.world[title]
        words = [KIND_WORD.get(e.kind) or e.get("sub") or e.get("occupation", "").split()[-1]]
        if e.kind == "person":
            words.append("born")
        want = self.expected(title)
        return [q for q in (f"{title} {w}" for w in words if w) if self.clean(q) == want]

    # --- phrasing -----------------------------------------------------------------------
    @staticmethod
    def fact(r: random.Random, rel: str, t: str, v: str) -> str:
        return _cap(r.choice(FACT[rel]).format(t=t, v=v))

    @staticmethod
    def need(r: random.Random, rel: str, t: str) -> str:
        return r.choice(NEED[rel]).format(t=t)

    def placeholder(self, r: random.Random, title: str) -> str:
        e = self.world[title]
        if e.kind == "organisation" and e.get("sub") in ("university", "publisher", "studio", "label"):
            return r.choice((f"that {e.get('sub')}", "it"))  # not "that company" for a university
        return r.choice(PLACEHOLDER.get(e.kind, ("it",)))

    def search_step(self, thought: str, title: str, query: str | None = None) -> Planned:
        return Planned(thought, "search", query or title, title, self.rephrasings(title))

    # --- scripts ------------------------------------------------------------------------
    def script(self, q: dict[str, Any], mode: str, trial: int, seed: int) -> Script:
        r = random.Random(f"{seed}/{q['id']}/{mode}/{trial}")
        if q["type"] == "self-contained" or mode == "cot":
            return self._cot(q, r)
        mistake = self._mistake(q, r) if mode in ("reflexion", "reflexion-flat") and trial == 0 else None
        if mistake is None:
            return self._correct(q, r, lesson=mode == "reflexion" and trial > 0)
        return self._with_mistake(q, r, mistake, flat=mode == "reflexion-flat")

    def _cot(self, q: dict[str, Any], r: random.Random) -> Script:
        if q["type"] == "self-contained":
            body = q["solution"]
        elif q["type"] == "bridge":
            body = " ".join(self.fact(r, c["rel"], c["title"], c["value"]) + "." for c in q["chain"])
        else:
            c = q["compare"]
            body = " ".join(self.fact(r, c["rel"], t, v) + "." for t, v in c["values"].items())
        lead = r.choice(("", "", "Let me think step by step. ", "The question gives everything I need. "))
        if q["type"] != "self-contained":
            lead = ""
        tail = r.choice((f" So the answer is {q['answer']}.", "", f" The answer is {q['answer']}."))
        if q["type"] == "bridge" and len(q["chain"]) >= 3:
            tail = " " + self._chain_end(q, r)
        return Script([Planned(lead + body + tail, "finish", q["answer"])], q["answer"])

    def _reads(self, q: dict[str, Any]) -> list[tuple[str, str, str]]:
        """(title, relation, value) of each article to read, in order."""
        if q["type"] == "bridge":
            return [(c["title"], c["rel"], c["value"]) for c in q["chain"]]
        c = q["compare"]
        return [(t, c["rel"], v) for t, v in c["values"].items()]

    def _plan(self, q: dict[str, Any], r: random.Random) -> str:
        reads = self._reads(q)
        if q["type"] == "comparison":
            (a, rel, _), (b, _, _) = reads
            return r.choice((f"I need to find {self.need(r, rel, a)} and {self.need(r, rel, b)}, then compare them.",
                             f"I should look up {a} and {b} and compare their {ATTR[rel]}.",
                             f"To answer this I need the {ATTR[rel]} of {a} and {b}. I'll start with {a}."))
        t0, rel0, _ = reads[0]
        needs = [self.need(r, rel0, t0)]
        prev = reads[0][2]
        for _, rel, v in reads[1:]:
            needs.append(self.need(r, rel, self.placeholder(r, prev)))
            prev = v
        if len(needs) == 1:
            return f"I need to find {needs[0]}."
        # every wording names every hop, so the plan says how many searches the answer takes
        joined = ", then ".join(needs[:-1]) + (", and finally " if len(needs) > 2 else ", then ") + needs[-1]
        rest = _join(needs[1:])
        return r.choice((f"I need to find {joined}.", f"First I have to find {joined}.",
                         f"To answer this, I'll look up {needs[0]} first, and then {rest}.",
                         f"Let me search {t0} to find {needs[0]}; after that I need {rest}."))

    def _ahead(self, r: random.Random, reads: list[tuple[str, str, str]], j: int) -> str:
        """What a bridge thought says is still to be found once the value `reads[j][0]` is known:
        hop j by name, then every later hop (whose subject is not known yet) by a placeholder."""
        t, rel, _ = reads[j]
        now = self.need(r, rel, t)
        later = [self.need(r, rel_k, self.placeholder(r, t_k)) for t_k, rel_k, _ in reads[j + 1:]]
        if not later:
            return r.choice((f"Now I need to find {now}, which is the answer.",
                             f"One step is left: {now}.",
                             f"{_cap(t)} is not the answer yet: I still need {now}.",
                             f"I still need {now}; that answers the question."))
        rest = _join(later)
        return r.choice((f"Now I need {now}, and then {rest}.",
                         f"Next I need {now}; after that, {rest}.",
                         f"{_cap(t)} is not the answer yet. I still need {now}, and then {rest}.",
                         f"I'll search {t} next to find {now}; then I still need {rest}."))

    def _chain_end(self, q: dict[str, Any], r: random.Random) -> str:
        """The finishing words of a bridge answer: for 3 hops or more they name every link of the chain."""
        chain, a = q["chain"], q["answer"]
        if len(chain) < 3:
            return self._conclude(q, r)
        steps = [chain[0]["title"], *(c["value"] for c in chain)]
        walk = ", then ".join(steps[:-1]) + f", and finally {steps[-1]}"
        return r.choice((f"That completes the chain: {walk}. So the answer is {a}.",
                         f"{steps[-1]} ends the chain ({', '.join(steps)}), so the answer is {a}, not {steps[-2]}.",
                         f"All {len(chain)} steps are done ({walk}), so the answer is {a}."))

    def _conclude(self, q: dict[str, Any], r: random.Random) -> str:
        a = q["answer"]
        if q["type"] == "bridge":
            return r.choice((f"So the answer is {a}.", f"That means the answer is {a}.", f"So {a} is the answer."))
        c = q["compare"]
        (x, vx), (y, vy) = c["values"].items()
        if c["op"] == "same":
            if a == "yes":
                return r.choice((f"Both are {vx}, so the answer is yes.", f"They share {vx}, so yes."))
            return r.choice((f"{vx} and {vy} differ, so the answer is no.", f"{x} has {vx} but {y} has {vy}, so no."))
        vo = vy if a == x else vx
        va = vx if a == x else vy
        if c["rel"] in YEARS:
            word = "earlier" if c["op"] == "min" else "later"
        else:
            word = "smaller" if c["op"] == "min" else "larger"
        return r.choice((f"{va} is {word} than {vo}, so the answer is {a}.",
                         f"Since {va} is {word} than {vo}, {a} is the answer."))

    def _correct(self, q: dict[str, Any], r: random.Random, lesson: bool = False) -> Script:
        reads = self._reads(q)
        plan = self._plan(q, r)
        if lesson:
            plan = r.choice(("This time I will read carefully and check every step. ",
                             "Keeping my earlier mistake in mind, ", "I'll avoid my earlier mistake. ")) + plan
        steps = [self.search_step(plan, reads[0][0])]
        for j, ((t, rel, v), nxt) in enumerate(itertools.pairwise(reads), 1):
            said = self.fact(r, rel, t, v) + "."
            if q["type"] == "bridge":
                go = self._ahead(r, reads, j)
            else:
                go = r.choice((f"Now I need {self.need(r, nxt[1], nxt[0])}.", f"Next I'll look up {nxt[0]}."))
            steps.append(self.search_step(f"{said} {go}", nxt[0]))
        t, rel, v = reads[-1]
        end = self._chain_end(q, r) if q["type"] == "bridge" else self._conclude(q, r)
        steps.append(Planned(f"{self.fact(r, rel, t, v)}. {end}", "finish", q["answer"]))
        return Script(steps, q["answer"])

    # --- planned mistakes (Reflexion) ---------------------------------------------------------
    def _follow(self, start: str, rels: list[str]) -> list[tuple[str, str, str]] | None:
        out, t = [], start
        for rel in rels:
            v = follow(self.world, t, rel)
            if v is None:
                return None
            out.append((t, rel, value_text(rel, v)))
            t = v
        return out

    def _mistake(self, q: dict[str, Any], r: random.Random) -> dict[str, Any] | None:
        """Pick a plausible mistake for a first attempt: stopping early, a decoy, a vague search, a guess."""
        if q["type"] == "comparison":
            (a, _, _), (b, _, _) = self._reads(q)
            wrong = {"yes": "no", "no": "yes"}.get(q["answer"]) or (a if q["answer"] == b else b)
            return {"kind": "guess", "reads": self._reads(q)[:1], "wrong": wrong}
        chain = q["chain"]
        rels = [c["rel"] for c in chain]
        start, gold = chain[0]["title"], q["answer"]
        options: list[dict[str, Any]] = []
        # answered one hop early (a city instead of its country): the common failure of small agents
        options += [{"kind": "early", "reads": self._reads(q)[:-1], "wrong": chain[-1]["title"]}] * (3 if len(chain) == 3 else 1)
        decoy_key = {"director": "star", "star": "director", "founder": "chair"}.get(rels[0])
        e = self.world[start]
        decoy = e["members"][0] if rels[0] == "singer" else e.get(decoy_key) if decoy_key else None
        if decoy in self.world.entities:
            path = self._follow(decoy, rels[1:])
            if path and not exact_match(path[-1][2], gold):
                options += [{"kind": "distractor", "reads": [(start, rels[0], decoy), *path], "wrong": path[-1][2],
                             "decoy": decoy}] * 3
        # a vague search: a person looked up by first name only, which finds someone else
        reads = self._reads(q)
        for j, (t, _, _) in enumerate(reads):
            if self.world[t].kind != "person":
                continue
            first = t.split()[0]
            hit = self.title_of_obs(self.clean(first))
            if hit and hit != t and hit not in q["supporting"] and self.world[hit].kind == "person":
                path = self._follow(hit, rels[j:])
                if path and not exact_match(path[-1][2], gold):
                    options += [{"kind": "vague", "reads": [*reads[:j], *path], "wrong": path[-1][2],
                                 "at": j, "query": first, "hit": hit, "meant": t}] * 3
            break
        return r.choice(options)

    def title_of_obs(self, obs: str) -> str | None:
        """The title of the article that a clean observation shows, if it is one."""
        if not self._mapped:  # every article, once: the answer must not depend on what was searched before
            for t in self.world.entities:
                self.expected(t)
            self._mapped = True
        return self.title_of.get(obs)

    def _said(self, q: dict[str, Any], r: random.Random, m: dict[str, Any], i: int) -> str:
        """What the first attempt says after reading its i-th article (sloppy where the mistake is)."""
        t, rel, v = m["reads"][i]
        if i == 0 and m["kind"] == "distractor":
            return f"The article mentions {v}. I'll take {v} to be {r.choice(NP[q['chain'][0]['rel']]).format(t)}."
        if m["kind"] == "vague" and i == m["at"]:
            return (f"The result is about {t}; I'll take this to be the page on {m['meant']}. "
                    f"{self.fact(r, rel, t, v)}.")
        return self.fact(r, rel, t, v) + "."

    def _with_mistake(self, q: dict[str, Any], r: random.Random, m: dict[str, Any], flat: bool) -> Script:
        reads, kind = m["reads"], m["kind"]
        start = self._reads(q)[0][0]
        vague_at = m.get("at", -1)
        steps = [self.search_step(self._plan(q, r), reads[0][0], m["query"] if vague_at == 0 else None)]
        for i, nxt in enumerate(reads[1:]):
            said = self._said(q, r, m, i)
            need = self.need(r, nxt[1], m["meant"] if vague_at == i + 1 else nxt[0])
            steps.append(self.search_step(f"{said} Now I need to find {need}.", nxt[0], m["query"] if vague_at == i + 1 else None))
        if vague_at >= 0:
            steps[vague_at].alts = []  # a retry repeats the vague query
        said = self._said(q, r, m, len(reads) - 1)
        lesson = self._lesson(q, r, m, flat)
        if not flat:
            guess = "I don't have the other value yet, but I'd guess " if kind == "guess" else "So the answer is "
            steps.append(Planned(f"{said} {guess}{m['wrong']}.", "finish", m["wrong"]))
            return Script(steps, m["wrong"], kind, lesson)
        correct = self._correct(q, r)
        done = {t for t, _, _ in reads} if kind in ("early", "guess") else {start} if kind == "distractor" else \
            {t for t, _, _ in reads[:m["at"]]} if kind == "vague" else set()
        rest = [s for s in correct.steps if s.action == "finish" or s.target not in done]
        first = rest[0]
        go = f"I'll search {first.target}."
        titles = [t for t, _, _ in self._reads(q)]
        if q["type"] == "bridge" and kind != "early" and first.target in titles[1:]:  # an early stop's lesson names the hop
            j = titles.index(first.target)
            go = self._ahead(r, self._reads(q), j)  # every wording names first.target
        back = f"{r.choice(REFLECT)}{lesson} {go}"
        rest[0] = Planned(f"{said} {back}", first.action, first.arg, first.target, first.alts)
        return Script(steps + rest, q["answer"], kind, lesson, reflect_at=len(steps))

    def _lesson(self, q: dict[str, Any], r: random.Random, m: dict[str, Any], flat: bool) -> str:
        """The reflection. In the flat form the wrong answer was never given, so early stops and guesses
        are caught before `finish`, and the lesson says so."""
        kind = m["kind"]
        if kind == "guess":
            (a, rel, _), (b, _, _) = self._reads(q)
            if flat:
                return r.choice((f"I was about to answer without looking up {b}, which would only be a guess. I must search both {a} and {b} and compare their {ATTR[rel]}.",
                                 f"I can't compare yet: I don't have the {_singular(ATTR[rel])} of {b}, and guessing would be a mistake."))
            return r.choice((f"I answered without looking up {b}, so I was only guessing. I must search both {a} and {b} and compare their {ATTR[rel]}.",
                             f"I compared before I had the {ATTR[rel]} of both {a} and {b}; I need to look up {b} too."))
        if kind == "early":
            last = q["chain"][-1]
            need = self.need(r, last["rel"], last["title"])
            if flat:
                return r.choice((f"{m['wrong']} is not yet the answer: the question asks for {need}, so stopping here would be one step too early.",
                                 f"I should not answer {m['wrong']}; that only answers part of the question. I still need {need}."))
            return r.choice((f"I stopped one step too early: {m['wrong']} is not what the question asks for. I still need {need}.",
                             f"{m['wrong']} only answers part of the question; the question asks for {need}, so I need one more search."))
        if kind == "distractor":
            c0 = q["chain"][0]
            np = r.choice(NP[c0["rel"]]).format(c0["title"])
            return r.choice((f"I confused {m['decoy']} with {np}. The article on {c0['title']} names {c0['value']}, and I should follow {c0['value']} instead.",
                             f"{m['decoy']} is not {np}; I misread the article on {c0['title']}. I need to follow {c0['value']}."))
        return r.choice((f"My search for {m['query']} was too vague and returned {m['hit']}, a different person from {m['meant']}, so I followed the wrong page. I should search for the full name {m['meant']}.",
                         f"I searched for {m['query']} instead of the full name {m['meant']}, and the result was about someone else, {m['hit']}. I must search the exact name and check the page is the right one."))
