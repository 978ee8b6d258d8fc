"""DICOM headers against the PS3.15 Annex E Basic Profile, on every pydicom test file that pydicom
can read: no attribute the profile lists keeps its original value (X: gone; Z: empty or a dummy;
D: a dummy or the shifted date; U: a keyed UID), in nested sequences too; private attributes
are gone; and the profile table itself matches the standard on attributes checked by hand."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_files  # noqa: E402

from toolkit.registry.deid.dicom import action_for, applied, deidentify_dataset, profile_table  # noqa: E402
from toolkit.registry.deid.keys import uid  # noqa: E402

KEY = b"\x01" * 32


def _readable() -> list[tuple[Path, Any]]:
    out = []
    for f in sorted(get_testdata_files()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # some test files are deliberately odd
                out.append((Path(f), pydicom.dcmread(f)))
        except Exception:  # files pydicom itself cannot read are out of scope
            continue
    return out


def _kept(src: Any, out: Any, path: str, kept: list[str], checked: list[int]) -> None:
    """Attributes of ``src`` the profile lists that still hold their value in ``out``."""
    for elem in src:
        tag = int(elem.tag)
        act = action_for(tag)
        other = out.get(elem.tag) if out is not None else None
        if elem.VR == "SQ":
            if act is not None and applied(act) == "X":
                checked.append(tag)
                if other is not None:
                    kept.append(f"{path}{elem.keyword or hex(tag)} (sequence, {act})")
            elif other is not None:
                for i, (a, b) in enumerate(zip(elem.value, other.value, strict=False)):
                    _kept(a, b, f"{path}{elem.keyword}[{i}].", kept, checked)
            continue
        if act is None or elem.value in (None, "", b""):
            continue
        checked.append(tag)
        if other is not None and other.value == elem.value:
            kept.append(f"{path}{elem.keyword or hex(tag)} ({act})")


def test_no_profile_attribute_keeps_its_value_in_any_readable_pydicom_test_file() -> None:
    files = _readable()
    assert len(files) > 100  # pydicom ships about 160 readable files
    kept: list[str] = []
    checked: list[int] = []
    private_left = 0
    for path, src in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's test files hold deliberately invalid values
            out = deidentify_dataset(pydicom.dcmread(path), key=KEY, pseudo_id="P1", shift_days=17)
            _kept(src, out, f"{path.name}: ", kept, checked)
        private_left += sum(1 for e in out.iterall() if e.tag.is_private)
        assert out.PatientIdentityRemoved == "YES"
    assert not kept, kept[:20]
    assert private_left == 0
    assert len(set(checked)) > 60 and len(checked) > 2000  # the check saw many listed attributes


def test_dates_move_by_the_shift_and_uids_map_consistently() -> None:
    path, _ = next((p, d) for p, d in _readable() if d.get("StudyDate") and d.get("SeriesInstanceUID"))
    src = pydicom.dcmread(path)
    a = deidentify_dataset(pydicom.dcmread(path), key=KEY, pseudo_id="P1", shift_days=17)
    b = deidentify_dataset(pydicom.dcmread(path), key=KEY, pseudo_id="P1", shift_days=17)
    import datetime as dt

    before = dt.datetime.strptime(src.StudyDate, "%Y%m%d")
    after = dt.datetime.strptime(a.StudyDate, "%Y%m%d")
    assert (after - before).days == 17
    assert a.SeriesInstanceUID == b.SeriesInstanceUID == uid(KEY, src.SeriesInstanceUID)
    assert a.SeriesInstanceUID != src.SeriesInstanceUID
    assert str(a.PatientName) == "ANON^P1" and a.PatientID == "P1"


def test_profile_table_matches_the_standard_on_hand_checked_attributes() -> None:
    # PS3.15 Table E.1-1, Basic Profile column: actions unchanged across recent editions
    expected = {
        0x00100010: "Z",  # Patient's Name
        0x00100030: "Z",  # Patient's Birth Date
        0x00080050: "Z",  # Accession Number
        0x00080080: "X/Z/D",  # Institution Name
        0x00080090: "Z",  # Referring Physician's Name
        0x0020000D: "U",  # Study Instance UID
        0x0020000E: "U",  # Series Instance UID
        0x00080018: "U",  # SOP Instance UID
        0x00081030: "X",  # Study Description
        0x00101010: "X",  # Patient's Age
        0x00081140: "X/Z/U*",  # Referenced Image Sequence
        0x00080020: "Z",  # Study Date
    }
    table = profile_table()
    assert {t: table.get(t) for t in expected} == expected
    assert len(table) > 600
    assert action_for(0x00091001) == "X"  # private
    assert action_for(0x50023000) == "X"  # curve data, repeating group
    assert action_for(0x60024000) == "X"  # overlay comments
    assert action_for(0x00280010) is None  # Rows: not in the profile, kept
