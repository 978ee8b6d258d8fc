"""De-identification: keyed pseudonyms, date shifting, top-coding, coarse geography, note and
DICOM scrubbing, and a k-anonymity / l-diversity report (``regent registry deidentify``);
free-text notes with surrogates or masks (``regent notes deidentify``, docs/privacy.md)."""

from toolkit.registry.deid.engine import NoteDeidentifier, SiteTerms
from toolkit.registry.deid.notes import deidentify_notes
from toolkit.registry.deid.registry import DeidConfig, DeidReport, anonymity_report, deidentify_registry
from toolkit.registry.deid.text import find_identifiers, scrub_text

__all__ = [
    "DeidConfig",
    "DeidReport",
    "NoteDeidentifier",
    "SiteTerms",
    "anonymity_report",
    "deidentify_notes",
    "deidentify_registry",
    "find_identifiers",
    "scrub_text",
]
