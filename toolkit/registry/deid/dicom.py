"""DICOM header de-identification by the PS3.15 Annex E Basic Application Level
Confidentiality Profile, with the Retain Longitudinal Temporal Information with Modified Dates
option (dates move by the person's keyed shift instead of being emptied).

The profile's table (every attribute with its action) is read from ``dicom-anonymizer``
(Kitware, BSD-3), which generates it from the standard (edition 2026c); Regent applies it
itself, because it needs keyed UIDs and per-person date shifts:

* ``X`` remove; ``Z`` empty (patient name and id get the keyed pseudonym, a dummy the profile
  allows; dates and date-times are shifted, as the modified-dates option says); ``D`` a dummy of the same VR (dates and date-times shifted, UIDs keyed, names
  ``ANONYMIZED``, numbers 0); ``U`` a keyed UID (the same original UID always maps to the same
  new one, so studies and series stay linked);
* a choice such as ``X/Z/D`` takes its last action (the one that keeps every IOD valid);
  ``X/Z/U*`` sequences keep their items with the UIDs inside replaced;
* sequences are walked item by item, every nested attribute by the same table;
* private attributes, curves (``50xx``) and overlay data and comments (``60xx,3000/4000``)
  are removed; attributes the profile does not list are kept;
* ``PatientIdentityRemoved`` = ``YES`` and the method is recorded (codes 113100 and 113107).

Burned-in text in the pixels is not examined.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from toolkit.errors import DeidentificationError
from toolkit.registry.deid.keys import uid

PROFILE_EDITION = "dicomfields_2026c"
DUMMY_TEXT = "ANONYMIZED"
_CATEGORY_ACTION = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}


@lru_cache(maxsize=1)
def _profile() -> tuple[dict[int, str], tuple[tuple[int, int, str], ...]]:
    try:
        from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
    except ImportError:
        raise DeidentificationError(
            "DICOM de-identification needs the 'dicom-anonymizer' package (the PS3.15 table); pip install it"
        ) from None
    db = dicom_anonymization_database_selector(PROFILE_EDITION)
    table: dict[int, str] = {}
    masked: list[tuple[int, int, str]] = []
    for category, action in _CATEGORY_ACTION.items():
        for entry in db[category]:
            if len(entry) == 2:
                table[(entry[0] << 16) | entry[1]] = action
            else:  # repeating groups: (group, element, group mask, element mask)
                group, element, gmask, emask = entry
                masked.append(((group << 16) | element, (gmask << 16) | emask, action))
    return table, tuple(masked)


def profile_table() -> dict[int, str]:
    """Tag (as an int) -> the Basic Profile action, e.g. ``0x00100010: "Z"`` (repeating groups
    such as curves ``50xx`` are matched by :func:`action_for`)."""
    return _profile()[0]


def action_for(tag: int) -> str | None:
    """The action for a tag: the table's, X for private tags, curves and overlay data/comments."""
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2 == 1:
        return "X"
    if 0x5000 <= group <= 0x50FF:
        return "X"
    if 0x6000 <= group <= 0x60FF and element in (0x3000, 0x4000):
        return "X"
    table, masked = _profile()
    if tag in table:
        return table[tag]
    for value, mask, action in masked:
        if tag & mask == value:
            return action
    return None


def applied(action: str) -> str:
    """The action applied for a choice: its last option (X/Z -> Z, X/Z/D -> D, X/Z/U* -> U*)."""
    return action.split("/")[-1]


def _shift_date(value: str, days: int) -> str:
    try:
        d = dt.datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return "19000101"
    return (d + dt.timedelta(days=days)).strftime("%Y%m%d") + value[8:]


class _Cleaner:
    def __init__(self, key: bytes, pseudo_id: str, shift_days: int) -> None:
        self.key, self.pseudo_id, self.shift = key, pseudo_id, shift_days

    def dummy(self, elem: Any) -> Any:
        vr = elem.VR
        value = elem.value
        if vr == "DA":
            return _multi(value, lambda v: _shift_date(v, self.shift))
        if vr == "DT":
            return _multi(value, lambda v: _shift_date(v, self.shift))
        if vr == "TM":
            return "000000.00"
        if vr == "UI":
            return _multi(value, lambda v: uid(self.key, v))
        if vr == "PN":
            return "ANONYMIZED"
        if vr in ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"):
            return 0
        if vr in ("IS", "DS"):
            return "0"
        if vr == "AS":
            return "000Y"
        if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
            return b"\x00\x00"
        if vr == "CS":
            return "ANONYMIZED"
        if vr in ("SH", "AE"):
            return DUMMY_TEXT[:16]
        return DUMMY_TEXT

    def clean(self, ds: Any) -> None:
        for elem in list(ds):
            tag = int(elem.tag)
            act = action_for(tag)
            if act is None:
                if elem.VR == "SQ":
                    for item in elem.value:
                        self.clean(item)
                continue
            how = applied(act)
            if how == "X":
                del ds[elem.tag]
            elif elem.VR == "SQ":
                for item in elem.value:  # D/Z/U* on a sequence: keep the items, clean inside
                    self.clean(item)
            elif how == "Z" and elem.VR in ("DA", "DT") and elem.value not in (None, ""):
                elem.value = self.dummy(elem)  # the modified-dates option: shift, do not empty
            elif how == "Z":
                elem.value = _empty(elem.VR)
            elif how in ("D", "U", "U*"):
                if elem.value is None or elem.value == "" or elem.value == b"":
                    continue
                elem.value = self.dummy(elem)
            else:  # pragma: no cover - the table has no other action
                raise DeidentificationError(f"DICOM profile: unknown action {act!r} for tag {tag:08X}")


def _multi(value: Any, f: Callable[[str], str]) -> Any:
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue | list):
        return [f(str(v)) for v in value]
    return f(str(value))


def _empty(vr: str) -> Any:
    if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return b""
    if vr in ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"):
        return None
    return ""


def deidentify_dataset(ds: Any, *, key: bytes, pseudo_id: str, shift_days: int) -> Any:
    """De-identify a pydicom Dataset in place (and return it)."""
    from pydicom.dataset import Dataset

    _Cleaner(key, pseudo_id, shift_days).clean(ds)
    ds.PatientName = f"ANON^{pseudo_id}"
    ds.PatientID = pseudo_id
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Regent: PS3.15 E.1 Basic Profile, modified dates, keyed UIDs"
    codes = []
    for value, meaning in (
        ("113100", "Basic Application Confidentiality Profile"),
        ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    if "PatientAge" in ds and str(ds.PatientAge).endswith("Y") and str(ds.PatientAge)[:-1].isdigit():
        ds.PatientAge = f"{min(int(str(ds.PatientAge)[:-1]), 90):03d}Y"
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in ds and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def deidentify_dicom(source: Path, target: Path, *, key: bytes, pseudo_id: str, shift_days: int) -> None:
    """Write a de-identified copy of one DICOM file."""
    import pydicom

    ds = pydicom.dcmread(source)
    deidentify_dataset(ds, key=key, pseudo_id=pseudo_id, shift_days=shift_days)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
