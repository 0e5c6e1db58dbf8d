"""Questions about the world, of HotpotQA's kinds, with gold answers, supporting articles and splits.

- bridge: follow 2 or 3 relations from a named entity (film → director → birth city → country);
- comparison: "which one …" over a year or a population, and yes/no "same …?";
- self-contained: arithmetic or a date difference whose facts are all in the question
  (CoT answers it without searching).

Each record also carries what the scripted teacher needs: `chain` (the facts read, in
order) or `compare` (the facts compared), and `bridge`/`entities` for the split rule:
a held-out set of entities is drawn per split, a test (dev) question's bridge entities
all belong to the test (dev) set, and no train question touches either set, so no bridge
entity of a test question appears in a train question.
"""

from __future__ import annotations

import random
from itertools import combinations
from typing import Any

from worldgen.generator import World
from worldgen.relations import NP, follow, value_text

# chains of relations from a start kind; 2 relations = 2 hops (2 articles read), 3 = 3 hops
CHAINS: dict[str, list[tuple[str, ...]]] = {
    "film": [("director", "birth_city"), ("director", "born"), ("director", "university"), ("studio", "hq"),
             ("studio", "org_founded"), ("star", "birth_city"), ("director", "birth_city", "country"),
             ("studio", "hq", "country"), ("director", "university", "hq")],
    "book": [("author", "birth_city"), ("author", "born"), ("publisher", "founder"), ("publisher", "hq"),
             ("setting", "country"), ("author", "birth_city", "country"), ("publisher", "founder", "born")],
    "album": [("band", "origin"), ("band", "formed"), ("label", "founder"), ("band", "singer"),
              ("band", "origin", "country"), ("band", "singer", "born"), ("band", "singer", "birth_city")],
    "organisation": [("founder", "birth_city"), ("founder", "born"), ("hq", "population"),
                     ("founder", "birth_city", "country")],
    "band": [("singer", "born"), ("singer", "birth_city"), ("origin", "country"), ("origin", "population")],
    "team": [("home", "country"), ("home", "population"), ("coach", "born"), ("home", "country", "capital")],
    "person": [("birth_city", "country"), ("university", "hq"), ("birth_city", "population")],
    "city": [("country", "capital")],
}

# the question for the last relation, given the noun phrase of its subject
ASK: dict[str, tuple[str, ...]] = {
    "birth_city": ("In which city was {} born?", "Where was {} born?", "What is the birthplace of {}?"),
    "born": ("In what year was {} born?", "When was {} born?", "What is the birth year of {}?"),
    "university": ("Which university did {} attend?", "Where did {} study?"),
    "hq": ("In which city is {} based?", "Where is {} headquartered?"),
    "org_founded": ("In what year was {} founded?", "When was {} established?"),
    "founder": ("Who founded {}?", "Who is the founder of {}?"),
    "origin": ("In which city was {} formed?", "Where was {} formed?"),
    "formed": ("In what year was {} formed?", "When was {} formed?"),
    "singer": ("Who is the lead singer of {}?", "Who fronts {}?"),
    "country": ("In which country is {}?", "Which country is {} in?"),
    "population": ("What is the population of {}?", "How many people live in {}?"),
    "capital": ("What is the capital of {}?",),
}
# 3-hop questions that end in "…'s city → country" read better asked directly
COUNTRY_OF: dict[str, tuple[str, ...]] = {
    "birth_city": ("In which country was {} born?", "{} was born in which country?"),
    "origin": ("In which country was {} formed?", "Which country does {} come from?"),
    "hq": ("In which country is {} based?", "{} is based in which country?"),
    "setting": ("In which country is {} set?",),
}
START_NP = {"film": ("{}", "the film {}"), "book": ("{}", "the novel {}"), "album": ("{}", "the album {}"),
            "band": ("{}", "the band {}"), "team": ("the {}",), "organisation": ("{}",), "person": ("{}",),
            "city": ("{}", "the city of {}")}

SPLITS = ("train", "dev", "test")
HELD_OUT = {"test": 0.2, "dev": 0.1}  # fraction of each entity kind held out per split
TARGETS = {"train": 1500, "dev": 100, "test": 250}
MIX = {"bridge2": 0.40, "bridge3": 0.20, "which": 0.12, "same": 0.13, "self": 0.15}


