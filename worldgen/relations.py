"""Relations of the world: how to follow one, and how to say it in a question or a thought.

A relation maps an entity to a value (another entity's title, or a year or a number).
`follow(world, title, rel)` reads it; `phrase(rel, ...)` words it. The question writer and
the teacher share this table, so a question's wording and the teacher's thoughts agree.
"""

from __future__ import annotations

from typing import Any

from worldgen.generator import World

# relation -> (entity kind, fact key)
RELATIONS: dict[str, tuple[str, str]] = {
    "director": ("film", "director"), "star": ("film", "star"), "studio": ("film", "studio"),
    "film_year": ("film", "year"), "author": ("book", "author"), "publisher": ("book", "publisher"),
    "setting": ("book", "setting"), "book_year": ("book", "year"), "band": ("album", "band"),
    "producer": ("album", "producer"), "label": ("album", "label"), "album_year": ("album", "year"),
    "birth_city": ("person", "birth_city"), "born": ("person", "born"), "university": ("person", "university"),
    "country": ("city", "country"), "population": ("city", "population"), "city_founded": ("city", "founded"),
    "capital": ("country", "capital"), "founder": ("organisation", "founder"), "chair": ("organisation", "chair"),
    "hq": ("organisation", "city"), "org_founded": ("organisation", "founded"), "formed": ("band", "formed"),
    "origin": ("band", "city"), "singer": ("band", "singer"), "home": ("team", "city"),
    "coach": ("team", "coach"), "team_founded": ("team", "founded"), "sport": ("team", "sport"),
}

# Noun phrases for "the X of <np>" in questions and thoughts.
NP: dict[str, tuple[str, ...]] = {
    "director": ("the director of {}", "the person who directed {}"),
    "star": ("the lead actor of {}", "the star of {}"),
    "studio": ("the studio that produced {}", "the studio behind {}"),
    "author": ("the author of {}", "the writer of {}"),
    "publisher": ("the publisher of {}", "the company that published {}"),
    "setting": ("the city where {} is set",),
    "band": ("the band that released {}", "the band behind {}"),
    "producer": ("the producer of {}",),
    "label": ("the label that released {}", "the record label of {}"),
    "birth_city": ("the city where {} was born", "the birthplace of {}"),
    "university": ("the university that {} attended",),
    "country": ("the country where {} is located", "the country that {} is in"),
    "founder": ("the founder of {}", "the person who founded {}"),
    "chair": ("the chair of {}",),
    "hq": ("the city where {} is based",),
    "origin": ("the city where {} was formed",),
    "singer": ("the lead singer of {}", "the singer of {}"),
    "home": ("the home city of {}",),
    "coach": ("the coach of {}", "the head coach of {}"),
}

# What a thought says when it has found `rel` of `t` to be `v`.
FACT: dict[str, tuple[str, ...]] = {
    "director": ("{t} was directed by {v}", "the director of {t} is {v}", "{v} directed {t}"),
    "star": ("{t} stars {v}", "{v} plays the lead in {t}"),
    "studio": ("{t} was produced by {v}", "the studio behind {t} is {v}"),
    "film_year": ("{t} was released in {v}", "{t} came out in {v}"),
    "author": ("{t} was written by {v}", "the author of {t} is {v}", "{v} wrote {t}"),
    "publisher": ("{t} was published by {v}", "the publisher of {t} is {v}"),
    "setting": ("{t} is set in {v}",),
    "book_year": ("{t} was published in {v}", "{t} first appeared in {v}"),
    "band": ("{t} is an album by {v}", "{t} was released by {v}", "{v} recorded {t}"),
    "producer": ("{t} was produced by {v}",),
    "label": ("{t} was released on {v}",),
    "album_year": ("{t} was released in {v}", "{t} came out in {v}"),
    "birth_city": ("{t} was born in {v}", "{t}'s birthplace is {v}"),
    "born": ("{t} was born in {v}", "{t}'s birth year is {v}"),
    "university": ("{t} studied at {v}", "{t} attended {v}"),
    "country": ("{t} is in {v}", "{t} is a city in {v}", "{t} is located in {v}"),
    "population": ("{t} has a population of {v}", "{v} people live in {t}"),
    "city_founded": ("{t} was founded in {v}",),
    "capital": ("the capital of {t} is {v}", "{v} is the capital of {t}"),
    "founder": ("{t} was founded by {v}", "the founder of {t} is {v}", "{v} founded {t}"),
    "chair": ("{t} is chaired by {v}",),
    "hq": ("{t} is based in {v}", "{t} is headquartered in {v}"),
    "org_founded": ("{t} was founded in {v}", "{t} was established in {v}"),
    "formed": ("{t} was formed in {v}", "{t} formed in {v}"),
    "origin": ("{t} was formed in {v}", "{t} comes from {v}"),
    "singer": ("the lead singer of {t} is {v}", "{t} is fronted by {v}"),
    "home": ("{t} is based in {v}", "{t} play in {v}"),
    "coach": ("{t} is coached by {v}", "the coach of {t} is {v}"),
    "team_founded": ("{t} was founded in {v}",),
    "sport": ("{t} play {v}",),
}

# What a thought says it needs to find out next.
NEED: dict[str, tuple[str, ...]] = {
    "director": ("who directed {t}", "the director of {t}"),
    "star": ("who stars in {t}",),
    "studio": ("which studio produced {t}", "the studio behind {t}"),
    "film_year": ("when {t} was released", "the release year of {t}"),
    "author": ("who wrote {t}", "the author of {t}"),
    "publisher": ("who published {t}", "the publisher of {t}"),
    "setting": ("where {t} is set",),
    "book_year": ("when {t} was published", "the year {t} came out"),
    "band": ("which band released {t}", "the band behind {t}"),
    "producer": ("who produced {t}",),
    "label": ("which label released {t}",),
    "album_year": ("when {t} was released",),
    "birth_city": ("where {t} was born", "the birthplace of {t}", "which city {t} was born in"),
    "born": ("when {t} was born", "the birth year of {t}", "the year {t} was born"),
    "university": ("which university {t} attended", "where {t} studied"),
    "country": ("which country {t} is in", "the country {t} belongs to"),
    "population": ("the population of {t}", "how many people live in {t}"),
    "city_founded": ("when {t} was founded",),
    "capital": ("the capital of {t}",),
    "founder": ("who founded {t}", "the founder of {t}"),
    "chair": ("who chairs {t}",),
    "hq": ("where {t} is based", "the city {t} is headquartered in"),
    "org_founded": ("when {t} was founded", "the founding year of {t}"),
    "formed": ("when {t} was formed", "the year {t} formed"),
    "origin": ("where {t} was formed", "the city {t} comes from"),
    "singer": ("who the lead singer of {t} is", "the singer of {t}"),
    "home": ("where {t} are based", "the home city of {t}"),
    "coach": ("who coaches {t}", "the coach of {t}"),
    "team_founded": ("when {t} was founded",),
    "sport": ("which sport {t} play",),
}


def follow(w: World, title: str, rel: str) -> Any:
    """The value of `rel` for the entity `title` (a title, a year or a number; None when unknown)."""
    kind, key = RELATIONS[rel]
    e = w[title]
    if e.kind != kind:
        raise KeyError(f"{rel} does not apply to {title} ({e.kind})")
    return e.facts.get(key)


def value_text(rel: str, v: Any) -> str:
    """A value as it appears in articles and answers (populations with thousands separators)."""
    return f"{v:,}" if rel == "population" else str(v)
