"""Facts that only notes or only images carry, their effect on survival, and the notes/images writer.

Latent facts (drawn for every person from their own random stream, whether or not notes and
images are written, so the structured data and the outcome never depend on those options):

* ``prior_cardiac_arrest`` (10 %) and ``prior_cabg`` (10 % + 30 % with a prior MI): stated in the
  admission note's past medical history (and often in an earlier discharge summary);
* ``cardiogenic_shock`` at the index admission (6 % + 8 % in HFrEF): stated in the admission note;
* coronary angiography (30 % + 35 % with a prior MI) in the 180 days before index, 1-3 vessel
  images, each with a percent diameter stenosis; the report never states the stenosis;
* an echo at index (25 %) whose two frames encode the person's true LVEF.

Notes also carry decoys that must not count: negations ("No prior cardiac arrest"), family history
("Father died of cardiac arrest"), uncertainty ("Concern for early cardiogenic shock") and
historical mentions of shock ("Remote cardiogenic shock in 2011 ... fully recovered").

:data:`MULTIMODAL_LOG_HR` adds to the Weibull linear predictor beside the structured
:data:`~toolkit.registry.synth.heart_failure.TRUE_LOG_HR`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.registry import schema as S
from toolkit.registry.synth import images as I
from toolkit.registry.synth.identities import CLINICIANS, HOSPITALS, draw_identities
from toolkit.registry.synth.notes import NOTE_RENDERERS, NoteBuilder, mojibake

DAY = 86_400
EPOCH = dt.datetime(1970, 1, 1)

#: True log hazard ratios of the note-only and image-only terms (per unit of each term).
MULTIMODAL_LOG_HR: dict[str, float] = {
    "prior_cardiac_arrest": 0.70,
    "cardiogenic_shock": 0.90,
    "prior_cabg": 0.35,
    "stenosis_excess": 0.25,
}
MULTIMODAL_CENTRE: dict[str, float] = {
    "prior_cardiac_arrest": 0.10,
    "cardiogenic_shock": 0.10,
    "prior_cabg": 0.18,
    "stenosis_excess": 0.0,
}
MULTIMODAL_TERMS: dict[str, dict[str, object]] = {
    "prior_cardiac_arrest": {
        "modality": "notes",
        "source": "a resuscitated cardiac arrest asserted for the patient (present or historical) in a note "
        "before index; negated, uncertain and family mentions do not count",
    },
    "cardiogenic_shock": {
        "modality": "notes",
        "source": "cardiogenic shock asserted present in the index admission note; historical, negated, "
        "uncertain and family mentions do not count",
    },
    "prior_cabg": {
        "modality": "notes",
        "source": "prior CABG asserted for the patient (historical or present) in a note before index",
    },
    "stenosis_excess": {
        "modality": "images",
        "source": "(maximal percent diameter stenosis over the angiographic images in the 180 days before "
        "index - 50) / 10 for persons with an angiogram; 0 without one",
    },
}


def draw_latent(rng: np.random.Generator, p: pd.DataFrame) -> pd.DataFrame:
    """The note-only and image-only facts of each person (one row per row of ``p``)."""
    n = len(p)
    prior_mi = p["prior_mi"].to_numpy()
    hfref = p["hfref"].to_numpy()
    out = pd.DataFrame(index=p.index)
    out["prior_cardiac_arrest"] = (rng.random(n) < 0.10).astype(int)
    out["cardiogenic_shock"] = (rng.random(n) < 0.06 + 0.08 * hfref).astype(int)
    out["prior_cabg"] = (rng.random(n) < 0.10 + 0.30 * prior_mi).astype(int)
    angio = rng.random(n) < 0.30 + 0.35 * prior_mi
    out["had_angio"] = angio.astype(int)
    out["n_vessels"] = np.where(angio, 1 + rng.binomial(2, 0.5, n), 0)
    sten = np.where(rng.random((n, 3)) < 0.35, rng.uniform(0, 30, (n, 3)), rng.uniform(30, 90, (n, 3)))
    sten = np.round(sten, 1)
    for k in range(3):
        out[f"stenosis_{k + 1}"] = np.where(out["n_vessels"] > k, sten[:, k], np.nan)
    out["max_stenosis"] = out[["stenosis_1", "stenosis_2", "stenosis_3"]].max(axis=1)
    out["stenosis_excess"] = np.where(angio, (out["max_stenosis"].fillna(50) - 50) / 10, 0.0)
    out["angio_days_before"] = np.where(angio, rng.integers(0, 181, n), -1)
    out["had_echo"] = (rng.random(n) < 0.25).astype(int)
    return out


def latent_lp(latent: pd.DataFrame) -> np.ndarray:
    lp = np.zeros(len(latent))
    for term, beta in MULTIMODAL_LOG_HR.items():
        lp += beta * (latent[term].to_numpy(float) - MULTIMODAL_CENTRE[term])
    return lp


@dataclass
class Multimodal:
    """Rows for the notes and images tables and the three annotation tables, for one chunk."""

    notes: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    image_truth: list[dict[str, Any]] = field(default_factory=list)
    phi: list[dict[str, Any]] = field(default_factory=list)

    def frames(self) -> dict[str, pd.DataFrame]:
        cols = {
            "notes": ["note_id", S.PERSON_ID, S.TIME, "note_type", "text"],
            "images": ["image_id", S.PERSON_ID, S.TIME, "modality", "body_site", "uri"],
            "mentions": ["note_id", S.PERSON_ID, "note_type", "concept", "start", "end", "section",
                         "negated", "uncertain", "hypothetical", "historical", "experiencer"],
            "image_truth": [
                "image_id", S.PERSON_ID, "kind", "vessel", "stenosis_pct", "lvef_pct", "rows", "cols", "defect",
            ],
            "phi": ["source", "note_id", "image_id", "type", "start", "end", "tag", "value"],
        }  # fmt: skip
        out = {}
        for name, c in cols.items():
            frame = pd.DataFrame(getattr(self, name), columns=c)
            if name == "notes" or name == "images":
                frame[S.TIME] = pd.to_datetime(frame[S.TIME]).astype("datetime64[s]")
            out[name] = frame
        for col in ("note_id", "image_id", "start", "end"):
            out["phi"][col] = out["phi"][col].astype("Int64")
        return out


def _when(secs: int) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=int(secs))


def generate(
    p: pd.DataFrame,
    person: pd.DataFrame,
    rng: np.random.Generator,
    *,
    notes: bool,
    images: bool,
    image_root: Path | None,
    image_prefix: str,
    seed: int,
) -> Multimodal:
    """Render notes and write DICOM files for the persons of one chunk (heart-failure persons only)."""
    mm = Multimodal()
    ids = draw_identities(rng, p[S.PERSON_ID].to_numpy())
    birth = dict(zip(person[S.PERSON_ID].tolist(), person["birth_date"].tolist(), strict=True))
    rows = p[p["has_hf"]].to_dict("records")
    for r in rows:
        pid = int(r[S.PERSON_ID])
        ident = ids[pid]
        index = int(r["index_s"])
        start = int(r["obs_start_s"])
        clinician = CLINICIANS[int(rng.integers(0, len(CLINICIANS)))]
        hospital = HOSPITALS[int(rng.integers(0, len(HOSPITALS)))]
        angio_s = max(start + 3600, index - int(r["angio_days_before"]) * DAY) if r["had_angio"] else None
        if notes:
            _person_notes(mm, r, ident, birth[pid], clinician, hospital, index, start, angio_s, rng)
        if images and image_root is not None:
            _person_images(mm, r, ident, birth[pid], clinician, hospital, index, angio_s, rng, image_root,
                           image_prefix, seed)  # fmt: skip
    return mm


def _person_notes(
    mm: Multimodal,
    r: dict[str, Any],
    ident: Any,
    birth: dt.date,
    clinician: str,
    hospital: str,
    index: int,
    start: int,
    angio_s: int | None,
    rng: np.random.Generator,
) -> None:
    pid = int(r[S.PERSON_ID])
    year = _when(index).year
    values = {
        "age": int(r["age"]),
        "sex": "man" if r["male"] else "woman",
        "days": int(rng.integers(2, 15)),
        "pillows": int(rng.integers(2, 5)),
        "lvef": int(r["lvef"]),
        "lvef_text": f"{int(r['lvef'])}%",
        "sbp": int(r["sbp"]),
        "temp": f"{rng.normal(36.9, 0.4):.1f}",
        "ef_words": "Severely reduced" if r["lvef"] < 30 else "Reduced" if r["lvef"] < 50 else "Preserved",
        "views": int(r["n_vessels"]) * 2,
        **{k: int(r[k]) for k in ("hypertension", "diabetes", "ckd", "copd", "af", "prior_mi")},
        **{k: int(r[k]) for k in ("prior_cardiac_arrest", "cardiogenic_shock", "prior_cabg")},
    }
    plan: list[tuple[str, int]] = [("admission_note", index)]
    if rng.random() < 0.4 and index - 30 * DAY > start:
        plan.append(
            ("discharge_summary", start + int(rng.random() * (index - 30 * DAY - start)) // 3600 * 3600)
        )
    if r["had_echo"]:
        plan.append(("echo_report", index))
    if angio_s is not None:
        plan.append(("angiography_report", angio_s))
    u = rng.random()
    if u < 0.006:
        plan.append(("referral_letter", max(start, index - 10 * DAY)))
    elif u < 0.009:
        plan.append(("flowsheet", index))
    elif u < 0.02:
        plan.append(("progress_note", index))  # an empty note
    for k, (kind, when) in enumerate(plan):
        note_id = pid * 10 + k
        ident_values = {
            "NAME": ident.name,
            "MRN": ident.mrn,
            "DOB": birth.isoformat(),
            "DATE": _when(when).date().isoformat(),
            "YEAR": str(int(year - rng.integers(1, 12))),
            "PHONE": ident.phone,
            "ADDRESS": ident.address,
            "EMAIL": ident.email,
            "CLINICIAN": clinician,
            "INSTITUTION": hospital,
        }
        if kind == "progress_note":
            mm.notes.append({"note_id": note_id, S.PERSON_ID: pid, S.TIME: _when(when), "note_type": kind,
                             "text": "" if rng.random() < 0.5 else None})  # fmt: skip
            continue
        b = NoteBuilder(rng, encode=mojibake if kind == "referral_letter" else (lambda s: s))
        NOTE_RENDERERS[kind](b, values, ident_values)
        mm.notes.append(
            {"note_id": note_id, S.PERSON_ID: pid, S.TIME: _when(when), "note_type": kind, "text": b.value}
        )
        for concept, attrs, s, e, section in b.mentions:
            mm.mentions.append({"note_id": note_id, S.PERSON_ID: pid, "note_type": kind, "concept": concept,
                                "start": s, "end": e, "section": section, **attrs})  # fmt: skip
        for kind_phi, s, e, value in b.phi:
            mm.phi.append({"source": "note", "note_id": note_id, "image_id": None, "type": kind_phi, "start": s,
                           "end": e, "tag": None, "value": value})  # fmt: skip


def _person_images(
    mm: Multimodal,
    r: dict[str, Any],
    ident: Any,
    birth: dt.date,
    clinician: str,
    hospital: str,
    index: int,
    angio_s: int | None,
    rng: np.random.Generator,
    root: Path,
    prefix: str,
    seed: int,
) -> None:
    pid = int(r[S.PERSON_ID])
    sex = "M" if r["male"] else "F"
    physician = "^".join(reversed(clinician.removeprefix("Dr. ").split(" ", 1)))
    plan: list[dict[str, Any]] = []
    if angio_s is not None:
        for k in range(int(r["n_vessels"])):
            shape = (96, 192) if rng.random() < 0.05 else (64, 128)
            plan.append({"kind": "vessel", "vessel": I.VESSELS[k], "stenosis_pct": float(r[f"stenosis_{k + 1}"]),
                         "time": angio_s, "shape": shape})  # fmt: skip
    if r["had_echo"]:
        plan.append({"kind": "echo", "lvef_pct": float(r["lvef"]), "time": index})
    if rng.random() < 0.02:
        plan.append({"kind": "other", "time": index})
    for k, item in enumerate(plan):
        image_id = pid * 10 + k
        rel = f"{prefix}/{pid // 1000:05d}/{image_id}.dcm"
        when = _when(item["time"])
        if item["kind"] == "vessel":
            pixels = I.render_vessel(rng, item["stenosis_pct"], item["shape"])
            header = I.Header("XA", I.XA_SOP, "HEART", item["vessel"], ident.dicom_name, ident.mrn, birth, sex,
                              hospital, physician, when)  # fmt: skip
        elif item["kind"] == "echo":
            pixels = I.render_echo(rng, item["lvef_pct"])
            header = I.Header("US", I.US_SOP, "HEART", "LV apical 2-chamber", ident.dicom_name, ident.mrn, birth,
                              sex, hospital, physician, when)  # fmt: skip
        else:
            pixels = I.render_other(rng)
            header = I.Header("CT", I.CT_SOP, "CHEST", "Chest CT", ident.dicom_name, ident.mrn, birth, sex,
                              hospital, physician, when)  # fmt: skip
        u = rng.random()
        defect = "missing" if u < 0.01 else "truncated" if u < 0.015 else "corrupt" if u < 0.018 else None
        path = root / rel.split("/", 1)[1]
        if defect != "missing":
            path.parent.mkdir(parents=True, exist_ok=True)
            I.write_dicom(path, pixels, header, f"{seed}:{image_id}")
            if defect == "truncated":
                data = path.read_bytes()
                path.write_bytes(data[: len(data) // 2])
            elif defect == "corrupt":
                path.write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
        mm.images.append({"image_id": image_id, S.PERSON_ID: pid, S.TIME: when, "modality": header.modality,
                          "body_site": header.body_part, "uri": rel})  # fmt: skip
        mm.image_truth.append({
            "image_id": image_id, S.PERSON_ID: pid, "kind": item["kind"], "vessel": item.get("vessel"),
            "stenosis_pct": item.get("stenosis_pct"), "lvef_pct": item.get("lvef_pct"),
            "rows": int(pixels.shape[-2]), "cols": int(pixels.shape[-1]), "defect": defect,
        })  # fmt: skip
        if defect in (None, "truncated"):  # a truncated file still carries its header
            for tag, value in I.header_values(header).items():
                mm.phi.append({"source": "image", "note_id": None, "image_id": image_id, "type": I.PHI_TAGS[tag],
                               "start": None, "end": None, "tag": tag, "value": value})  # fmt: skip