def _np(r: random.Random, w: World, start: str, rels: tuple[str, ...]) -> str:
    np = r.choice(START_NP[w[start].kind]).format(start)
    for rel in rels:
        np = r.choice(NP[rel]).format(np)
    return np


def bridge_questions(w: World, r: random.Random) -> list[dict[str, Any]]:
    out = []
    for start in sorted(w.entities):
        kind = w[start].kind
        for rels in CHAINS.get(kind, []):
            titles, ok = [start], True
            for rel in rels:
                v = follow(w, titles[-1], rel) if titles[-1] in w.entities else None
                if v is None or (isinstance(v, str) and v not in w.entities and rel != rels[-1]):
                    ok = False
                    break
                titles.append(v)
            if not ok:
                continue
            answer = value_text(rels[-1], titles[-1])
            if len(rels) == 3 and rels[-1] == "country" and rels[1] in COUNTRY_OF:
                q = r.choice(COUNTRY_OF[rels[1]]).format(_np(r, w, start, rels[:1]))
            elif len(rels) == 2 and rels[-1] == "country" and rels[0] in COUNTRY_OF:
                q = r.choice(COUNTRY_OF[rels[0]]).format(r.choice(START_NP[kind]).format(start))
            else:
                q = r.choice(ASK[rels[-1]]).format(_np(r, w, start, rels[:-1]))
            q = q[0].upper() + q[1:]
            chain = [{"title": t, "rel": rel, "value": value_text(rel, v)} for t, rel, v in zip(titles, rels, titles[1:])]
            answer_entity = [answer] if answer in w.entities else []
            out.append({"question": q, "answer": answer, "type": "bridge", "kind": f"{kind}:{'>'.join(rels)}",
                        "hops": len(rels), "supporting": titles[:-1], "bridge": titles[1:-1],
                        "entities": sorted({*titles[:-1], *answer_entity}), "chain": chain})
    return out


# (entity kind, relation, question templates (first, last), (yes/no "same" template))
WHICH = [
    ("film", "film_year", ("Which film was released first, {a} or {b}?", "Which came out earlier, {a} or {b}?"),
     ("Which film is more recent, {a} or {b}?",)),
    ("book", "book_year", ("Which novel was published first, {a} or {b}?",), ("Which book is newer, {a} or {b}?",)),
    ("person", "born", ("Who was born first, {a} or {b}?", "Who was born earlier, {a} or {b}?"),
     ("Who was born later, {a} or {b}?",)),
    ("city", "population", ("Which has the smaller population, {a} or {b}?",),
     ("Which city has a larger population, {a} or {b}?", "Which is bigger by population, {a} or {b}?")),
    ("band", "formed", ("Which band was formed first, {a} or {b}?",), ("Which band formed more recently, {a} or {b}?",)),
    ("organisation", "org_founded", ("Which was founded earlier, {a} or {b}?",), ("Which is younger, {a} or {b}?",)),
    ("team", "team_founded", ("Which team was founded first, the {a} or the {b}?",), ()),
]
SAME = [
    ("film", "director", ("Were {a} and {b} directed by the same person?", "Do {a} and {b} have the same director?")),
    ("book", "author", ("Were {a} and {b} written by the same author?", "Are {a} and {b} by the same writer?")),
    ("person", "birth_city", ("Were {a} and {b} born in the same city?",)),
    ("person", "born", ("Were {a} and {b} born in the same year?",)),
    ("city", "country", ("Are {a} and {b} in the same country?", "Are {a} and {b} located in the same country?")),
    ("band", "origin", ("Were {a} and {b} formed in the same city?",)),
    ("album", "band", ("Were {a} and {b} released by the same band?",)),
    ("team", "sport", ("Do the {a} and the {b} play the same sport?",)),
    ("organisation", "org_founded", ("Were {a} and {b} founded in the same year?",)),
]


