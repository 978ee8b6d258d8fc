"""Synthetic DICOM images with known measurements: coronary angiograms and two-frame echoes.

* **Vessel (XA)** 8-bit, 64 x 128 (some 96 x 192): one contrast-filled coronary segment, dark on a
  brighter background with a left-to-right gradient, gently curved, with a smooth (raised-cosine)
  narrowing of known percent diameter stenosis.  Pixels are rendered with partial-volume
  anti-aliasing, blurred (sigma 0.7 px) and noised, so edges are not pixel-exact.
* **Echo (US)** 16-bit (12 stored), two frames of 96 x 96: the left-ventricular cavity (dark) as an
  ellipse inside a bright myocardial ring at end-diastole and end-systole; the axes are chosen so
  that the area-length volumes give the person's true LVEF.
* **Other (CT)**: a small chest CT slice of noise, to exercise "other modality" handling.

Headers carry the planted identifiers (PatientName, PatientID = MRN, PatientBirthDate,
InstitutionName, ReferringPhysicianName, StudyDate); each is recorded in the PHI table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

XA_SOP = "1.2.840.10008.5.1.4.1.1.12.1"  # X-Ray Angiographic Image Storage
US_SOP = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
CT_SOP = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
VESSELS = ("LAD", "LCX", "RCA")


def render_vessel(
    rng: np.random.Generator, stenosis_pct: float, shape: tuple[int, int] = (64, 128)
) -> np.ndarray:
    """An angiographic frame (uint8) of one vessel with ``stenosis_pct`` % diameter narrowing."""
    h, w = shape
    k = h / 64.0
    diameter = rng.uniform(8.0, 14.0) * k
    amp, period, phase = rng.uniform(0, 4) * k, rng.uniform(100, 200) * (w / 128), rng.uniform(0, 2 * np.pi)
    x = np.arange(w) + 0.5
    yc = h / 2 + amp * np.sin(2 * np.pi * x / period + phase)
    slope = amp * 2 * np.pi / period * np.cos(2 * np.pi * x / period + phase)
    x0 = rng.uniform(0.3, 0.7) * w
    half_len = rng.uniform(6, 12) * (w / 128)
    g = np.where(np.abs(x - x0) < half_len, 0.5 * (1 + np.cos(np.pi * (x - x0) / half_len)), 0.0)
    d = diameter * (1 - stenosis_pct / 100 * g)
    half_thick = d / 2 * np.sqrt(1 + slope**2)  # vertical half-thickness of a tilted tube
    y = np.arange(h)[:, None] + 0.5
    coverage = np.clip(half_thick[None, :] - np.abs(y - yc[None, :]) + 0.5, 0, 1)
    background = 170 + 30 * (x[None, :] / w) + 0 * y
    contrast = rng.uniform(80, 110)
    img = gaussian_filter(background - contrast * coverage, 0.7) + rng.normal(0, 3.0, (h, w))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _ellipse_coverage(h: int, w: int, a: float, b: float, sub: int = 4) -> np.ndarray:
    """Fraction of each pixel inside an axis-aligned ellipse (semi-axes a vertical, b horizontal)."""
    off = (np.arange(sub) + 0.5) / sub
    ys = (np.arange(h)[:, None] + off[None, :]).ravel() - h / 2
    xs = (np.arange(w)[:, None] + off[None, :]).ravel() - w / 2
    inside = (ys[:, None] / a) ** 2 + (xs[None, :] / b) ** 2 <= 1.0
    return inside.reshape(h, sub, w, sub).mean(axis=(1, 3))


def render_echo(rng: np.random.Generator, lvef_pct: float, size: int = 96) -> np.ndarray:
    """Two frames (end-diastole, end-systole), uint16 with 12 bits stored."""
    a_d, b_d = rng.uniform(30, 38), rng.uniform(14, 18)
    a_s = a_d * rng.uniform(0.85, 0.95)
    # area-length volume is proportional to a * b**2: choose b_s so that 1 - V_es/V_ed = LVEF
    b_s = b_d * np.sqrt((1 - lvef_pct / 100) * a_d / a_s)
    frames = []
    for a, b in ((a_d, b_d), (a_s, b_s)):
        cavity = _ellipse_coverage(size, size, a, b)
        wall = _ellipse_coverage(size, size, min(a + 8, size / 2 - 1), min(b + 8, size / 2 - 1))
        img = 500 + 1800 * wall - 2100 * cavity  # blood ~200, myocardium ~2300, outside ~500
        img = gaussian_filter(img, 0.7) + rng.normal(0, 40, (size, size))
        frames.append(np.clip(np.round(img), 0, 4095).astype(np.uint16))
    return np.stack(frames)


def render_other(rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.normal(1000, 200, (64, 64)), 0, 4095).astype(np.uint16)


@dataclass(frozen=True)
class Header:
    modality: str
    sop_class: str
    body_part: str
    description: str
    patient_name: str
    mrn: str
    birth_date: dt.date
    sex: str
    institution: str
    physician: str
    study_date: dt.datetime


def write_dicom(path: Path, pixels: np.ndarray, header: Header, uid_seed: str) -> None:
    """Write one small, valid DICOM file (explicit VR little endian, uncompressed)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    sop_uid = generate_uid(entropy_srcs=[uid_seed, "sop"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(header.sop_class)
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = header.sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[uid_seed, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid_seed, "series"])
    ds.Modality = header.modality
    ds.BodyPartExamined = header.body_part
    ds.SeriesDescription = header.description
    ds.PatientName = header.patient_name
    ds.PatientID = header.mrn
    ds.PatientBirthDate = header.birth_date.strftime("%Y%m%d")
    ds.PatientSex = header.sex
    ds.InstitutionName = header.institution
    ds.ReferringPhysicianName = header.physician
    ds.StudyDate = header.study_date.strftime("%Y%m%d")
    ds.StudyTime = header.study_date.strftime("%H%M%S")
    ds.PatientIdentityRemoved = "NO"
    frames = pixels if pixels.ndim == 3 else pixels[None]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    if pixels.ndim == 3:
        ds.NumberOfFrames = int(frames.shape[0])
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated = bits
    ds.BitsStored = 8 if bits == 8 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)


#: The DICOM keywords that carry planted identifiers, with their PHI type.
PHI_TAGS: dict[str, str] = {
    "PatientName": "NAME",
    "PatientID": "MRN",
    "PatientBirthDate": "DATE",
    "InstitutionName": "INSTITUTION",
    "ReferringPhysicianName": "CLINICIAN",
    "StudyDate": "DATE",
}


def header_values(header: Header) -> dict[str, str]:
    """The value written for each tag in :data:`PHI_TAGS` (as the file stores it)."""
    return {
        "PatientName": header.patient_name,
        "PatientID": header.mrn,
        "PatientBirthDate": header.birth_date.strftime("%Y%m%d"),
        "InstitutionName": header.institution,
        "ReferringPhysicianName": header.physician,
        "StudyDate": header.study_date.strftime("%Y%m%d"),
    }
