"""How the synthetic notes say that a finding is absent, past, possible, conditional or a relative's.

These lists were written for the generator, independently of the extractor's trigger lists
(``toolkit/features/context_rules.yaml``); a test checks that no phrasing here, with its slot
removed, is one of the extractor's trigger phrases, so the extractor's F1 on synthetic notes is
not a replay of its own vocabulary.  They include what real notes do: shorthand ("h/o", "neg"),
the finding before its cue ("CABG: none"), ALL CAPS, double spaces and list items.  ``{x}`` is the
finding's surface form.
"""

from __future__ import annotations

import numpy as np

#: Status (attributes joined by "_", as in feature names) -> phrasings.
PHRASINGS: dict[str, tuple[str, ...]] = {
    "present": ("{x}", "{x}", "{x}", "known to have {x} currently", "ongoing {x}", "active {x}"),
    "negated": (
        "pt denies any {x}",
        "he denies having {x}",
        "there is no {x}",
        "no definite {x}",
        "negative for any {x}",
        "neg for {x}",
        "{x} is absent",
        "{x}: none",
        "without any {x}",
        "no clinical evidence of {x}",
        "does not have {x}",
        "never any {x}",
    ),
    "historical": (
        "known h/o {x}",
        "significant hx of {x}",
        "history of {x} in the distant past",
        "prior history of {x}",
        "remote episode of {x}",
        "previous bout of {x}",
        "{x} once, in the past",
        "past history significant for {x}",
        "pt is s/p {x}",
        "status post {x} years ago",
    ),
    "negated_historical": (
        "no prior {x}",
        "no past history of {x}",
        "never had {x} before",
        "no previous episode of {x}",
        "denies any past {x}",
    ),
    "uncertain": (
        "concern for early {x}",
        "possible early {x}",
        "? {x}",
        "questionable early {x}",
        "cannot fully exclude {x}",
        "{x} is suspected clinically",
        "rule out {x} per protocol",
    ),
    "hypothetical": (
        "return to the ED if {x} develops",
        "call the clinic if {x} recurs",
        "should {x} occur, call 911",
        "in case of {x}, take nitroglycerin",
        "seek care if {x} appears",
    ),
    "family": (
        "mother had {x} at 67",
        "father with {x}",
        "{x} in his brother",
        "sister diagnosed with {x} at 50",
        "{x} in a paternal uncle",
        "maternal grandmother: {x}",
    ),
}


def render(rng: np.random.Generator, status: str, surface: str) -> tuple[str, int, int]:
    """A phrasing of ``status`` around ``surface``, and the surface's span in it; sometimes in
    ALL CAPS or with a double space, as real notes are."""
    options = PHRASINGS[status]
    phrase = options[int(rng.integers(0, len(options)))]
    u = rng.random()
    if u < 0.08:
        phrase, surface = phrase.upper(), surface.upper() if len(surface) > 4 else surface
    elif u < 0.14:
        phrase = phrase.replace(" ", "  ", 1)
    before, after = phrase.split("{x}" if "{x}" in phrase else "{X}")
    if phrase[:1].islower() and rng.random() < 0.5:
        before = before[:1].upper() + before[1:] if before else before
    return before + surface + after, len(before), len(before) + len(surface)
