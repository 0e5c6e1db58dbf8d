"""Invented, pronounceable, unique names for the offline world.

Words are built from syllables (onset + vowel + optional coda) with a few phonotactic
filters, so they read like place and family names but belong to nothing real. A small
blocklist keeps out famous real names and common English words the syllables can spell,
and every invented word is handed out once: no two entities share an invented token, and
no two names collide after `normalize_answer` (so exact match never confuses two answers).
"""

from __future__ import annotations

import random
import re

from fireact_core.metrics import normalize_answer

ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr",
          "kr", "tr", "th", "sh", "st", "vr", "pl", "gl", "fl", "sk", "j", "w", "c", "qu")
SIMPLE_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "l", "r", "n", "th", "sh")
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "a", "i")
DIPHTHONGS = ("ae", "ai", "ei", "ou", "ia", "y")
CODAS = ("", "", "", "n", "r", "l", "s", "th", "rn", "nd", "m", "sk", "rd", "lt", "st", "v", "x")

# Famous real places, people, brands and everyday English words the generator can spell,
# plus the invented names of the prompt exemplars (fireact_core/prompts/default.yaml).
_BLOCKED = """
paris london rome tokyo berlin madrid lima cuba mali chad oman iran iraq peru togo fiji laos nepal
india china japan kenya ghana sudan chile spain italy malta samoa tonga niger benin gabon yemen qatar
syria libya egypt haiti korea nauru palau congo zambia angola rwanda burundi somalia bali java sumatra
texas utah idaho ohio maine nevada dakota kansas boston denver dallas austin miami tampa orlando
moscow kiev riga oslo bern vienna prague sofia minsk baku doha dubai cairo tunis dakar accra lagos
delhi dhaka seoul hanoi manila jakarta sydney perth darwin hobart auckland lyon nice nantes lille
milan turin naples genoa pisa siena verona venice florence porto braga seville toledo malaga bilbao
geneva zurich basel munich bonn hamburg bremen dresden leipzig essen cologne krakow gdansk lodz
sony nike adidas apple google amazon tesla honda mazda toyota nokia volvo saab fiat ikea lego
zara gucci prada rolex pepsi shell intel yahoo skype tiktok uber lyft visa
homer plato nero zeus hera thor odin loki ares apollo athena venus mars jupiter saturn pluto
elvis madonna prince bono sting adele shakira rihanna beyonce drake eminem
darwin newton kepler galileo tesla edison curie euler gauss bach mozart handel haydn verdi liszt
salad minute rumor lemon melon panel total pilot vital solar lunar tiger model moral manor tenor sonar
radar human woman demon token saliva banana cobra coma data delta gala halo kilo lava mama papa
meta mono nova opera pasta pizza polo sofa soda toga tuna vista zero piano radio video silo
bingo cargo disco ego hero judo logo memo metro motto patio photo ratio retro solo tango tempo
torso veto zulu tabu haiku karma lotus magma omega pagoda saga sauna sonata stigma tuba vodka
boron argon neon xenon radon carbon silicon titan baron canon melody remedy rosary salary
velmora idris kallum tessary ostrand quill harbor amber weft marlow brenn ossa
"""
BLOCKLIST = frozenset(_BLOCKED.split())

_BAD = re.compile(r"(.)\1\1|[^aeiouy]{3}|[aeiouy]{3}|^[^aeiouy]{2}[^aeiouy]|yy|qu[^aeiy]|[jwcq]$|(?<![st])h$")


def _invent(rng: random.Random, n: int) -> str:
    """n syllables: a free first onset, simple inner onsets, one diphthong at most, a final coda."""
    diph = rng.randrange(n) if rng.random() < 0.35 else -1
    out = []
    for i in range(n):
        onset = rng.choice(ONSETS if i == 0 else SIMPLE_ONSETS)
        if i == 0 and rng.random() < 0.15:
            onset = ""  # a few names start with a vowel
        vowel = rng.choice(DIPHTHONGS if i == diph else VOWELS)
        coda = rng.choice(CODAS) if i == n - 1 else rng.choice(("", "", "", "n", "r", "l"))
        out.append(onset + vowel + coda)
    return "".join(out)


def _pronounceable(word: str) -> bool:
    return 4 <= len(word) <= 10 and not _BAD.search(word)


class NameMaker:
    """Hands out invented words and names, each at most once per world."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tokens: set[str] = set()  # invented words handed out so far
        self.names: set[str] = set()  # normalised full names handed out so far

    def word(self, syllables: tuple[int, int] = (2, 3), ending: str = "") -> str:
        """A new invented word (capitalised), optionally with a fixed ending like 'ia'."""
        for _ in range(10_000):
            w = _invent(self.rng, self.rng.randint(*syllables))
            if ending:
                w = w.rstrip("aeiouy") + ending
            if _pronounceable(w) and w not in self.tokens and w not in BLOCKLIST:
                self.tokens.add(w)
                return w.capitalize()
        raise RuntimeError("ran out of invented words")  # a programmer error: the syllable set is too small

    def claim(self, name: str) -> str:
        """Register a full name; return it, or raise ValueError when it collides."""
        key = normalize_answer(name).replace(" ", "")
        if key in self.names or key in BLOCKLIST:
            raise ValueError(name)
        self.names.add(key)
        return name

    def unique(self, make) -> str:  # type: ignore[no-untyped-def]
        """Call `make()` until it yields a name not taken yet."""
        for _ in range(1000):
            try:
                return self.claim(make())
            except ValueError:
                continue
        raise RuntimeError("could not make a unique name")


def demonym(country: str) -> str:
    """Kelvaria → Kelvarian, Ostrand → Ostrandish, Dumor → Dumorese."""
    if country.endswith("ia"):
        return country + "n"
    if country.endswith(("a", "e", "i", "o", "u", "y")):
        return country.rstrip("aeiouy") + "ian"
    if country.endswith(("nd", "rd", "st", "sk")):
        return country + "ish"
    return country + "ese"
