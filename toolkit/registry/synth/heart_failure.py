"""A synthetic heart-failure registry from a documented data-generating model with known truth.

The model (docs/registry.md#synthetic-heart-failure-registry gives it in full):

* Each person is admitted for heart failure (``ICD10:I50.*`` with ``VISIT:IP``) at an index time
  uniform over 2014-2022; about 2 % of persons never have a heart-failure code (referred, ruled
  out) and so never enter a heart-failure cohort.
* At index: age (whole years), sex, comorbidities coded any time before index (diabetes,
  chronic kidney disease, COPD, atrial fibrillation, hypertension, prior MI), labs and vitals
  measured at the index time with missingness completely at random (LVEF, NT-proBNP,
  creatinine, sodium, systolic blood pressure, haemoglobin), and medications prescribed in the
  60 days before index (beta-blocker, ACE inhibitor, loop diuretic, MRA).
* All-cause death follows a Weibull proportional-hazards model in years,
  ``H(t | x) = lambda * t**rho * exp(sum_j beta_j * (x_j - c_j))``, with the true log hazard
  ratios in :data:`TRUE_LOG_HR` (haemoglobin has a true effect of 0).  The cause is
  cardiovascular with a probability that is higher in reduced ejection fraction (HFrEF).
* Follow-up ends at death, loss to follow-up (exponential, 4 %/year) or the data cut-off
  (2024-12-31).  Heart transplants (1 %/year) are recorded (a procedure code, then a status
  code); they do not end observation, so a study censors at them (as hf_mortality does).
* Outpatient visits before and after index (a Poisson process, one per ~100 days) carry
  creatinine, sodium, haemoglobin and blood pressure drifting around the person's index values;
  LVEF and NT-proBNP are measured only at the index admission.
* Exclusion targets: ~8 % have < 365 days of observation before index, ~1 % a prior heart
  transplant, ~3 % chronic dialysis in the year before index.

* Facts that only clinical notes or only images carry (prior cardiac arrest, prior CABG,
  cardiogenic shock at admission, coronary stenosis on angiograms) add the terms of
  :data:`~toolkit.registry.synth.multimodal.MULTIMODAL_LOG_HR` to the linear predictor; they are
  drawn from their own random stream, so the structured data are the same with or without notes
  and images (``SynthConfig(notes=False, images=False)``).

* ``--shift`` (:class:`Shift`, docs/registry.md#a-shifted-later-period): persons admitted in a
  later calendar period (:data:`LATER_PERIOD`) with a changed case mix (older, more kidney
  disease, fewer with reduced ejection fraction, higher NT-proBNP) and a higher baseline hazard
  (``lambda`` times :attr:`Shift.baseline_hazard_ratio`, 2.5 by default); the hazard ratios are
  unchanged.  With
  the same seed, a shifted and an unshifted registry draw the same random numbers, so they
  differ by the shift alone.  What monitoring an agent in service must detect.

Truth is written beside the registry: ``<name>.truth.json`` (coefficients, centring, baseline,
the feature definition of each term) and ``<name>.truth.parquet`` (per person: covariates as
generated, linear predictor, true 1-year risk, latent death time and cause).  With notes and
images: ``<name>.images/`` (the DICOM files the images table links to),
``<name>.note_annotations.parquet`` (every concept mention with its attributes and span),
``<name>.image_annotations.parquet`` (the true stenosis or LVEF of every image, and planted
defects) and ``<name>.phi.parquet`` (every planted identifier; docs/features.md).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.errors import RegistryError
from toolkit.io import atomic_dir
from toolkit.registry import schema as S
from toolkit.registry.store import Attribute, RegistryWriter
from toolkit.registry.synth import multimodal as MM

DAY = 86_400
YEAR_DAYS = 365.25
EPOCH = dt.datetime(1970, 1, 1)

#: True log hazard ratios per unit of each term (the features a study derives from the registry).
TRUE_LOG_HR: dict[str, float] = {
    "age": 0.035,
    "male": 0.20,
    "log_nt_probnp": 0.45,
    "lvef": -0.015,
    "creatinine": 0.35,
    "sodium": -0.04,
    "sbp": -0.008,
    "hemoglobin": 0.0,
    "diabetes": 0.25,
    "ckd": 0.20,
    "copd": 0.30,
    "af": 0.15,
    "beta_blocker": -0.25,
}
CENTRE: dict[str, float] = {
    "age": 71.0,
    "log_nt_probnp": 7.4,
    "lvef": 40.0,
    "creatinine": 1.1,
    "sodium": 138.0,
    "sbp": 128.0,
    "hemoglobin": 12.9,
}
WEIBULL_LAMBDA = 0.22  # per year**rho
WEIBULL_RHO = 0.75

#: How a study computes each term from the registry (the hf_mortality study uses these).
TERM_DEFINITIONS: dict[str, dict[str, object]] = {
    "age": {"source": "age at index (whole years)"},
    "male": {"source": "sex == 'M'"},
    "log_nt_probnp": {"code": "LOINC:33762-6", "window": [-1, 0], "agg": "last", "transform": "log"},
    "lvef": {"code": "LOINC:10230-1", "window": [-1, 0], "agg": "last"},
    "creatinine": {"code": "LOINC:2160-0", "window": [-1, 0], "agg": "last"},
    "sodium": {"code": "LOINC:2951-2", "window": [-1, 0], "agg": "last"},
    "sbp": {"code": "LOINC:8480-6", "window": [-1, 0], "agg": "last"},
    "hemoglobin": {"code": "LOINC:718-7", "window": [-1, 0], "agg": "last"},
    "diabetes": {"code": "ICD10:E11*", "window": ["all", 0], "agg": "present"},
    "ckd": {"code": "ICD10:N18*", "window": ["all", 0], "agg": "present"},
    "copd": {"code": "ICD10:J44*", "window": ["all", 0], "agg": "present"},
    "af": {"code": "ICD10:I48*", "window": ["all", 0], "agg": "present"},
    "beta_blocker": {"code": "ATC:C07AB*", "window": [-90, 0], "agg": "present"},
}

LABS: tuple[tuple[str, str, str, float, int], ...] = (
    # term, code, unit, probability missing at index, decimals recorded
    ("lvef", "LOINC:10230-1", "%", 0.10, 0),
    ("nt_probnp", "LOINC:33762-6", "pg/mL", 0.15, 0),
    ("creatinine", "LOINC:2160-0", "mg/dL", 0.05, 2),
    ("sodium", "LOINC:2951-2", "mmol/L", 0.05, 0),
    ("sbp", "LOINC:8480-6", "mm[Hg]", 0.03, 0),
    ("hemoglobin", "LOINC:718-7", "g/dL", 0.05, 1),
)
COMORBIDITIES: tuple[tuple[str, str], ...] = (
    ("diabetes", "ICD10:E11.9"),
    ("ckd", "ICD10:N18.3"),
    ("copd", "ICD10:J44.9"),
    ("af", "ICD10:I48.91"),
    ("hypertension", "ICD10:I10"),
    ("prior_mi", "ICD10:I25.2"),
)
MEDICATIONS: tuple[tuple[str, str], ...] = (
    ("beta_blocker", "ATC:C07AB07"),
    ("acei", "ATC:C09AA05"),
    ("loop_diuretic", "ATC:C03CA01"),
    ("mra", "ATC:C03DA01"),
)
CV_CAUSES = ("ICD10:I50.9", "ICD10:I21.9", "ICD10:I46.9", "ICD10:I63.9")
OTHER_CAUSES = ("ICD10:C34.9", "ICD10:J18.9", "ICD10:N17.9", "ICD10:A41.9", "ICD10:J44.1")
TRANSPLANT_CODE = "SNOMED:32413006"
DIALYSIS_CODE = "ICD10:Z99.2"
TRANSPLANT_STATUS_CODE = "ICD10:Z94.1"
SMOKING_LEVELS = ("never", "former", "current")

INDEX_START = dt.datetime(2014, 1, 1)
INDEX_END = dt.datetime(2023, 1, 1)
DATA_CUTOFF = dt.datetime(2024, 12, 31)
CHUNK = 50_000


@dataclass(frozen=True)
class Period:
    """The calendar: index admissions uniform over ``[index_start, index_end)``; follow-up to the cut-off."""

    index_start: dt.datetime
    index_end: dt.datetime
    data_cutoff: dt.datetime

    def __post_init__(self) -> None:
        if not self.index_start < self.index_end <= self.data_cutoff:
            raise RegistryError(
                "period: expected index_start < index_end <= data_cutoff; got "
                f"{self.index_start.date()}, {self.index_end.date()}, {self.data_cutoff.date()}"
            )

    @classmethod
    def parse(cls, text: str) -> Period:
        """``START:END:CUTOFF`` (ISO dates), e.g. ``2025-01-01:2026-01-01:2026-12-31``."""
        parts = text.split(":")
        try:
            start, end, cutoff = (dt.datetime.fromisoformat(x) for x in parts)
        except ValueError:
            raise RegistryError(
                f"--period: expected START:END:CUTOFF as ISO dates (e.g. 2025-01-01:2026-01-01:2026-12-31); "
                f"got {len(parts)} part(s) that do not all read as dates"
            ) from None
        return cls(start, end, cutoff)


#: The development period (index 2014-2022, follow-up to the end of 2024).
DEVELOPMENT_PERIOD = Period(INDEX_START, INDEX_END, DATA_CUTOFF)
#: The later period ``--shift`` uses by default: index during 2025, follow-up to the end of 2026.
LATER_PERIOD = Period(dt.datetime(2025, 1, 1), dt.datetime(2026, 1, 1), dt.datetime(2026, 12, 31))


@dataclass(frozen=True)
class Shift:
    """A changed case mix and baseline hazard (docs/registry.md#a-shifted-later-period).

    Each field moves one quantity of the development model; ``Shift(strength=0.5)`` moves each
    halfway (the baseline hazard ratio on the log scale), for gradual drifts in simulations.
    """

    age_years: float = 8.0  # mean age at index: +8 years
    ckd_log_odds: float = 0.8  # chronic kidney disease: +0.8 on the log-odds scale
    hfref_probability: float = 0.30  # reduced ejection fraction: 0.30 (development: 0.5)
    log_nt_probnp: float = 0.5  # NT-proBNP: +0.5 on the log scale (x1.65)
    baseline_hazard_ratio: float = 2.5  # lambda x 2.5: a higher death rate at equal covariates
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.strength <= 1:
            raise RegistryError(f"shift strength must lie in [0, 1]; got {self.strength}")
        if not 0 < self.hfref_probability < 1 or self.baseline_hazard_ratio <= 0:
            raise RegistryError("shift: hfref_probability must lie in (0, 1) and the hazard ratio be > 0")

    @property
    def age(self) -> float:
        return self.strength * self.age_years

    @property
    def ckd(self) -> float:
        return self.strength * self.ckd_log_odds

    @property
    def hfref(self) -> float:
        return 0.5 + self.strength * (self.hfref_probability - 0.5)

    @property
    def bnp(self) -> float:
        return self.strength * self.log_nt_probnp

    @property
    def hazard_ratio(self) -> float:
        return float(self.baseline_hazard_ratio**self.strength)


NO_SHIFT = Shift(strength=0.0)


@dataclass(frozen=True)
class SynthConfig:
    patients: int
    sites: int = 3
    seed: int = 0
    notes: bool = True  # clinical notes + their annotation tables
    images: bool = True  # DICOM files under <name>.images/ + their annotation table
    period: Period = DEVELOPMENT_PERIOD
    shift: Shift | None = None  # None: the development case mix and hazard

    def __post_init__(self) -> None:
        if self.patients < 1:
            raise RegistryError(f"--patients must be >= 1; got {self.patients}")
        if not 1 <= self.sites <= 99:
            raise RegistryError(f"--sites must be between 1 and 99; got {self.sites}")


def _secs(t: dt.datetime) -> int:
    return int((t - EPOCH).total_seconds())


def _draw_persons(
    rng: np.random.Generator,
    n: int,
    sites: int,
    first_id: int,
    latent_rng: np.random.Generator,
    *,
    period: Period = DEVELOPMENT_PERIOD,
    shift: Shift | None = None,
) -> pd.DataFrame:
    """Per-person latent and baseline values (one row per person).

    ``shift`` changes the case mix and the baseline hazard (:class:`Shift`) without changing
    which random numbers are drawn: with the same generators, a shifted draw differs from an
    unshifted one by the shift alone.
    """
    sh = shift or NO_SHIFT
    p = pd.DataFrame({S.PERSON_ID: np.arange(first_id, first_id + n, dtype=np.int64)})
    site = rng.integers(0, sites, n)
    p["site"] = site
    site_shift = np.linspace(-3.0, 3.0, sites)[site] if sites > 1 else np.zeros(n)
    male = rng.random(n) < 0.58
    p["male"] = male.astype(int)
    p["age"] = np.clip(np.round(rng.normal(71.0 + sh.age + site_shift - 2.0 * male, 11.0)), 30, 100).astype(
        int
    )
    start_s, end_s = _secs(period.index_start), _secs(period.index_end)
    index = start_s + rng.integers(0, end_s - start_s, n)
    p["index_s"] = index - index % 3600  # admissions on the hour
    p["birth_days"] = rng.integers(0, 365, n)  # days past the birthday at index
    p["has_hf"] = rng.random(n) >= 0.02
    prior_days = np.where(rng.random(n) < 0.08, rng.uniform(40, 360, n), rng.uniform(370, 5 * 365, n))
    p["obs_start_s"] = p["index_s"] - np.round(prior_days * 24).astype(np.int64) * 3600  # on the hour
    age_c = (p["age"].to_numpy() - 71.0) / 10.0
    p["diabetes"] = (rng.random(n) < 0.33).astype(int)
    p["ckd"] = (rng.random(n) < 1 / (1 + np.exp(-(-1.0 + sh.ckd + 0.5 * age_c)))).astype(int)
    p["copd"] = (rng.random(n) < 0.18).astype(int)
    p["af"] = (rng.random(n) < 1 / (1 + np.exp(-(-0.7 + 0.4 * age_c)))).astype(int)
    p["hypertension"] = (rng.random(n) < 0.65).astype(int)
    p["prior_mi"] = (rng.random(n) < 0.25).astype(int)
    hfref = rng.random(n) < sh.hfref
    p["hfref"] = hfref.astype(int)
    lvef = np.where(hfref, rng.normal(30, 7, n), rng.normal(55, 6, n))
    p["lvef"] = np.round(np.clip(lvef, 10, 75))
    log_bnp = rng.normal(7.4 + sh.bnp + 0.15 * age_c - 0.02 * (p["lvef"] - 40) + 0.3 * p["ckd"], 0.9)
    p["nt_probnp"] = np.round(np.clip(np.exp(log_bnp), 20, 35_000))
    p["creatinine"] = np.round(np.exp(rng.normal(np.log(1.05) + 0.35 * p["ckd"] + 0.04 * age_c, 0.22)), 2)
    p["sodium"] = np.round(rng.normal(138, 3.5, n))
    p["sbp"] = np.round(rng.normal(128 + 0.3 * (p["lvef"] - 40), 18, n))
    p["hemoglobin"] = np.round(rng.normal(12.9 - 0.5 * p["ckd"], 1.6), 1)
    p["beta_blocker"] = (rng.random(n) < 0.8 - 0.3 * p["copd"]).astype(int)
    p["acei"] = (rng.random(n) < 0.65).astype(int)
    p["loop_diuretic"] = (rng.random(n) < 0.8).astype(int)
    p["mra"] = (rng.random(n) < 0.25 + 0.3 * hfref).astype(int)
    p["smoking"] = rng.choice(len(SMOKING_LEVELS), n, p=[0.45, 0.40, 0.15])
    p["prior_transplant"] = (rng.random(n) < 0.01).astype(int)
    p["dialysis"] = (rng.random(n) < 0.03).astype(int)
    for term, _, _, miss, _ in LABS:
        p[f"{term}_measured"] = rng.random(n) >= miss

    lp = np.zeros(n)
    values = {
        "age": p["age"].to_numpy(float),
        "male": p["male"].to_numpy(float),
        "log_nt_probnp": np.log(p["nt_probnp"].to_numpy(float)),
        **{k: p[k].to_numpy(float) for k in ("lvef", "creatinine", "sodium", "sbp", "hemoglobin")},
        **{k: p[k].to_numpy(float) for k in ("diabetes", "ckd", "copd", "af", "beta_blocker")},
    }
    for term, beta in TRUE_LOG_HR.items():
        lp += beta * (values[term] - CENTRE.get(term, 0.0))
    latent = MM.draw_latent(latent_rng, p)
    p = pd.concat([p, latent], axis=1)
    lp += MM.latent_lp(latent)
    p["lp"] = lp
    lam = WEIBULL_LAMBDA * sh.hazard_ratio
    p["risk_1y"] = 1.0 - np.exp(-lam * np.exp(lp))
    u = rng.random(n)
    p["death_years"] = (-np.log(u) / (lam * np.exp(lp))) ** (1.0 / WEIBULL_RHO)
    p_cv = 1 / (1 + np.exp(-(0.5 + 0.8 * hfref - 0.2 * age_c)))
    cv = rng.random(n) < p_cv
    cause_pick = rng.random(n)
    p["death_cause"] = np.where(
        cv,
        np.array(CV_CAUSES)[(cause_pick * len(CV_CAUSES)).astype(int)],
        np.array(OTHER_CAUSES)[(cause_pick * len(OTHER_CAUSES)).astype(int)],
    )
    p["death_cv"] = cv.astype(int)
    p["ltfu_years"] = rng.exponential(1 / 0.04, n)
    p["transplant_years"] = rng.exponential(1 / 0.01, n)
    return p


class _EventBuffer:
    """Column buffers for events; avoids building millions of small frames."""

    def __init__(self) -> None:
        self.pid: list[np.ndarray] = []
        self.t: list[np.ndarray] = []
        self.code: list[np.ndarray] = []
        self.num: list[np.ndarray] = []
        self.txt: list[np.ndarray] = []
        self.unit: list[np.ndarray] = []

    def add(
        self,
        pid: np.ndarray,
        t: np.ndarray,
        code: str | np.ndarray,
        num: np.ndarray | None = None,
        unit: str | None = None,
        txt: np.ndarray | None = None,
    ) -> None:
        n = len(pid)
        if n == 0:
            return
        self.pid.append(pid.astype(np.int64))
        self.t.append(t.astype(np.int64))
        self.code.append(np.full(n, code, dtype=object) if isinstance(code, str) else code.astype(object))
        self.num.append(np.full(n, np.nan) if num is None else num.astype(float))
        self.unit.append(np.full(n, unit, dtype=object))
        self.txt.append(np.full(n, None, dtype=object) if txt is None else txt.astype(object))

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(
            {
                S.PERSON_ID: np.concatenate(self.pid),
                S.TIME: np.concatenate(self.t).astype("datetime64[s]"),
                "code": pd.Categorical(np.concatenate(self.code)),
                "numeric_value": np.concatenate(self.num),
                "text_value": np.concatenate(self.txt),
                "unit": pd.Categorical(np.concatenate(self.unit)),
            }
        )
        return df.sort_values([S.PERSON_ID, S.TIME], kind="stable").reset_index(drop=True)


def _visits(
    rng: np.random.Generator, pid: np.ndarray, start: np.ndarray, end: np.ndarray, per_day: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Poisson process of visit times per person on [start, end] (seconds)."""
    span = np.maximum(end - start, 0)
    k = rng.poisson(span / DAY * per_day)
    owner = np.repeat(np.arange(len(pid)), k)
    t = start[owner] + (rng.random(len(owner)) * span[owner]).astype(np.int64)
    t = t - t % 3600
    return pid[owner], t, owner


def _events(rng: np.random.Generator, p: pd.DataFrame, obs_end: np.ndarray) -> pd.DataFrame:
    buf = _EventBuffer()
    pid = p[S.PERSON_ID].to_numpy()
    idx = p["index_s"].to_numpy()
    start = p["obs_start_s"].to_numpy()
    hf = p["has_hf"].to_numpy()

    # pre-index outpatient visits, ending 30 days before index; post-index follow-up visits
    for lo, hi in ((start, idx - 30 * DAY), (idx + DAY, obs_end)):
        vp, vt, owner = _visits(rng, pid, lo, hi, 1 / 100)
        buf.add(vp, vt, "VISIT:OP")
        for term, code, unit, _, dec in LABS:
            if term in ("lvef", "nt_probnp"):
                continue
            m = rng.random(len(vp)) < 0.85
            base = p[term].to_numpy(float)[owner[m]]
            if term == "creatinine":
                val = np.round(base * np.exp(rng.normal(0, 0.1, m.sum())), dec)
            else:
                scale = {"sodium": 2.0, "sbp": 10.0, "hemoglobin": 0.6}[term]
                val = np.round(base + rng.normal(0, scale, m.sum()), dec)
            buf.add(vp[m], vt[m], code, val, unit)

    # comorbidities coded at a random time between the start of observation and index
    for term, code in COMORBIDITIES:
        has = p[term].to_numpy() == 1
        t = start[has] + (rng.random(has.sum()) * (idx[has] - start[has])).astype(np.int64)
        buf.add(pid[has], t, code)
    # exclusion targets
    has = p["prior_transplant"].to_numpy() == 1
    buf.add(
        pid[has],
        start[has] + (rng.random(has.sum()) * (idx[has] - start[has])).astype(np.int64),
        TRANSPLANT_STATUS_CODE,
    )
    has = p["dialysis"].to_numpy() == 1
    lo = np.maximum(start[has], idx[has] - 300 * DAY)
    buf.add(pid[has], lo + (rng.random(has.sum()) * (idx[has] - lo)).astype(np.int64), DIALYSIS_CODE)
    # medications prescribed in the 60 days before index
    for term, code in MEDICATIONS:
        has = p[term].to_numpy() == 1
        lo = np.maximum(start[has], idx[has] - 60 * DAY)
        buf.add(pid[has], lo + (rng.random(has.sum()) * (idx[has] - lo)).astype(np.int64), code)

    # the index admission (only persons with heart failure) and its labs at the index time
    hf_code = np.where(p["hfref"].to_numpy() == 1, "ICD10:I50.2", "ICD10:I50.3")
    buf.add(pid[hf], idx[hf], "VISIT:IP")
    buf.add(pid[hf], idx[hf], hf_code[hf])
    for term, code, unit, _, _ in LABS:
        m = hf & p[f"{term}_measured"].to_numpy()
        buf.add(pid[m], idx[m], code, p[term].to_numpy(float)[m], unit)
    # non-HF persons: an echo that ruled heart failure out
    buf.add(pid[~hf], idx[~hf], "LOINC:10230-1", p["lvef"].to_numpy(float)[~hf] * 0 + 60.0, "%")

    # heart-failure readmissions during follow-up
    rp, rt, _ = _visits(rng, pid[hf], idx[hf] + DAY, obs_end[hf], 0.35 / YEAR_DAYS)
    buf.add(rp, rt, "VISIT:IP")
    buf.add(rp, rt, "ICD10:I50.9")

    # transplant (censoring event), death with its cause
    tx = idx + np.round(p["transplant_years"].to_numpy() * YEAR_DAYS * DAY).astype(np.int64)
    m = tx < obs_end
    buf.add(pid[m], tx[m], TRANSPLANT_CODE)
    m2 = m & (tx + DAY <= obs_end)
    buf.add(pid[m2], tx[m2] + DAY, TRANSPLANT_STATUS_CODE)
    death = idx + np.round(p["death_years"].to_numpy() * YEAR_DAYS * DAY).astype(np.int64)
    m = death <= obs_end
    buf.add(pid[m], death[m], "DEATH", txt=p["death_cause"].to_numpy()[m])
    return buf.frame()


def _chunk(
    rng: np.random.Generator,
    n: int,
    sites: int,
    first_id: int,
    latent_rng: np.random.Generator,
    config: SynthConfig | None = None,
) -> dict[str, pd.DataFrame]:
    period = config.period if config is not None else DEVELOPMENT_PERIOD
    shift = config.shift if config is not None else None
    p = _draw_persons(rng, n, sites, first_id, latent_rng, period=period, shift=shift)
    idx = p["index_s"].to_numpy()
    cutoff = _secs(period.data_cutoff)
    death = idx + np.round(p["death_years"].to_numpy() * YEAR_DAYS * DAY).astype(np.int64)
    ltfu = idx + np.round(p["ltfu_years"].to_numpy() * YEAR_DAYS * DAY).astype(np.int64)
    obs_end = np.minimum(np.minimum(death, ltfu), cutoff)
    # non-HF persons are followed to the cut-off or loss, not a heart-failure death
    obs_end = np.where(p["has_hf"], obs_end, np.minimum(ltfu, cutoff))
    p.loc[~p["has_hf"], "death_years"] = 1000.0  # never within follow-up
    events = _events(rng, p, obs_end)

    index_date = pd.DatetimeIndex(pd.to_datetime(idx, unit="s").normalize())
    day = np.where((index_date.month == 2) & (index_date.day == 29), 28, index_date.day)
    anniversary = pd.to_datetime(
        pd.DataFrame({"year": index_date.year - p["age"].to_numpy(), "month": index_date.month, "day": day})
    )
    birth = (anniversary - pd.to_timedelta(p["birth_days"].to_numpy(), unit="D")).dt.date
    person = pd.DataFrame(
        {
            S.PERSON_ID: p[S.PERSON_ID],
            "birth_date": birth,
            S.SEX: np.where(p["male"] == 1, "M", "F"),
            S.SITE: [f"SITE{s + 1:02d}" for s in p["site"]],
            "smoking": np.array(SMOKING_LEVELS)[p["smoking"].to_numpy()],
        }
    )
    observation = pd.DataFrame(
        {
            S.PERSON_ID: p[S.PERSON_ID],
            "start_time": p["obs_start_s"].to_numpy().astype("datetime64[s]"),
            "end_time": obs_end.astype("datetime64[s]"),
        }
    )
    truth_cols = [
        S.PERSON_ID,
        "has_hf",
        "age",
        "male",
        "lvef",
        "nt_probnp",
        "creatinine",
        "sodium",
        "sbp",
        "hemoglobin",
        "diabetes",
        "ckd",
        "copd",
        "af",
        "beta_blocker",
        "hfref",
        "lp",
        "risk_1y",
        "death_years",
        "death_cv",
        "death_cause",
        *MM.MULTIMODAL_LOG_HR,
        "had_angio",
        "max_stenosis",
        "had_echo",
    ]
    return {
        "person": person,
        "observation_period": observation,
        "events": events,
        "truth": p[truth_cols],
        "_persons": p,
    }


def synthesize(out: Path | str, config: SynthConfig, *, format: str = "duckdb") -> Path:
    """Write a synthetic heart-failure registry to ``out`` and its truth beside it.

    Deterministic per seed: chunks of 50,000 persons draw from independent child seeds.  With
    images, the DICOM folder ``<name>.images/`` is built under a temporary name and renamed into
    place just before the registry file itself, so neither is ever seen half-written.
    """
    out = Path(out)
    seeds = np.random.SeedSequence(config.seed).spawn(math.ceil(config.patients / CHUNK))
    attrs = (Attribute("smoking", "category", SMOKING_LEVELS, None, "Smoking status at registration"),)
    meta = {
        "name": "synthetic-heart-failure",
        "source": "regent registry synth",
        "generator": "toolkit.registry.synth.heart_failure",
        "seed": config.seed,
        "patients": config.patients,
        "sites": config.sites,
        "notes": config.notes,
        "images": config.images,
    }
    if config.period != DEVELOPMENT_PERIOD or config.shift is not None:
        # only then: the default registries keep their content digest
        meta["index_period"] = [config.period.index_start.isoformat(), config.period.index_end.isoformat()]
        meta["data_cutoff"] = config.period.data_cutoff.isoformat()
        meta["shift"] = asdict(config.shift) if config.shift is not None else None
    stem = out.with_suffix("")
    image_dir = stem.with_name(stem.name + ".images")
    truth_parts: list[pd.DataFrame] = []
    mm_parts: dict[str, list[pd.DataFrame]] = {}
    images_cm = atomic_dir(image_dir) if config.images else _no_image_dir(image_dir)
    with (
        RegistryWriter(out, attributes=attrs, metadata=meta, format=format) as w,
        images_cm as tmp_images,
    ):
        for i, ss in enumerate(seeds):
            n = min(CHUNK, config.patients - i * CHUNK)
            # the note/image facts and the notes and pixels have streams of their own
            latent_ss, media_ss = (
                np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, k)) for k in (1, 2)
            )
            part = _chunk(
                np.random.default_rng(ss),
                n,
                config.sites,
                1 + i * CHUNK,
                np.random.default_rng(latent_ss),
                config,
            )
            for table in ("person", "observation_period", "events"):
                w.append(table, part[table])
            truth_parts.append(part["truth"])
            if config.notes or config.images:
                mm = MM.generate(
                    part["_persons"],
                    part["person"],
                    np.random.default_rng(media_ss),
                    notes=config.notes,
                    images=config.images,
                    image_root=tmp_images,
                    image_prefix=image_dir.name,
                    seed=config.seed,
                ).frames()
                w.append("notes", mm["notes"])
                w.append("images", mm["images"])
                for k, v in mm.items():
                    mm_parts.setdefault(k, []).append(v)
        _write_truth(out, config, pd.concat(truth_parts, ignore_index=True))
        _write_annotations(stem, config, {k: pd.concat(v, ignore_index=True) for k, v in mm_parts.items()})
    return out


