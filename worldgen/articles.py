"""One short encyclopedia article per entity, written from its facts.

Every article opens with its title in the first sentence (so a search for the name finds
it), states every fact that a question can ask about, and adds one or two facts that no
question asks about. Each fact has several phrasings; the choice is drawn from a
`random.Random` seeded with the world seed and the title, so an article does not change
when other entities are added.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from worldgen.generator import Entity, World

ORDINALS = ("debut", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def _a(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _pop(n: int) -> str:
    return f"{n:,}"


def country(e: Entity, w: World, r: random.Random) -> list[str]:
    t, f = e.title, e.facts
    s1 = r.choice((f"{t} is a country {f['region']}.", f"{t} is a sovereign state {f['region']}.",
                   f"{t} is a small republic {f['region']}."))
    s2 = r.choice((f"Its capital is {f['capital']}.", f"The capital and largest city is {f['capital']}.",
                   f"{f['capital']} is the capital of {t}."))
    s3 = r.choice((f"It became independent in {f['independence']}.", f"{t} declared independence in {f['independence']}.",
                   f"The country gained its independence in {f['independence']}."))
    s4 = r.choice((f"Its people are called {f['demonym']}s, and its currency is the {f['currency']}.",
                   f"The currency of {t} is the {f['currency']}."))
    return [s1, s2, s3, s4] if r.random() < 0.6 else [s1, s2, s3]


def city(e: Entity, w: World, r: random.Random) -> list[str]:
    t, f = e.title, e.facts
    kind = "town" if f["population"] < 60_000 else "city"
    if f["capital"]:
        s1 = r.choice((f"{t} is the capital and largest city of {f['country']}.",
                       f"{t} is a city in {f['country']}, of which it is the capital."))
    else:
        s1 = r.choice((f"{t} is {_a(kind)} in {f['country']}.", f"{t} is {_a(kind)} in the country of {f['country']}.",
                       f"{t} is {_a(kind)} located in {f['country']}."))
    pop = _pop(f["population"])
    s2 = r.choice((f"It has a population of {pop}.", f"The {kind} is home to {pop} people.",
                   f"Its population is {pop}.", f"About {pop} people live there."))
    s3 = r.choice((f"It was founded in {f['founded']}.", f"The settlement dates from {f['founded']}.",
                   f"{t} was established in {f['founded']} on the banks of the {f['river']} River."))
    s4 = r.choice((f"It is known for {f['known_for']}.", f"The {f['river']} River runs through the {kind}.",
                   f"Visitors come for {f['known_for']}."))
    if r.random() < 0.4:
        return [s1, f"Founded in {f['founded']}, it now has {pop} inhabitants.", s4]
    return [s1, s2, s3, s4] if r.random() < 0.5 else [s1, s3, s2]


_VERBS = {"directed": ("directed", "made"), "starred in": ("starred in", "appeared in"), "wrote": ("wrote",),
          "fronts": ("is the lead singer of", "fronts"), "plays in": ("plays in", "is a member of"),
          "produced": ("produced",), "founded": ("founded",), "chairs": ("chairs",), "coaches": ("coaches",)}


_PAST = {"is the lead singer of": "was the lead singer of", "fronts": "fronted", "plays in": "played in",
         "is a member of": "was a member of", "chairs": "chaired", "coaches": "coached"}
_KNOWN = {"directed": "{he} is best known for directing {x}.", "starred in": "{he} is best known for {his} role in {x}.",
          "wrote": "{he} is best known for the novel {x}.", "fronts": "{he} is best known as the singer of {x}.",
          "plays in": "{he} is best known as a member of {x}.", "produced": "{he} is best known for producing {x}.",
          "founded": "{he} is best known as the founder of {x}.", "chairs": "{he} is the chair of {x}.",
          "coaches": "{he} is the head coach of the {x}."}


def person(e: Entity, w: World, r: random.Random) -> list[str]:
    t, f = e.title, e.facts
    he = "He" if f["pronoun"] == "he" else "She"
    his = "His" if he == "He" else "Her"
    occ, born, bc = f["occupation"], f["born"], f["birth_city"]
    if "died" in f:
        s1 = r.choice((f"{t} ({born}–{f['died']}) was {_a(occ)} born in {bc}.",
                       f"{t} was {_a(occ)}, born in {bc} in {born}, who died in {f['died']}.",
                       f"{t} (born {born} in {bc}, died {f['died']}) was {_a(occ)}."))
    else:
        s1 = r.choice((f"{t} (born {born} in {bc}) is {_a(occ)}.", f"{t} is {_a(occ)} who was born in {bc} in {born}.",
                       f"{t} is {_a(occ)}, born in {born} in the city of {bc}.",
                       f"{t} is {_a(occ)}. {he} was born in {bc} in {born}."))
    rest: list[str] = []
    if f["works"]:
        verb, _ = f["works"][0]
        objs = [o for v, o in f["works"] if v == verb][:3]
        past = "died" in f
        v = r.choice(_VERBS[verb])
        if past:
            v = _PAST.get(v, v)
        known = _KNOWN[verb].format(he=he, his=his.lower(), x=objs[0])
        if past:
            known = known.replace(" is best known", " is remembered").replace(" is the ", " was the ")
        rest.append(r.choice((f"{he} {v} {_join(objs)}.", known)))
    if "university" in f:
        rest.append(r.choice((f"{he} studied at {f['university']}.", f"{he} is a graduate of {f['university']}.",
                              f"{he} was educated at {f['university']}.")))
    if r.random() < 0.3:
        other = r.choice(w.of("city"))
        if other.title != bc:
            rest.append(r.choice((f"{he} later moved to {other.title}.", f"{his} family moved to {other.title} when {he.lower()} was a child.")))
    return [s1, *rest[:3]] if rest else [s1, r.choice((f"{he} has given few interviews.", f"{his} work is widely admired."))]


def organisation(e: Entity, w: World, r: random.Random) -> list[str]:
    t, f = e.title, e.facts
    kind = {"university": "university", "studio": "studio", "publisher": "publisher", "label": "label"}.get(f["sub"], "company")
    s1 = r.choice((f"{t} is {f['desc']} based in {f['city']}.", f"{t} is {f['desc']} headquartered in {f['city']}.",
                   f"{t} is {f['desc']} in {f['city']}."))
    s2 = r.choice((f"It was founded in {f['founded']} by {f['founder']}.", f"{f['founder']} founded it in {f['founded']}.",
                   f"The {kind} was established by {f['founder']} in {f['founded']}."))
    out = [s1, s2]
    if "chair" in f:
        out.append(r.choice((f"Since {f['chair_since']}, it has been chaired by {f['chair']}.",
                             f"Its current chair is {f['chair']}.", f"{f['chair']} has chaired the {kind} since {f['chair_since']}.")))
    linked = {"studio": ("film", "studio", "Its films include {}."), "publisher": ("book", "publisher", "It has published {}."),
              "label": ("album", "label", "Its releases include {}.")}.get(f["sub"])
    if linked:
        items = [x.title for x in w.of(linked[0]) if x[linked[1]] == t][:2]
        if items:
            out.append(linked[2].format(_join(items)))
    return out[:4]


def film(e: Entity, w: World, r: random.Random) -> list[str]:
    t, f = e.title, e.facts
    g, y, d = f["genre"], f["year"], f["director"]
    s1 = r.choice((f"{t} is {_a(f'{y} {g}')} film directed by {d}.", f"{t} is {_a(g)} film from {y}, directed by {d}.",
                   f"{t} is {_a(g)} film released in {y}. It was directed by {d}."))
    s2 = r.choice((f"It stars {f['star']}.", f"{f['star']} plays the lead role.", f"The film stars {f['star']} in the leading role."))
    s3 = r.choice((f"It was produced by {f['studio']}.", f"{f['studio']} released the film.", f"The studio behind it is {f['studio']}."))
    s4 = r.choice((f"It runs {f['minutes']} minutes.", f"The film is {f['minutes']} minutes long."))
    return [s1, s2, s3, s4] if r.random() < 0.5 else [s1, s3, s2]


def book(e: Entity, w: World, r: random.Random) -> list[str]:
    t, f = e.title, e.facts
    g, a = f["genre"], f["author"]
    s1 = r.choice((f"{t} is {_a(g)} novel by {a}.", f"{t} is {_a(g)} novel written by {a}.",
                   f"{t} is a novel by the writer {a}."))
    s2 = r.choice((f"It was first published in {f['year']} by {f['publisher']}.", f"{f['publisher']} published it in {f['year']}.",
                   f"It appeared in {f['year']}, published by {f['publisher']}."))
    s3 = r.choice((f"The story is set in {f['setting']}.", f"It takes place in {f['setting']}.",
                   f"The novel is set in the city of {f['setting']}."))
    s4 = f"It runs to {f['pages']} pages."
    return [s1, s2, s3, s4] if r.random() < 0.4 else [s1, s2, s3]


def band(e: Entity, w: World, r: random.Random) -> list[str]:
    t, f = e.title, e.facts
    g, c, y, s = f["genre"], f["city"], f["formed"], f["singer"]
    m1, m2 = f["members"]
    s1 = r.choice((f"{t} is {_a(g)} band formed in {c} in {y}.", f"{t} are {_a(g)} band from {c}, formed in {y}.",
                   f"{t} is {_a(g)} band that was formed in {y} in {c}."))
    s2 = r.choice((f"The band is fronted by {s}, with {m1} and {m2}.", f"Its members are lead singer {s}, {m1} and {m2}.",
                   f"{s} is the lead singer; {m1} and {m2} complete the line-up."))
    out = [s1, s2]
    if f.get("albums"):
        out.append(r.choice((f"Its albums include {_join(f['albums'][:2])}.", f"The band released {f['albums'][0]}.")))
    return out


def album(e: Entity, w: World, r: random.Random) -> list[str]:
    t, f = e.title, e.facts
    b, y = f["band"], f["year"]
    order = sorted(w[b]["albums"], key=lambda a: (w[a]["year"], a)).index(t)
    nth = ORDINALS[order] if order < len(ORDINALS) else "latest"
    s1 = r.choice((f"{t} is an album by {b}, released in {y}.", f"{t} is the {nth} studio album by {b}, released in {y}.",
                   f"{t} is a {y} album by the band {b}."))
    s2 = r.choice((f"It was produced by {f['producer']} and issued on {f['label']}.",
                   f"{f['producer']} produced it for {f['label']}.", f"The record was produced by {f['producer']} for the label {f['label']}."))
    s3 = r.choice((f"It has {f['tracks']} tracks.", f"The album contains {f['tracks']} songs."))
    return [s1, s2, s3] if r.random() < 0.5 else [s1, s2]


def team(e: Entity, w: World, r: random.Random) -> list[str]:
    t, f = e.title, e.facts
    s1 = r.choice((f"{t} is a professional {f['sport']} team based in {f['city']}.", f"{t} is a {f['sport']} club from {f['city']}.",
                   f"The {t} are a {f['sport']} team from the city of {f['city']}."))
    s2 = r.choice((f"The club was founded in {f['founded']}.", f"Founded in {f['founded']}, the team plays at {f['stadium']}.",
                   f"It was founded in {f['founded']} and plays its home games at {f['stadium']}."))
    s3 = r.choice((f"The head coach is {f['coach']}.", f"{f['coach']} coaches the team.", f"Its coach is {f['coach']}."))
    s4 = r.choice((f"It has won {f['titles']} league titles.", f"The team has {f['titles']} national championships."))
    return [s1, s2, s3, s4] if r.random() < 0.5 else [s1, s2, s3]


WRITERS: dict[str, Callable[[Entity, World, random.Random], list[str]]] = {
    "country": country, "city": city, "person": person, "organisation": organisation, "film": film, "book": book,
    "band": band, "album": album, "team": team}


def article(e: Entity, w: World) -> str:
    """The article text for one entity (2–4 sentences)."""
    r = random.Random(f"{w.seed}/article/{e.title}")
    return " ".join(_cap(s) for s in WRITERS[e.kind](e, w, r))


def corpus(w: World) -> list[dict[str, str]]:
    """All articles as `{"title", "text"}` records, sorted by title."""
    return [{"title": t, "text": article(w[t], w)} for t in sorted(w.entities)]
