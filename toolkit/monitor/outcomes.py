"""Outcomes for served predictions, read from the registry as they mature.

The hospital keeps a link file between the patient ids its EHR sends in CDS Hooks calls and the
registry's persons: CSV with the header ``patient_id,person_id``.  Each prediction's audit record
holds a pseudonym of its patient id (:func:`~toolkit.monitor.calls.patient_pseudonym`); the link
file's ids are pseudonymised the same way (with the server's audit key) to find the person.

A prediction made at time ``T`` is then followed in the registry as the study followed its
cohort from the index time: the outcome is the first event matching the study's outcome
definition (the bundle's outcome.json) at or after ``T`` plus the time at risk's start; follow-up
ends at the end of the person's observation period, a censoring event, the time at risk's end, a
censoring date or the registry's as-of date, whichever comes first; a competing event ends it
as event 2.  A person not under observation at ``T`` is not followed, and one whose outcome is
recorded before ``T`` is a data mismatch; both are counted and left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.cohort import spec as C
from toolkit.cohort.criteria import Context, code_predicate
from toolkit.monitor.calls import MonitorError, patient_pseudonym
from toolkit.registry.store import Registry

DAY_S = 86_400.0


@dataclass(frozen=True)
class OutcomeDefinition:
    """The study's outcome, as the bundle's outcome.json carries it."""

    cohort: str
    outcome: C.Outcome
    concept_sets: dict[str, list[Any]]
    horizon_days: float


def load_outcome(bundle: Path) -> OutcomeDefinition | None:
    path = Path(bundle) / "outcome.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return OutcomeDefinition(
            str(data["cohort"]),
            C.Outcome.model_validate(data["outcome"]),
            dict(data.get("concept_sets") or {}),
            float(data["horizon_days"]),
        )
    except (ValueError, KeyError, TypeError):
        raise MonitorError(f"{path}: not an outcome definition written by 'regent agent package'") from None


def read_link(path: Path | str, *, key: bytes | None) -> dict[str, str]:
    """``{patient pseudonym: person_id}`` from the link file; errors name the line, never a value."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError:
        raise MonitorError(f"{path}: link file not readable") from None
    rows = csv.reader(text.splitlines())
    header = [h.strip() for h in next(rows, [])]
    if header[:2] != ["patient_id", "person_id"] or len(header) != 2:
        raise MonitorError(f"{path}: line 1: expected the header 'patient_id,person_id'")
    out: dict[str, str] = {}
    for i, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise MonitorError(f"{path}: line {i}: expected two non-empty fields, patient_id and person_id")
        ref = patient_pseudonym(row[0].strip(), key)
        if ref in out and out[ref] != row[1].strip():
            raise MonitorError(f"{path}: line {i}: this patient_id is linked to two different persons")
        out[ref] = row[1].strip()
    if not out:
        raise MonitorError(f"{path}: the link file has no rows")
    return out


def registry_as_of(reg: Registry) -> dt.datetime:
    """Where the registry's outcomes are complete: its ``data_cutoff`` metadata, else the last
    observation end."""
    meta = reg.metadata()
    text = meta.get("data_cutoff")
    if text:
        t = dt.datetime.fromisoformat(str(text).strip('"'))
    else:
        row = reg.sql("SELECT MAX(end_time) AS t FROM observation_period")
        if row.empty or pd.isna(row["t"].iloc[0]):
            raise MonitorError(f"{reg.path}: no observation periods: the as-of date is unknown; give --as-of")
        t = pd.Timestamp(row["t"].iloc[0]).to_pydatetime()
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _first_event_sql(pred: str, op: str) -> str:
    return (
        f"SELECT o.k, MIN(e.time) AS t FROM origins o JOIN events e ON e.person_id = o.person_id "
        f"AND e.time {op} o.start_at WHERE {pred} GROUP BY o.k"
    )


