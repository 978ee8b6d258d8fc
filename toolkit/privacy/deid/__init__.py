"""De-identification: keyed pseudonyms, date shifting, top-coding, coarse geography, note and
DICOM scrubbing, and a k-anonymity / l-diversity report (``regent registry deidentify``)."""

from toolkit.privacy.deid.registry import DeidConfig, DeidReport, anonymity_report, deidentify_registry
from toolkit.privacy.deid.text import find_identifiers, scrub_text

__all__ = [
    "DeidConfig",
    "DeidReport",
    "anonymity_report",
    "deidentify_registry",
    "find_identifiers",
    "scrub_text",
]
