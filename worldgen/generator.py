"""The offline world: invented entities, their relations, and one short article each.

`build_world(seed)` draws everything from one `random.Random(seed)` in a fixed order, so
the same seed gives the same world. Entities are plain `Entity` records (a title, a kind
and a dict of facts); relations are facts whose value is another entity's title, so they
form chains: film → director → birth city → country → capital, album → band → lead
singer → birth city, and so on. Articles (`articles.py`) are written from the facts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from worldgen.names import NameMaker, demonym

# How many of each kind the default world has (scaled by `size`).
COUNTS = {"country": 24, "city_per_country": 10, "university": 36, "studio": 36, "publisher": 36,
          "label": 36, "company": 60, "film": 240, "book": 240, "band": 100, "album": 170, "team": 80}

GENRES = {
    "film": ("drama", "comedy", "thriller", "science fiction", "documentary", "war", "romance", "horror",
             "musical", "western", "crime", "animated"),
    "book": ("historical", "crime", "fantasy", "science fiction", "romance", "literary", "adventure", "mystery"),
    "band": ("rock", "folk", "jazz", "punk", "electronic", "pop", "metal", "indie rock", "blues", "soul"),
}
SPORTS = ("football", "basketball", "ice hockey", "handball", "rugby", "volleyball")
MASCOTS = ("Falcons", "Rovers", "Wolves", "Mariners", "Comets", "Stags", "Lancers", "Otters", "Herons",
           "Titans", "Foxes", "Ravens", "Miners", "Pilots", "Bears", "Hawks")
COMPANY_KINDS = (("Industries", "an engineering company"), ("Foods", "a food company"),
                 ("Motors", "a car maker"), ("Systems", "a software company"), ("Textiles", "a textile maker"),
                 ("Shipping", "a shipping company"), ("Energy", "an energy company"), ("Optics", "an optics maker"))
TITLE_NOUNS = ("Nights", "Harbor", "Winter", "Letters", "Garden", "River", "Song", "Tide", "Road", "Lanterns",
               "Mirror", "Orchard", "Echoes", "Summer", "Crossing", "Hours", "Shadows", "Lights", "Bridge",
               "Voyage", "Silence", "Daughters", "Stones", "Fields", "Kingdom", "Promise", "Island", "Storm")
TITLE_ADJS = ("Silent", "Last", "Quiet", "Distant", "Golden", "Hollow", "Northern", "Broken", "Paper", "Burning",
              "Second", "Little", "Wild", "Bitter", "Lost", "Endless", "Crimson", "Pale", "Secret", "Long")
PERSON_ROLES = {
    "director": ("film director", "filmmaker", "film director and screenwriter"),
    "actor": ("actor", "stage and film actor", "actor"),
    "author": ("novelist", "writer", "author", "novelist and poet"),
    "singer": ("singer", "singer and songwriter", "vocalist"),
    "musician": ("guitarist", "drummer", "bassist", "keyboardist", "violinist"),
    "producer": ("record producer", "music producer", "record producer and engineer"),
    "founder": ("entrepreneur", "industrialist", "businessperson", "engineer and entrepreneur"),
    "scholar": ("scholar", "philanthropist", "educator", "physician and philanthropist"),
    "executive": ("business executive", "executive", "lawyer and executive"),
    "coach": ("coach",),
}


@dataclass
class Entity:
    """One thing in the world: a title (unique), a kind and its facts."""

    title: str
    kind: str  # country | city | person | organisation | film | book | band | album | team
    facts: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.facts[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.facts.get(key, default)


@dataclass
class World:
    seed: int
    entities: dict[str, Entity] = field(default_factory=dict)  # title -> entity, in creation order

    def add(self, e: Entity) -> Entity:
        if e.title in self.entities:
            raise ValueError(f"duplicate title {e.title!r}")
        self.entities[e.title] = e
        return e

    def of(self, kind: str, sub: str | None = None) -> list[Entity]:
        return [e for e in self.entities.values() if e.kind == kind and (sub is None or e.get("sub") == sub)]

    def __getitem__(self, title: str) -> Entity:
        return self.entities[title]


class _Builder:
    def __init__(self, seed: int, size: float) -> None:
        self.rng = random.Random(seed)
        self.names = NameMaker(self.rng)
        self.world = World(seed)
        self.size = size
        self.given = {"he": [self.names.word((2, 2)) for _ in range(70)],
                      "she": [self.names.word((2, 3), ending=self.rng.choice(("a", "e", "ia", "ina"))) for _ in range(70)]}

    def n(self, key: str) -> int:
        return max(2, round(COUNTS[key] * self.size))

    # --- places -------------------------------------------------------------------------
    def places(self) -> None:
        r = self.rng
        for _ in range(self.n("country")):
            name = self.names.unique(lambda: self.names.word((2, 2), ending=r.choice(("ia", "ia", "ar", "and", "esh", "ova"))))
            self.world.add(Entity(name, "country", {
                "demonym": demonym(name), "independence": r.randint(1650, 1990),
                "currency": self.names.word((2, 2)).lower(), "region": r.choice((
                    "in the north of the Asteran continent", "on the western coast of the Varel Sea",
                    "in the southern highlands", "on an archipelago in the Ossic Ocean",
                    "in the eastern plains", "on the shores of the Inner Sea", "in the central valleys",
                    "on the northern steppe"))}))
        for country in self.world.of("country"):
            cities = []
            for _ in range(self.n("city_per_country")):
                name = self.names.unique(lambda: self.names.word((2, 3)))
                pop = r.choice((r.randint(4_000, 60_000), r.randint(60_000, 900_000), r.randint(900_000, 4_000_000)))
                pop = round(pop, -2)
                cities.append(self.world.add(Entity(name, "city", {
                    "country": country.title, "population": pop, "founded": r.randint(700, 1890),
                    "river": self.names.word((2, 2)), "capital": False,
                    "known_for": r.choice(("its old harbour", "a medieval cathedral", "its textile mills",
                                           "a large botanical garden", "its spring festival", "salt mines",
                                           "a stone bridge", "its university quarter", "vineyards",
                                           "a lighthouse", "its glassworks", "a mountain railway"))})))
            capital = max(cities, key=lambda c: c["population"])
            capital.facts["capital"] = True
            country.facts["capital"] = capital.title
        # populations are unique so that "which is larger" always has one answer
        seen: set[int] = set()
        for c in self.world.of("city"):
            while c["population"] in seen:
                c.facts["population"] += 100
            seen.add(c["population"])

    # --- people -------------------------------------------------------------------------
    def person(self, role: str, born: int, died_after: int | None = None) -> Entity:
        r = self.rng
        pron = r.choice(("he", "she"))
        given = r.choice(self.given[pron])
        name = self.names.unique(lambda: f"{given} {self.names.word((2, 3))}")
        cities = [c for c in self.world.of("city") if c["founded"] < born] or self.world.of("city")
        facts: dict[str, Any] = {"role": role, "occupation": r.choice(PERSON_ROLES[role]), "pronoun": pron,
                                 "born": born, "birth_city": r.choice(cities).title, "works": []}
        if role == "actor" and pron == "she" and r.random() < 0.5:
            facts["occupation"] = "actress"
        if born < 1900 or (born < 1950 and r.random() < 0.6):
            facts["died"] = max(died_after or born, born + r.randint(50, 70)) + r.randint(1, 20)
            facts["died"] = min(facts["died"], 2023)
        return self.world.add(Entity(name, "person", facts))

    def reuse_or_new(self, pool: list[Entity], role: str, year: int, lo: int, hi: int, p_reuse: float) -> Entity:
        """A person aged lo..hi in `year`: an existing one from `pool` with probability p_reuse."""
        fits = [p for p in pool if lo <= year - p["born"] <= hi and p.get("died", 9999) > year]
        if fits and self.rng.random() < p_reuse:
            return self.rng.choice(fits)
        person = self.person(role, year - self.rng.randint(lo, hi), died_after=year)
        pool.append(person)
        return person

    # --- organisations ------------------------------------------------------------------
    def organisations(self) -> None:
        r = self.rng
        founders: list[Entity] = []
        execs: list[Entity] = []
        cities = self.world.of("city")
        specs = [("university", None)] * self.n("university") + [("studio", None)] * self.n("studio") + \
                [("publisher", None)] * self.n("publisher") + [("label", None)] * self.n("label") + \
                [("company", k) for k in (r.choice(COMPANY_KINDS) for _ in range(self.n("company")))]
        for sub, ck in specs:
            word = self.names.word((2, 3))
            if sub == "university":
                title, desc = r.choice(((f"{word} University", "a public university"),
                                        (f"{word} Institute of Technology", "a technical university"),
                                        (f"{word} College", "a private college")))
                founded = r.randint(1700, 1960)
            elif sub == "studio":
                title, desc, founded = f"{word} {r.choice(('Pictures', 'Studios', 'Films'))}", "a film studio", r.randint(1890, 1990)
            elif sub == "publisher":
                title, desc, founded = f"{word} {r.choice(('Press', 'Books', 'House'))}", "a publishing house", r.randint(1820, 1990)
            elif sub == "label":
                title, desc, founded = f"{word} {r.choice(('Records', 'Music', 'Sound'))}", "a record label", r.randint(1930, 2005)
            else:
                assert ck is not None
                title, desc, founded = f"{word} {ck[0]}", ck[1], r.randint(1850, 2010)
            self.names.claim(title)
            city = r.choice([c for c in cities if c["founded"] < founded] or cities)
            founder = self.reuse_or_new(founders, "scholar" if sub == "university" else "founder", founded, 24, 55, 0.1)
            facts: dict[str, Any] = {"sub": sub, "desc": desc, "founded": founded, "founder": founder.title,
                                     "city": city.title}
            if founded < 2000:
                since = r.randint(max(founded + 5, 1990), 2022)
                facts["chair"] = self.reuse_or_new(execs, "executive", since, 35, 65, 0.05).title
                facts["chair_since"] = since
            org = self.world.add(Entity(title, "organisation", facts))
            founder.facts["works"].append(("founded", org.title))
            if "chair" in facts:
                self.world[facts["chair"]].facts["works"].append(("chairs", org.title))

    # --- works --------------------------------------------------------------------------
    def work_title(self, kind: str) -> str:
        r, w = self.rng, self.names.word((2, 3))
        noun, adj = r.choice(TITLE_NOUNS), r.choice(TITLE_ADJS)
        forms = {
            "film": (f"{w}", f"The {w} {noun}", f"{noun} of {w}", f"{adj} {w}", f"{w} {noun}"),
            "book": (f"The {adj} {noun} of {w}", f"{w}", f"{noun} in {w}", f"The {w} {noun}", f"{adj} {w}"),
            "album": (f"{w}", f"{adj} {w}", f"{w} {noun}", f"{noun} for {w}"),
            "band": (f"The {w}s", f"{w}", f"{w} {noun}", f"{adj} {w}"),
        }[kind]
        return self.names.claim(r.choice(forms))

    def works(self) -> None:
        r = self.rng
        w = self.world
        directors: list[Entity] = []
        actors: list[Entity] = []
        authors: list[Entity] = []
        producers: list[Entity] = []
        coaches: list[Entity] = []
        def earliest(sub: str) -> int:
            return min(o["founded"] for o in w.of("organisation", sub))

        for _ in range(self.n("film")):
            year = r.randint(max(1925, earliest("studio")), 2022)
            title = self.work_title("film")
            director = self.reuse_or_new(directors, "director", year, 26, 70, 0.35)
            star = self.reuse_or_new(actors, "actor", year, 19, 60, 0.3)
            studio = r.choice([s for s in w.of("organisation", "studio") if s["founded"] <= year])
            film = w.add(Entity(title, "film", {"year": year, "director": director.title, "star": star.title,
                                                "studio": studio.title, "genre": r.choice(GENRES["film"]),
                                                "minutes": r.randint(78, 171)}))
            director.facts["works"].append(("directed", film.title))
            star.facts["works"].append(("starred in", film.title))
        for _ in range(self.n("book")):
            year = r.randint(max(1850, earliest("publisher")), 2022)
            title = self.work_title("book")
            author = self.reuse_or_new(authors, "author", year, 22, 75, 0.35)
            publisher = r.choice([p for p in w.of("organisation", "publisher") if p["founded"] <= year])
            setting = r.choice(w.of("city"))
            book = w.add(Entity(title, "book", {"year": year, "author": author.title, "publisher": publisher.title,
                                                "setting": setting.title, "genre": r.choice(GENRES["book"]),
                                                "pages": r.randint(120, 740)}))
            author.facts["works"].append(("wrote", book.title))
        for _ in range(self.n("band")):
            formed = r.randint(1955, 2016)
            title = self.work_title("band")
            city = r.choice(w.of("city"))
            singer = self.person("singer", formed - r.randint(17, 34))
            members = [self.person("musician", formed - r.randint(17, 34)) for _ in range(2)]
            band = w.add(Entity(title, "band", {"formed": formed, "city": city.title, "singer": singer.title,
                                                "members": [m.title for m in members],
                                                "genre": r.choice(GENRES["band"])}))
            singer.facts["works"].append(("fronts", band.title))
            for m in members:
                m.facts["works"].append(("plays in", band.title))
        bands = w.of("band")
        for _ in range(self.n("album")):
            band = r.choice(bands)
            lo = max(band["formed"] + 1, earliest("label"))
            year = r.randint(lo, max(lo, min(band["formed"] + 30, 2023)))
            title = self.work_title("album")
            producer = self.reuse_or_new(producers, "producer", year, 25, 65, 0.5)
            label = r.choice([lb for lb in w.of("organisation", "label") if lb["founded"] <= year])
            album = w.add(Entity(title, "album", {"year": year, "band": band.title, "producer": producer.title,
                                                  "label": label.title, "tracks": r.randint(8, 16)}))
            producer.facts["works"].append(("produced", album.title))
            band.facts.setdefault("albums", []).append(album.title)
        for _ in range(self.n("team")):
            city = r.choice(w.of("city"))
            founded = r.randint(max(1880, city["founded"] + 1), 2010)
            sport = r.choice(SPORTS)
            title = self.names.claim(f"{self.names.word((2, 3))} {r.choice(MASCOTS)}")
            coach = self.reuse_or_new(coaches, "coach", 2023, 36, 68, 0.0)
            coach.facts["occupation"] = r.choice((f"{sport} coach", f"former {sport} player and coach"))
            team = w.add(Entity(title, "team", {"sport": sport, "city": city.title, "founded": founded,
                                                "coach": coach.title, "stadium": f"{self.names.word((2, 2))} Arena",
                                                "titles": r.randint(0, 9)}))
            coach.facts["works"].append(("coaches", team.title))

    def education(self) -> None:
        unis = self.world.of("organisation", "university")
        for p in self.world.of("person"):
            options = [u for u in unis if u["founded"] <= p["born"] + 18]
            if options and self.rng.random() < 0.55:
                p.facts["university"] = self.rng.choice(options).title


def build_world(seed: int, size: float = 1.0) -> World:
    """The whole world for `seed`; `size` scales every count (tests use a small world)."""
    b = _Builder(seed, size)
    b.places()
    b.organisations()
    b.works()
    b.education()
    return b.world