def comparison_questions(w: World, r: random.Random, per_kind: int = 400) -> list[dict[str, Any]]:
    out = []
    for kind, rel, first, last in WHICH:
        ents = sorted(e.title for e in w.of(kind))
        for _ in range(per_kind):
            a, b = r.sample(ents, 2)
            va, vb = follow(w, a, rel), follow(w, b, rel)
            if va == vb:
                continue
            pick_low = not last or r.random() < 0.5
            q = r.choice(first if pick_low else last).format(a=a, b=b)
            answer = (a if va < vb else b) if pick_low else (a if va > vb else b)
            out.append({"question": q, "answer": answer, "type": "comparison", "kind": f"which:{kind}:{rel}",
                        "hops": 2, "supporting": [a, b], "bridge": [], "entities": sorted({a, b}),
                        "compare": {"rel": rel, "op": "min" if pick_low else "max",
                                    "values": {a: value_text(rel, va), b: value_text(rel, vb)}}})
    for kind, rel, templates in SAME:
        ents = sorted(e.title for e in w.of(kind))
        groups: dict[Any, list[str]] = {}
        for t in ents:
            groups.setdefault(follow(w, t, rel), []).append(t)
        same_pairs = [p for g in groups.values() for p in combinations(g, 2)]
        for i in range(per_kind // 2):
            if i % 2 == 0 and same_pairs:
                a, b = r.choice(same_pairs)
            else:
                a, b = r.sample(ents, 2)
            if r.random() < 0.5:
                a, b = b, a
            va, vb = follow(w, a, rel), follow(w, b, rel)
            out.append({"question": r.choice(templates).format(a=a, b=b), "answer": "yes" if va == vb else "no",
                        "type": "comparison", "kind": f"same:{kind}:{rel}", "hops": 2, "supporting": [a, b],
                        "bridge": [], "entities": sorted({a, b}),
                        "compare": {"rel": rel, "op": "same", "values": {a: value_text(rel, va), b: value_text(rel, vb)}}})
    return out


def self_contained_questions(w: World, r: random.Random, n: int = 1500) -> list[dict[str, Any]]:
    """Questions that state their own facts; `solution` is the teacher's one-line reasoning."""
    cities, films = w.of("city"), w.of("film")
    teams, bands = w.of("team"), w.of("band")
    out = []
    for i in range(n):
        k = i % 6
        if k == 0:
            a, b = r.sample(cities, 2)
            if a["founded"] == b["founded"]:
                continue
            a, b = sorted((a, b), key=lambda c: c["founded"])
            ya, yb = a["founded"], b["founded"]
            q = r.choice((f"{a.title} was founded in {ya} and {b.title} in {yb}. How many years after {a.title} was {b.title} founded?",
                          f"The city of {a.title} dates from {ya}, and {b.title} from {yb}. How many years apart were they founded?"))
            ans, sol = yb - ya, f"{b.title} was founded in {yb} and {a.title} in {ya}, so the difference is {yb} - {ya} = {yb - ya}."
            ents = [a.title, b.title]
        elif k == 1:
            f = r.choice(films)
            d = w[f["director"]]
            yb, yf = d["born"], f["year"]
            q = r.choice((f"{d.title} was born in {yb} and directed {f.title} in {yf}. How many years passed between the two?",
                          f"The director {d.title}, born in {yb}, made {f.title} in {yf}. How many years after {d.title}'s birth was that?"))
            ans, sol = yf - yb, f"{f.title} came out in {yf} and {d.title} was born in {yb}, so {yf} - {yb} = {yf - yb} years."
            ents = [d.title, f.title]
        elif k == 2:
            t = r.choice(teams)
            total = t["titles"]
            before = r.randint(0, total)
            q = f"The {t.title} won {before} league titles before 2000 and {total - before} since then. How many titles have they won in total?"
            ans, sol = total, f"They won {before} titles before 2000 and {total - before} after, so {before} + {total - before} = {total}."
            ents = [t.title]
        elif k == 3:
            t = r.choice(teams)
            games, seasons = r.randint(8, 20), r.randint(2, 5)
            q = f"The {t.title} play {games} home games each season. How many home games do they play in {seasons} seasons?"
            ans, sol = games * seasons, f"{games} home games a season for {seasons} seasons is {games} × {seasons} = {games * seasons}."
            ents = [t.title]
        elif k == 4:
            a, b = r.sample(films, 2)
            if a["year"] == b["year"]:
                continue
            first = a if a["year"] < b["year"] else b
            q = f"{a.title} was released in {a['year']} and {b.title} in {b['year']}. Which of the two came out first?"
            ans = first.title
            sol = f"{a['year']} is {'earlier' if first is a else 'later'} than {b['year']}, so {first.title} came out first."
            ents = [a.title, b.title]
        else:
            b = r.choice(bands)
            n1, n2 = r.randint(1, 6), r.randint(1, 6)
            q = f"{b.title} released {n1} albums in their first decade and {n2} in their second. How many albums did the band release in those two decades?"
            ans, sol = n1 + n2, f"{n1} albums in the first decade and {n2} in the second make {n1} + {n2} = {n1 + n2}."
            ents = [b.title]
        out.append({"question": q, "answer": str(ans), "type": "self-contained", "kind": f"self:{k}", "hops": 0,
                    "supporting": [], "bridge": [], "entities": sorted(set(ents)), "solution": sol})
    return out


def _group(q: dict[str, Any]) -> str:
    if q["type"] == "bridge":
        return f"bridge{min(q['hops'], 3)}"
    if q["type"] == "comparison":
        return "which" if q["kind"].startswith("which") else "same"
    return "self"


def _even(r: random.Random, pool: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """n questions spread evenly over the kinds in `pool` (round robin), so that no chain dominates."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for q in pool:
        by_kind.setdefault(q["kind"], []).append(q)
    queues = [r.sample(v, len(v)) for _, v in sorted(by_kind.items())]
    out: list[dict[str, Any]] = []
    while len(out) < n and any(queues):
        for qu in queues:
            if qu and len(out) < n:
                out.append(qu.pop())
    return out


def split_questions(w: World, questions: list[dict[str, Any]], seed: int,
                    targets: dict[str, int] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Hold out entities per split, assign every question it can to a split, sample the mix."""
    targets = targets or TARGETS
    r = random.Random(f"{seed}/splits")
    held: dict[str, set[str]] = {"test": set(), "dev": set()}
    for kind in sorted({e.kind for e in w.entities.values()}):
        titles = sorted(e.title for e in w.of(kind))
        r.shuffle(titles)
        n_test, n_dev = round(len(titles) * HELD_OUT["test"]), round(len(titles) * HELD_OUT["dev"])
        held["test"].update(titles[:n_test])
        held["dev"].update(titles[n_test:n_test + n_dev])
    pools: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in SPLITS}
    seen: set[str] = set()
    for q in questions:
        if q["question"] in seen:
            continue
        seen.add(q["question"])
        ents = set(q["entities"])
        core = set(q["bridge"]) or ents  # comparisons and self-contained: the entities they name
        for split in ("test", "dev"):
            other = held["dev" if split == "test" else "test"]
            if core and core <= held[split] and not ents & other:
                pools[split].setdefault(_group(q), []).append(q)
                break
        else:
            if not ents & (held["test"] | held["dev"]):
                pools["train"].setdefault(_group(q), []).append(q)
    out: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        chosen: list[dict[str, Any]] = []
        for group, frac in MIX.items():
            chosen += _even(r, pools[split].get(group, []), round(targets[split] * frac))
        short = targets[split] - len(chosen)
        if short > 0:  # a small held-out set has few 3-hop chains: top up with 2-hop ones
            taken = {id(q) for q in chosen}
            spare = [q for q in pools[split].get("bridge2", []) if id(q) not in taken]
            chosen += r.sample(spare, min(short, len(spare)))
        r.shuffle(chosen)
        out[split] = [{"id": f"world-{split}-{i:04d}", **q} for i, q in enumerate(chosen)]
    return out


def make_questions(w: World, seed: int, targets: dict[str, int] | None = None) -> dict[str, list[dict[str, Any]]]:
    r = random.Random(f"{seed}/questions")
    qs = bridge_questions(w, r) + comparison_questions(w, r) + self_contained_questions(w, r)
    return split_questions(w, qs, seed, targets)
