"""DICOM header de-identification (a subset of the PS3.15 Basic Application Confidentiality Profile).

Identifying attributes are removed or replaced: names and identifiers of the patient and staff,
institution and address, accession numbers, free-text comments; dates are shifted by the
person's shift; instance UIDs are replaced by keyed UIDs (studies and series stay linked);
private tags are removed; ``PatientIdentityRemoved`` is set.  Burned-in text in the pixels is
not examined.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from toolkit.privacy.deid.keys import uid

#: attributes removed outright
REMOVE = (
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "MilitaryRank",
    "EthnicGroup",
    "PatientComments",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "AccessionNumber",
    "StationName",
    "DeviceSerialNumber",
    "StudyID",
    "ImageComments",
    "StudyDescription",
    "RequestAttributesSequence",
)
DATES = (
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "PatientBirthDate",
    "InstanceCreationDate",
)
UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def _shift(value: str, days: int) -> str:
    try:
        d = dt.datetime.strptime(str(value)[:8], "%Y%m%d").date()
    except ValueError:
        return ""
    return (d + dt.timedelta(days=days)).strftime("%Y%m%d")


def deidentify_dicom(source: Path, target: Path, *, key: bytes, pseudo_id: str, shift_days: int) -> None:
    """Write a de-identified copy of one DICOM file."""
    import pydicom

    ds = pydicom.dcmread(source)
    ds.remove_private_tags()
    for name in REMOVE:
        if name in ds:
            delattr(ds, name)
    ds.PatientName = f"ANON^{pseudo_id}"
    ds.PatientID = pseudo_id
    for name in DATES:
        if name in ds and ds[name].value:
            setattr(ds, name, _shift(ds[name].value, shift_days))
    if "PatientAge" in ds and str(ds.PatientAge).endswith("Y") and str(ds.PatientAge)[:-1].isdigit():
        ds.PatientAge = f"{min(int(str(ds.PatientAge)[:-1]), 90):03d}Y"
    for name in UIDS:
        if name in ds:
            setattr(ds, name, uid(key, str(ds[name].value)))
    if "SOPInstanceUID" in ds and hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Regent: PS3.15 basic subset, keyed ids, shifted dates"
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