@contextmanager
def _no_image_dir(image_dir: Path) -> Iterator[None]:
    """Without images: no folder, and a stale one from an earlier build is removed."""
    yield None
    shutil.rmtree(image_dir, ignore_errors=True)


def _write_annotations(stem: Path, config: SynthConfig, frames: dict[str, pd.DataFrame]) -> None:
    """``note_annotations``, ``image_annotations`` and ``phi`` parquet files; stale ones are removed."""
    files = {
        "mentions": (config.notes, ".note_annotations.parquet"),
        "image_truth": (config.images, ".image_annotations.parquet"),
        "phi": (config.notes or config.images, ".phi.parquet"),
    }
    for key, (wanted, suffix) in files.items():
        target = stem.with_name(stem.name + suffix)
        if not wanted:
            target.unlink(missing_ok=True)
            continue
        tmp = target.with_name(target.name + ".tmp")
        frames[key].to_parquet(tmp, index=False)
        tmp.replace(target)


def _write_truth(out: Path, config: SynthConfig, truth: pd.DataFrame) -> None:
    stem = out.with_suffix("")
    tmp = stem.with_name(stem.name + ".truth.parquet.tmp")
    truth.to_parquet(tmp, index=False)
    tmp.replace(stem.with_name(stem.name + ".truth.parquet"))
    doc = {
        "model": "Weibull proportional hazards for all-cause death, time in years",
        "cumulative_hazard": "lambda * t**rho * exp(sum_j beta_j * (x_j - centre_j))",
        "weibull_lambda": WEIBULL_LAMBDA,
        "weibull_rho": WEIBULL_RHO,
        "log_hazard_ratios": TRUE_LOG_HR,
        "centre": CENTRE,
        "terms": TERM_DEFINITIONS,
        "multimodal_log_hazard_ratios": MM.MULTIMODAL_LOG_HR,
        "multimodal_centre": MM.MULTIMODAL_CENTRE,
        "multimodal_terms": MM.MULTIMODAL_TERMS,
        "censoring": {
            "loss_to_follow_up_per_year": 0.04,
            "data_cutoff": config.period.data_cutoff.date().isoformat(),
            "transplant_per_year": 0.01,
            "transplant_code": TRANSPLANT_CODE,
        },
        "index_period": [
            config.period.index_start.date().isoformat(),
            config.period.index_end.date().isoformat(),
        ],
        "shift": None
        if config.shift is None
        else {
            **asdict(config.shift),
            "effective_weibull_lambda": WEIBULL_LAMBDA * config.shift.hazard_ratio,
            "note": "risk_1y and death_years in truth.parquet use the shifted baseline hazard",
        },
        "missing_completely_at_random": {t: miss for t, _, _, miss, _ in LABS},
        "config": {
            "patients": config.patients,
            "sites": config.sites,
            "seed": config.seed,
            "notes": config.notes,
            "images": config.images,
        },
    }
    jtmp = stem.with_name(stem.name + ".truth.json.tmp")
    jtmp.write_text(json.dumps(doc, indent=2))
    jtmp.replace(stem.with_name(stem.name + ".truth.json"))


def truth_paths(registry: Path | str) -> tuple[Path, Path]:
    """``(truth.json, truth.parquet)`` written beside a synthetic registry."""
    stem = Path(registry).with_suffix("")
    return stem.with_name(stem.name + ".truth.json"), stem.with_name(stem.name + ".truth.parquet")
