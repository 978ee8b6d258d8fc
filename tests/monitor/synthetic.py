"""Served patients from the synthetic heart-failure generator, as the agent and the server see them.

* :func:`study_folder` writes a small hf_mortality-like study (structured inputs, one Cox model).
* :func:`served_registry` builds a registry of a period anchored at the present, so that CDS
  Hooks calls made now happen at the patients' admissions and the registry (a simulation) already
  holds the year that follows.
* :func:`cds_requests` turns the registry's persons into CDS Hooks ``patient-view`` requests with
  FHIR prefetch (Patient, Observations at the admission, Conditions, MedicationStatements).
* :func:`simulated_calls` draws persons from the generator without a registry and gives the
  prediction frame and follow-up that ``evaluate_windows`` reads (the decision rule, fast).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from toolkit.agents.load import Agent
from toolkit.errors import InputValidationError
from toolkit.monitor.calls import call_fields, patient_pseudonym, refused_fields
from toolkit.registry.store import Registry
from toolkit.registry.synth import heart_failure as hf

REPO = Path(__file__).resolve().parents[2]
LOINC, ICD10, ATC = "http://loinc.org", "http://hl7.org/fhir/sid/icd-10", "http://www.whocc.no/atc"
LABS = {  # registry code -> (LOINC code, unit)
    "LOINC:33762-6": "pg/mL",
    "LOINC:10230-1": "%",
    "LOINC:2160-0": "mg/dL",
    "LOINC:2951-2": "mmol/L",
    "LOINC:8480-6": "mm[Hg]",
    "LOINC:718-7": "g/dL",
}
INPUT_OF_LAB = {
    "lvef": "lvef",
    "nt_probnp": "nt_probnp",
    "creatinine": "creatinine",
    "sodium": "sodium",
    "sbp": "sbp",
    "hemoglobin": "hemoglobin",
}
MONITORING = {
    "window": "30d",
    "min_calls": 100,
    "psi": 0.2,
    "prediction_psi": 0.2,
    "rate_increase": 0.10,
    "override_rate": 0.5,
    "min_feedback": 20,
    "o_e": [0.8, 1.25],
    "calibration_slope": [0.8, 1.2],
    "calibration_intercept": [-0.3, 0.3],
    "ici": 0.05,
    "c_index_min": 0.6,
    "min_events": 20,
    "card_notice": True,
    "clinical_owner": {"name": "Dr. Lin (heart-failure registry PI)", "contact": "lin@example.org"},
}


def study_folder(root: Path, registry: Path) -> Path:
    """hf_mortality's cohort and structured features, one Cox model, light validation."""
    study = root / "hf_monitor"
    study.mkdir(parents=True)
    shutil.copy(REPO / "studies/hf_mortality/cohort.yaml", study / "cohort.yaml")
    spec = yaml.safe_load((REPO / "studies/hf_mortality/study.yaml").read_text())
    spec.update(
        name="hf_monitor",
        registry={"path": str(registry)},
        analyses=[],
        models=[m for m in spec["models"] if m["name"] == "cox_1y"],
        validation={"cv_folds": 3, "bootstrap": 50, "optimism_bootstrap": 0},
        gates=[{"model": "cox_1y", "c_index_lower_min": 0.6}],
    )
    spec["features"] = {"static": spec["features"]["static"], "windows": spec["features"]["windows"]}
    (study / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return study


def agent_folder(root: Path, study: Path) -> Path:
    """agents/hf-mortality's contract on the small study, with a monitoring block."""
    folder = root / "hf-monitor-agent"
    folder.mkdir(parents=True)
    contract = yaml.safe_load((REPO / "agents/hf-mortality/agent.yaml").read_text())
    contract["source"] = {"study": str(study), "model": "cox_1y", "alias": "candidate"}
    contract["monitoring"] = MONITORING
    (folder / "agent.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    return folder


@dataclass(frozen=True)
class Developed:
    bundle: Path
    mlruns: Path
    registry: Path
    root: Path


def develop_agent(root: Path) -> Developed:
    """Registry (3,000 persons, 2014-2022) -> study run tracked in MLflow -> packaged bundle."""
    import warnings

    from toolkit.agents.package import package_agent
    from toolkit.study.runner import run_study
    from toolkit.tracking.mlflow_tracker import MLflowTracker
    from toolkit.tracking.models import MLflowModelStore

    registry = hf.synthesize(root / "dev.duckdb", hf.SynthConfig(3000, 1, 41, notes=False, images=False))
    study = study_folder(root, registry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_study(study, out=root / "out", tracker=MLflowTracker(root / "mlruns"))
        with MLflowModelStore(root / "mlruns") as store:
            bundle, _, art = package_agent(agent_folder(root, study), store.fetch, dist=root / "dist")
            store.set_alias(str(art.registered_model), "validated", int(art.model_version or 0))
    return Developed(bundle, root / "mlruns", registry, root)


def anchored_period(now: dt.datetime) -> hf.Period:
    """Admissions in the two days before ``now``; follow-up to 430 days after it."""
    base = now.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    return hf.Period(base - dt.timedelta(days=2), base - dt.timedelta(hours=1), base + dt.timedelta(days=430))


def served_registry(
    path: Path, *, patients: int, seed: int, shift: hf.Shift | None, now: dt.datetime
) -> Path:
    config = hf.SynthConfig(
        patients, 1, seed, notes=False, images=False, period=anchored_period(now), shift=shift
    )
    return hf.synthesize(path, config)


def patient_id(person_id: int) -> str:
    """The EHR's id of a registry person (what the hospital's link file maps)."""
    return "ehr-" + hashlib.sha256(f"mrn{person_id}".encode()).hexdigest()[:12]


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def _when(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).tz_localize("UTC").isoformat()


def cds_requests(registry: Path, *, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """(person_id, CDS Hooks request) for the first ``limit`` persons admitted for heart failure."""
    with Registry(registry) as reg:
        index = reg.sql(
            "SELECT person_id, MIN(time) AS t FROM events WHERE code LIKE 'ICD10:I50%' "
            "GROUP BY person_id ORDER BY person_id LIMIT ?",
            [limit],
        )
        ids = index["person_id"].tolist()
        persons = reg.sql("SELECT * FROM person WHERE person_id IN (SELECT UNNEST(?))", [ids])
        events = reg.sql(
            "SELECT e.person_id, e.time, e.code, e.numeric_value FROM events e JOIN (SELECT UNNEST(?) AS person_id) p "
            "USING (person_id) WHERE e.code LIKE 'LOINC:%' OR e.code LIKE 'ICD10:%' OR e.code LIKE 'ATC:%'",
            [ids],
        )
    at = dict(zip(index["person_id"], index["t"], strict=True))
    out = []
    for _, person in persons.sort_values("person_id").iterrows():
        pid_reg = int(person["person_id"])
        pid = patient_id(pid_reg)
        t0 = at[pid_reg]
        ev = events[events["person_id"] == pid_reg]
        subject = {"reference": f"Patient/{pid}"}
        obs, cond, meds = [], [], []
        for i, e in enumerate(ev.itertuples()):
            rid = f"{pid}-{i}"
            if e.code in LABS and e.time == t0:
                unit = LABS[e.code]
                obs.append(
                    {
                        "resourceType": "Observation",
                        "id": rid,
                        "status": "final",
                        "subject": subject,
                        "effectiveDateTime": _when(e.time),
                        "code": {"coding": [{"system": LOINC, "code": e.code.split(":", 1)[1]}]},
                        "valueQuantity": {
                            "value": float(e.numeric_value),
                            "unit": unit,
                            "system": "http://unitsofmeasure.org",
                            "code": unit,
                        },
                    }
                )
            elif e.code.startswith("ICD10:") and e.time < t0 and not e.code.startswith("ICD10:I50"):
                cond.append(
                    {
                        "resourceType": "Condition",
                        "id": rid,
                        "subject": subject,
                        "clinicalStatus": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                    "code": "active",
                                }
                            ]
                        },
                        "code": {"coding": [{"system": ICD10, "code": e.code.split(":", 1)[1]}]},
                        "onsetDateTime": _when(e.time),
                    }
                )
            elif e.code.startswith("ATC:") and e.time <= t0:
                meds.append(
                    {
                        "resourceType": "MedicationStatement",
                        "id": rid,
                        "status": "active",
                        "subject": subject,
                        "medicationCodeableConcept": {
                            "coding": [{"system": ATC, "code": e.code.split(":", 1)[1]}]
                        },
                        "effectiveDateTime": _when(e.time),
                    }
                )
        patient = {
            "resourceType": "Patient",
            "id": pid,
            "gender": "male" if person["sex"] == "M" else "female",
            "birthDate": pd.Timestamp(person["birth_date"]).date().isoformat(),
        }
        request = {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/cardio-1", "patientId": pid},
            "prefetch": {
                "patient": patient,
                "observation": _bundle(obs),
                "condition": _bundle(cond),
                "medicationstatement": _bundle(meds),
            },
        }
        out.append((pid_reg, request))
    return out


# --- the decision rule without a server ---------------------------------------------------------
def served_persons(n: int, seed: int, *, shift: hf.Shift | None, period: hf.Period) -> pd.DataFrame:
    """``n`` persons of the generator who would be in the heart-failure cohort."""
    ss = np.random.SeedSequence(seed)
    main, latent = (np.random.default_rng(s) for s in ss.spawn(2))
    p = hf._draw_persons(main, int(n * 1.25), 1, 1, latent, period=period, shift=shift)
    prior_days = (p["index_s"] - p["obs_start_s"]) / hf.DAY
    keep = p["has_hf"] & (p["prior_transplant"] == 0) & (p["dialysis"] == 0) & (prior_days >= 365)
    return p[keep].head(n).reset_index(drop=True)


def inputs_of(row: Any) -> dict[str, Any]:
    """The contract inputs the FHIR mapping gives for this person (None when not measured)."""
    out: dict[str, Any] = {"age": float(row.age), "sex": "M" if row.male else "F"}
    for term in INPUT_OF_LAB:
        out[term] = float(getattr(row, term)) if getattr(row, f"{term}_measured") else None
    for term in ("diabetes", "ckd", "copd", "af", "beta_blocker"):
        out[term] = bool(getattr(row, term))
    return out


def follow_up_of(p: pd.DataFrame, period: hf.Period) -> tuple[np.ndarray, np.ndarray]:
    """Days from admission to death, or to censoring (loss, transplant, cut-off), and the event."""
    admin = (hf._secs(period.data_cutoff) - p["index_s"].to_numpy()) / (hf.YEAR_DAYS * hf.DAY)
    censor = np.minimum(np.minimum(p["ltfu_years"].to_numpy(), p["transplant_years"].to_numpy()), admin)
    death = p["death_years"].to_numpy()
    return np.minimum(death, censor) * hf.YEAR_DAYS, (death <= censor).astype(int)


def simulated_calls(agent: Agent, p: pd.DataFrame, period: hf.Period, *, start: dt.datetime) -> pd.DataFrame:
    """The prediction frame ``evaluate_windows`` reads: one call per person at ``start`` + i minutes."""
    time_fu, event_fu = follow_up_of(p, period)
    rows = []
    for i, row in enumerate(p.itertuples()):
        inputs = {k: v for k, v in inputs_of(row).items() if v is not None}
        base = {
            "time": start + dt.timedelta(minutes=i),
            "card_uuid": None,
            "patient_ref": patient_pseudonym(f"sim-{row.person_id}", None),
            "inputs_sha256": hashlib.sha256(repr(sorted(inputs.items())).encode()).hexdigest(),
            "time_fu": time_fu[i],
            "event_fu": event_fu[i],
            "link": "ok",
        }
        try:
            pred = agent.predict(inputs)
        except InputValidationError as exc:
            rows.append({**base, "status": 412, "risk": None, "bins": None, **refused_fields(exc.fields)})
            continue
        rows.append(
            {
                **base,
                "status": 200,
                "risk": pred.risk,
                **call_fields(agent.reference, pred.inputs, pred.flags),
            }
        )
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def judged(
    agent: Agent, frames: list[pd.DataFrame], *, start: dt.datetime, window: dt.timedelta
) -> list[Any]:
    """The monitor's decisions on consecutive windows of simulated calls (each frame one window)."""
    from toolkit.disclosure import DisclosurePolicy
    from toolkit.monitor.evaluate import Settings, evaluate_windows
    from toolkit.monitor.windows import windows_over

    assert agent.reference is not None
    shifted = [f.assign(time=f["time"] + k * pd.Timedelta(window)) for k, f in enumerate(frames)]
    calls = pd.concat(shifted, ignore_index=True)
    wins = windows_over(start, calls["time"].max(), window)
    settings = Settings(
        agent.contract.monitoring,
        agent.reference,
        agent.contract.output.horizon_days,
        start + len(frames) * window + dt.timedelta(days=400),  # every window matured
        DisclosurePolicy(min_cell=agent.reference.min_cell),
        intervals=False,
    )
    empty = pd.DataFrame(columns=["time", "card_uuid", "outcome"])
    return evaluate_windows(wins, calls, empty, settings)
