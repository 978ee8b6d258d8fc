"""Fictitious identities planted in synthetic notes and DICOM headers.

Every value here is made up from short word lists and random digits (deterministic per seed);
none belongs to a real person.  The de-identification work uses them as known targets: each
planted value is recorded in ``<name>.phi.parquet`` (see :mod:`toolkit.registry.synth.multimodal`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Karin", "Luis",
    "Maria", "Nils", "Olga", "Pedro", "Rosa", "Sven", "Tanja", "Umar", "Vera", "Walter", "Yusuf", "Zoe",
    "José", "Zoë", "Björn", "Renée",
)  # fmt: skip
LAST_NAMES = (
    "Adler", "Berg", "Castro", "Dietrich", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen",
    "Keller", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka",
    "Ulrich", "Vogel", "Weber", "Yilmaz", "Zimmermann", "Müller", "Núñez",
)  # fmt: skip
STREETS = ("Oak Street", "Mill Road", "Station Avenue", "Church Lane", "Lake Drive", "Hill Crescent")
CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Greenville", "Brookfield")
HOSPITALS = ("St. Aurelia Heart Centre", "Riverton General Hospital", "Lakeside University Clinic")
CLINICIANS = ("Dr. Amara Holt", "Dr. Jonas Brandt", "Dr. Mei Chen", "Dr. Ruth Okoye", "Dr. José Müller")


@dataclass(frozen=True)
class Identity:
    name: str
    mrn: str
    phone: str
    address: str
    email: str
    dicom_name: str  # DICOM PN form: Family^Given


def draw_identities(rng: np.random.Generator, person_ids: np.ndarray) -> dict[int, Identity]:
    """One made-up identity per person id (vectorised draws, then assembled)."""
    n = len(person_ids)
    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    mrn = rng.integers(10_000_000, 99_999_999, n)
    phone = rng.integers(0, 10_000_000, n)
    house = rng.integers(1, 200, n)
    street = rng.integers(0, len(STREETS), n)
    city = rng.integers(0, len(CITIES), n)
    zipc = rng.integers(10_000, 99_999, n)
    out: dict[int, Identity] = {}
    for i, pid in enumerate(person_ids.tolist()):
        f, la = FIRST_NAMES[first[i]], LAST_NAMES[last[i]]
        local = f"{_ascii(f)}.{_ascii(la)}".lower()
        out[int(pid)] = Identity(
            name=f"{f} {la}",
            mrn=f"{mrn[i]:08d}",
            phone=f"(555) {phone[i] // 10_000:03d}-{phone[i] % 10_000:04d}",
            address=f"{house[i]} {STREETS[street[i]]}, {CITIES[city[i]]} {zipc[i]:05d}",
            email=f"{local}{mrn[i] % 100:02d}@mail.example",
            dicom_name=f"{la}^{f}",
        )
    return out


_FOLD = str.maketrans({"é": "e", "ë": "e", "ö": "o", "ü": "u", "ú": "u", "ñ": "n", "á": "a"})


def _ascii(s: str) -> str:
    return s.translate(_FOLD)