def _query(d: OutcomeDefinition) -> str:
    ctx = Context(d.concept_sets, {}, "outcome.json")
    o = d.outcome
    parts = {
        "ev": _first_event_sql(code_predicate(o, ctx), ">="),
        "prior": _first_event_sql(code_predicate(o, ctx), "<"),
    }
    if o.censor.events is not None:
        parts["cz"] = _first_event_sql(code_predicate(o.censor.events, ctx), ">=")
    for j, comp in enumerate(o.competing):
        parts[f"c{j}"] = _first_event_sql(code_predicate(comp, ctx), ">=")
    obs = (
        "SELECT o.k, MAX(p.end_time) AS t FROM origins o JOIN observation_period p "
        "ON p.person_id = o.person_id AND p.start_time <= o.origin AND p.end_time >= o.origin GROUP BY o.k"
    )
    ctes = [("obs", obs), *parts.items()]
    cols = ", ".join(f"{name}.t AS {name}" for name, _ in ctes)
    joins = " ".join(f"LEFT JOIN {name} ON {name}.k = origins.k" for name, _ in ctes)
    with_sql = ", ".join(f"{name} AS ({sql})" for name, sql in ctes)
    return f"WITH {with_sql} SELECT origins.k, {cols} FROM origins {joins} ORDER BY origins.k"


def follow_up(
    reg: Registry,
    origins: pd.DataFrame,
    definition: OutcomeDefinition,
    *,
    as_of: dt.datetime,
) -> pd.DataFrame:
    """``time`` (days), ``event`` (0, 1, 2) and ``link`` (ok, not_followed, outcome_before_call) for
    each row of ``origins`` (``person_id``, ``origin``: a UTC time), in its order."""
    o = definition.outcome
    frame = origins.reset_index(drop=True).copy()
    frame["k"] = np.arange(len(frame))
    origin = pd.to_datetime(frame["origin"], utc=True).dt.tz_localize(None)
    frame["origin"] = origin
    frame["start_at"] = origin + pd.to_timedelta(o.time_at_risk.start_days, unit="D")
    person_type = reg.columns("person").get("person_id", "VARCHAR").upper()
    if any(t in person_type for t in ("INT", "DECIMAL")):
        ids = pd.to_numeric(frame["person_id"], errors="coerce")
        frame["person_id"] = ids.astype("Int64")
    reg.con.register("origins", frame[["k", "person_id", "origin", "start_at"]])
    try:
        got = reg.con.execute(_query(definition)).df()
    finally:
        reg.con.unregister("origins")
    ends = [
        got["obs"],
        pd.Series(pd.Timestamp(as_of.astimezone(dt.UTC).replace(tzinfo=None)), index=got.index),
    ]
    if "cz" in got:
        ends.append(got["cz"])
    if o.time_at_risk.end_days is not None:
        ends.append(frame["origin"] + pd.to_timedelta(o.time_at_risk.end_days, unit="D"))
    if o.censor.date is not None:
        ends.append(pd.Series(pd.Timestamp(o.censor.date), index=got.index))
    end = pd.concat(ends, axis=1).min(axis=1)
    comp = [c for c in got.columns if c.startswith("c") and c[1:].isdigit()]
    first_comp = got[comp].min(axis=1) if comp else pd.Series(pd.NaT, index=got.index)
    ev_t = got["ev"].where(got["ev"] <= end)
    cp_t = first_comp.where(first_comp <= end)
    event = np.where(ev_t.notna() & (cp_t.isna() | (ev_t <= cp_t)), 1, np.where(cp_t.notna(), 2, 0))
    stop = ev_t.where(event == 1, cp_t.where(event == 2, end))
    days = (stop - frame["origin"]).dt.total_seconds() / DAY_S
    link = np.where(
        got["obs"].isna(), "not_followed", np.where(got["prior"].notna(), "outcome_before_call", "ok")
    )
    return pd.DataFrame({"time": days.to_numpy(float), "event": event.astype(int), "link": link})
