"""Synthetic clinical notes with their truth: every concept mention and every planted identifier.

A note is rendered from a template whose placeholders say what they insert:

* ``[concept|status]`` a mention of a concept (a surface form drawn from :data:`SURFACES`) said
  with a phrasing of ``status`` (present, negated, historical, negated_historical, uncertain,
  hypothetical, family) drawn from :mod:`toolkit.registry.synth.phrasings` -- lists written
  independently of the extractor's triggers.  Its true attributes are the status's, plus
  *historical* in the past-medical and family history sections (what those sections mean);
* ``<TYPE>`` a planted identifier (NAME, MRN, DOB, DATE, PHONE, ADDRESS, EMAIL, CLINICIAN,
  INSTITUTION) taken from the person's made-up identity;
* ``{key}`` an ordinary value (age, LVEF...).

The builder records the character span of each mention and identifier in the final text, so the
annotation tables match the stored note exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.registry.synth.phrasings import render

#: Surface forms the generator writes for each concept (the default lexicon knows them all).
SURFACES: dict[str, tuple[str, ...]] = {
    "cardiac_arrest": ("cardiac arrest", "VF arrest", "sudden cardiac arrest", "cardiopulmonary arrest"),
    "cardiogenic_shock": ("cardiogenic shock",),
    "cabg": ("CABG", "coronary artery bypass grafting", "bypass surgery"),
    "myocardial_infarction": ("myocardial infarction", "MI", "heart attack", "NSTEMI"),
    "dyspnea": ("shortness of breath", "dyspnea", "breathlessness", "SOB"),
    "orthopnea": ("orthopnea", "orthopnoea"),
    "peripheral_edema": ("peripheral edema", "leg swelling", "pitting edema", "ankle edema"),
    "chest_pain": ("chest pain", "chest tightness", "angina"),
    "palpitations": ("palpitations",),
    "syncope": ("syncope", "fainting"),
    "atrial_fibrillation": ("atrial fibrillation", "AF", "afib"),
    "diabetes": ("diabetes mellitus", "diabetes", "T2DM"),
    "hypertension": ("hypertension", "HTN"),
    "ckd": ("chronic kidney disease", "CKD"),
    "copd": ("COPD", "chronic obstructive pulmonary disease"),
    "pericardial_effusion": ("pericardial effusion",),
    "pulmonary_edema": ("pulmonary edema", "pulmonary oedema"),
}
#: Sections whose every mention is about the past (the generator's own convention, as annotated
#: in the ConText evaluation set).
HISTORICAL_SECTIONS = frozenset({"pmh", "family_history"})


def truth_attributes(status: str, section: str) -> dict[str, Any]:
    """The true attributes of a mention written with ``status`` in ``section``."""
    parts = set(status.split("_"))
    return {
        "negated": "negated" in parts,
        "uncertain": "uncertain" in parts,
        "hypothetical": "hypothetical" in parts,
        "historical": "historical" in parts or section in HISTORICAL_SECTIONS,
        "experiencer": "family" if "family" in parts else "patient",
    }


_SLOT = re.compile(r"\[(\w+)\|(\w+)\]|<(\w+)>|\{(\w+)\}")


@dataclass
class NoteBuilder:
    """Appends text and records the spans of mentions and identifiers as it goes."""

    rng: np.random.Generator
    encode: Callable[[str], str] = field(default=lambda s: s)
    parts: list[str] = field(default_factory=list)
    pos: int = 0
    section: str = "header"
    mentions: list[tuple[str, dict[str, Any], int, int, str]] = field(default_factory=list)
    phi: list[tuple[str, int, int, str]] = field(default_factory=list)

    def text(self, s: str) -> None:
        s = self.encode(s)
        self.parts.append(s)
        self.pos += len(s)

    def header(self, name: str, title: str) -> None:
        self.text(f"\n{title}:\n")
        self.section = name

    def fill(self, template: str, values: Mapping[str, Any], identifiers: Mapping[str, str]) -> None:
        """Render one template line (see the module docstring for its placeholders)."""
        last = 0
        for m in _SLOT.finditer(template):
            self.text(template[last : m.start()])
            last = m.end()
            concept, status, ident, key = m.groups()
            if concept is not None:
                forms = SURFACES[concept]
                surface = forms[int(self.rng.integers(0, len(forms)))]
                phrase, a, b = (
                    (surface, 0, len(surface)) if status == "present" else render(self.rng, status, surface)
                )
                start = self.pos
                self.text(phrase)
                attrs = truth_attributes(status, self.section)
                self.mentions.append((concept, attrs, start + a, start + b, self.section))
            elif ident is not None:
                value = identifiers[ident]
                start = self.pos
                self.text(value)
                kind = "DATE" if ident in ("DOB", "DATE", "YEAR") else ident
                self.phi.append((kind, start, self.pos, self.encode(value)))
            else:
                self.text(str(values[key]))
        self.text(template[last:])

    @property
    def value(self) -> str:
        return "".join(self.parts)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(0, len(options)))]


def admission_note(b: NoteBuilder, f: Mapping[str, Any], ids: Mapping[str, str]) -> None:
    """The admission history and physical at the index time (carries the note-only facts)."""
    r = b.rng
    b.fill("ADMISSION NOTE - <INSTITUTION>\nPatient: <NAME>   MRN: <MRN>   DOB: <DOB>\n", f, ids)
    b.fill("Date of admission: <DATE>   Attending: <CLINICIAN>\n", f, ids)
    b.header("chief_complaint", "CHIEF COMPLAINT")
    b.fill(_pick(r, ("Worsening [dyspnea|present].\n", "[dyspnea|present] and fatigue.\n")), f, ids)
    b.header("hpi", "HISTORY OF PRESENT ILLNESS")
    b.fill(
        "{age}-year-old {sex} with heart failure who presents with {days} days of progressive [dyspnea|present]. ",
        f,
        ids,
    )
    if r.random() < 0.6:
        b.fill(
            _pick(
                r,
                (
                    "Reports [orthopnea|present], sleeping on {pillows} pillows. ",
                    "Endorses [orthopnea|present]. ",
                ),
            ),
            f,
            ids,
        )
    else:
        b.fill("[orthopnea|negated]. ", f, ids)
    if r.random() < 0.5:
        b.fill("[chest_pain|negated] but reports [peripheral_edema|present] for a week. ", f, ids)
    else:
        b.fill("[chest_pain|negated], [palpitations|negated] or [syncope|negated]. ", f, ids)
    if f["cardiogenic_shock"]:
        b.fill(_pick(r, (
            "He presented in [cardiogenic_shock|present] requiring dobutamine and was admitted to the CCU. ",
            "Course on arrival complicated by [cardiogenic_shock|present] with lactate 5.1 mmol/L. ",
        )), f, ids)  # fmt: skip
    else:
        u = r.random()
        if u < 0.25:
            b.fill("[cardiogenic_shock|negated]; lactate normal. ", f, ids)
        elif u < 0.32:
            b.fill("[cardiogenic_shock|uncertain], lactate pending. ", f, ids)
    b.text("\n")
    b.header("pmh", _pick(r, ("PAST MEDICAL HISTORY", "PMH", "Past Medical History")))
    b.fill("- Heart failure, LVEF {lvef_text}\n", f, ids)
    for flag, line in (
        ("hypertension", "- [hypertension|present]\n"),
        ("diabetes", "- Type 2 [diabetes|present], on metformin\n"),
        ("ckd", "- [ckd|present] stage 3\n"),
        ("copd", "- [copd|present], moderate\n"),
        ("af", "- Paroxysmal [atrial_fibrillation|present] on apixaban\n"),
        ("prior_mi", "- [myocardial_infarction|historical] in <YEAR>\n"),
    ):
        if f[flag]:
            b.fill(line, f, ids)
    if f["prior_cabg"]:
        b.fill(
            _pick(r, ("- [cabg|historical] x3 in <YEAR>\n", "- [cabg|historical] (LIMA-LAD)\n")),
            f,
            ids,
        )
    elif r.random() < 0.2:
        b.fill("- [cabg|negated_historical] or PCI\n", f, ids)
    elif r.random() < 0.06:
        b.fill("- [cabg|uncertain] abroad, records requested\n", f, ids)
    if f["prior_cardiac_arrest"]:
        b.fill(_pick(r, (
            "- [cardiac_arrest|historical] (out of hospital) in <YEAR>, resuscitated, ICD implanted\n",
            "- [cardiac_arrest|historical] with ROSC after 6 minutes\n",
        )), f, ids)  # fmt: skip
    elif r.random() < 0.2:
        b.fill("- [cardiac_arrest|negated_historical]\n", f, ids)
    if not f["cardiogenic_shock"] and r.random() < 0.06:
        b.fill(
            "- [cardiogenic_shock|historical] in <YEAR> after viral myocarditis, fully recovered\n",
            f,
            ids,
        )
    b.header("family_history", _pick(r, ("FAMILY HISTORY", "FH", "Family history")))
    wrote = False
    for p, line in (
        (0.30, "[myocardial_infarction|family]. "),
        (0.15, "[diabetes|family]. "),
        (0.08, "[cabg|family]. "),
        (0.13, "[cardiac_arrest|family]. "),
    ):
        if r.random() < p:
            b.fill(line, f, ids)
            wrote = True
    if not wrote:
        b.text("Non-contributory.")
    b.text("\n")
    b.header("social_history", "SOCIAL HISTORY")
    b.fill("Lives at <ADDRESS> with spouse. Contact phone <PHONE>, portal email <EMAIL>.\n", f, ids)
    b.header("ros", "REVIEW OF SYSTEMS")
    b.fill(_pick(r, (
        "[syncope|negated]; [palpitations|negated].\n",
        "Positive for [dyspnea|present]; [chest_pain|negated].\n",
    )), f, ids)  # fmt: skip
    b.header("exam", "PHYSICAL EXAM")
    b.fill("BP {sbp}/70 mm Hg, temperature {temp} °C. JVP elevated, bibasilar crackles. ", f, ids)
    if r.random() < 0.55:
        b.fill("2+ bilateral [peripheral_edema|present].\n", f, ids)
    else:
        b.fill("[peripheral_edema|negated].\n", f, ids)
    b.header("assessment", "ASSESSMENT AND PLAN")
    b.text("Acute decompensated heart failure. IV furosemide, daily weights, fluid restriction. ")
    if f["cardiogenic_shock"]:
        b.fill("[cardiogenic_shock|present]: continue inotropes, CCU level of care. ", f, ids)
    if r.random() < 0.3:
        b.fill("[myocardial_infarction|uncertain]: serial troponins. ", f, ids)
    if r.random() < 0.3:
        b.fill("Discussed return precautions; [chest_pain|hypothetical]. ", f, ids)
    if r.random() < 0.25:
        b.fill("CXR shows [pulmonary_edema|present]. ", f, ids)
    b.fill("\n\nSigned: <CLINICIAN>\n", f, ids)


def discharge_summary(b: NoteBuilder, f: Mapping[str, Any], ids: Mapping[str, str]) -> None:
    """A discharge summary of an earlier admission (before index)."""
    r = b.rng
    b.fill("DISCHARGE SUMMARY - <INSTITUTION>\nPatient: <NAME>   MRN: <MRN>\nDischarged: <DATE>\n", f, ids)
    b.header("hospital_course", "HOSPITAL COURSE")
    if f["prior_cardiac_arrest"] and r.random() < 0.7:
        b.fill(
            "Admitted after a witnessed [cardiac_arrest|present] with ventricular fibrillation; ROSC after 8 minutes. ",
            f,
            ids,
        )
        b.text("Secondary prevention ICD implanted before discharge. ")
    else:
        b.fill(
            "Admitted with [chest_pain|present]. [myocardial_infarction|negated]. ",
            f,
            ids,
        )
    if f["prior_cabg"] and r.random() < 0.5:
        b.fill("[cabg|historical]; grafts patent. ", f, ids)
    if r.random() < 0.3:
        b.fill("Found to have new [atrial_fibrillation|present], rate controlled. ", f, ids)
    b.text("\n")
    b.header("discharge_plan", "DISCHARGE PLAN")
    b.fill("Follow-up with <CLINICIAN> in 2 weeks; clinic phone <PHONE>.\n", f, ids)


def echo_report(b: NoteBuilder, f: Mapping[str, Any], ids: Mapping[str, str]) -> None:
    r = b.rng
    b.fill("TRANSTHORACIC ECHOCARDIOGRAM REPORT\nPatient: <NAME>   MRN: <MRN>   Study date: <DATE>\n", f, ids)
    b.header("findings", "FINDINGS")
    b.fill("Left ventricle dilated; LVEF estimated at {lvef}% (biplane). ", f, ids)
    if r.random() < 0.1:
        b.fill("Small [pericardial_effusion|present] without tamponade. ", f, ids)
    else:
        b.fill("[pericardial_effusion|negated]. ", f, ids)
    b.text("Moderate mitral regurgitation.\n")
    b.header("impression", "IMPRESSION")
    b.fill("{ef_words} left ventricular systolic function.\n\nReported by <CLINICIAN>\n", f, ids)


def angiography_report(b: NoteBuilder, f: Mapping[str, Any], ids: Mapping[str, str]) -> None:
    """States that angiography was done, never the stenosis (an image-only fact)."""
    b.fill(
        "CARDIAC CATHETERIZATION REPORT - <INSTITUTION>\nPatient: <NAME>   MRN: <MRN>   Date: <DATE>\n",
        f,
        ids,
    )
    b.header("procedure", "PROCEDURE")
    b.text(
        "Selective coronary angiography via right radial approach, {views} views acquired. ".format(
            views=f["views"]
        )
    )
    b.text("Images sent to the core laboratory; quantitative analysis to follow.\n")
    b.header("complications", "COMPLICATIONS")
    b.text("None.\n")


def referral_letter(b: NoteBuilder, f: Mapping[str, Any], ids: Mapping[str, str]) -> None:
    """A scanned letter whose non-ASCII text was mis-decoded (mojibake) when it was imported."""
    b.fill(
        "Referral letter: progressive [dyspnea|present]. Dear colleague, I saw <NAME> (MRN <MRN>). ", f, ids
    )
    b.fill("Kind regards, <CLINICIAN> — Cardiologie, Hôpital Saint-Éloi\n", f, ids)


def flowsheet(b: NoteBuilder, f: Mapping[str, Any], ids: Mapping[str, str]) -> None:
    """A very long export (vital signs every 15 minutes) with one mention at its start."""
    b.fill("FLOWSHEET EXPORT\nNursing: patient reports [dyspnea|present] at rest.\n", f, ids)
    line = "HR 88 bpm | BP 118/72 mm Hg | SpO2 95 % | RR 18 /min | T 36.8 C\n"
    b.text(line * 2600)  # about 160,000 characters: above the extractor's default cap


def mojibake(s: str) -> str:
    """UTF-8 bytes read as Latin-1: what a wrong import encoding does to non-ASCII text."""
    return s.encode("utf-8").decode("latin-1")


NOTE_RENDERERS: dict[str, Callable[[NoteBuilder, Mapping[str, Any], Mapping[str, str]], None]] = {
    "admission_note": admission_note,
    "discharge_summary": discharge_summary,
    "echo_report": echo_report,
    "angiography_report": angiography_report,
    "referral_letter": referral_letter,
    "flowsheet": flowsheet,
}
