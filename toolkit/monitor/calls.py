"""What the audit log keeps of each call for monitoring, and reading it back.

A served call's audit record (``toolkit.serve.audit``) gets, besides the risk and the inputs'
hash it always had:

* ``bins``: input -> the index of the reference bin its value fell in (``null`` when the value
  was missing or imputed: the imputed value is not an observation); the bin, not the value;
* ``flags``: input -> the flags ``missing``, ``imputed``, ``out_of_range`` (only flagged inputs);
* ``patient_ref`` (CDS Hooks calls): a keyed pseudonym of the FHIR patient id,
  ``HMAC-SHA256(audit key, "patient:" + id)`` (plain SHA-256 without a key), so that monitoring
  can match a prediction with the registry person the hospital's link file names, while the log
  itself holds no patient id.

:func:`read_calls` reads those records back into frames: one row per prediction call and one per
CDS feedback reply.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.analysis.predict.reference import ReferenceDistributions, bin_index
from toolkit.errors import ToolkitError

PREDICTION_KINDS = ("cds-hooks", "rest", "mcp")


class MonitorError(ToolkitError, ValueError):
    """Monitoring cannot run on these inputs (bundle, audit log, registry, link file)."""


def call_fields(
    reference: ReferenceDistributions | None, values: Mapping[str, Any], flags: Mapping[str, Iterable[str]]
) -> dict[str, Any]:
    """The audit fields of one prediction: reference bins of the observed values, and the flags."""
    out: dict[str, Any] = {"flags": {k: sorted(v) for k, v in flags.items() if v}}
    if reference is not None:
        bins: dict[str, int | None] = {}
        for ref in reference.inputs:
            flagged = set(flags.get(ref.name, ()))
            observed = ref.name in values and not ({"missing", "imputed"} & flagged)
            bins[ref.name] = bin_index(ref, values[ref.name]) if observed and ref.bins else None
        out["bins"] = bins
    return out


def refused_fields(missing: Iterable[str]) -> dict[str, Any]:
    """The audit fields of a call refused for missing data (412): which inputs were missing."""
    return {"flags": {name: ["missing"] for name in missing}}


def patient_pseudonym(patient_id: str, key: bytes | None) -> str:
    """The pseudonym of a FHIR patient id in the audit log (keyed when the server has a key)."""
    data = f"patient:{patient_id}".encode()
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Calls:
    """The audit records of one agent bundle, as frames (times are UTC)."""

    predictions: pd.DataFrame  # time, status, risk, card_uuid, patient_ref, inputs_sha256, bins, flags
    feedback: pd.DataFrame  # time, card_uuid, outcome, override_reason
    records: int  # audit records read (all agents)
    versions: dict[str, int]  # calls per version of this agent (to name what was found)


def _records(path: Path) -> Iterable[dict[str, Any]]:
    if not path.is_file():
        raise MonitorError(f"{path}: audit log not found")
    try:
        db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        rows = db.execute("SELECT seq, body FROM audit ORDER BY seq").fetchall()
    except sqlite3.DatabaseError as exc:
        raise MonitorError(f"{path}: not a readable Regent audit log ({type(exc).__name__})") from None
    db.close()
    for seq, body in rows:
        try:
            rec = json.loads(body)
        except ValueError:
            raise MonitorError(f"{path}: record {seq} is not JSON; run 'regent audit verify'") from None
        yield rec


def _utc(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text)
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def read_calls(path: Path | str, *, agent: str, bundle_sha256: str) -> Calls:
    """The prediction calls and feedback replies of the bundle ``bundle_sha256`` of ``agent``."""
    path = Path(path)
    preds: list[dict[str, Any]] = []
    feedback: list[dict[str, Any]] = []
    versions: dict[str, int] = {}
    n = 0
    for rec in _records(path):
        n += 1
        if rec.get("agent") != agent:
            continue
        kind = rec.get("kind")
        if kind in PREDICTION_KINDS:
            versions[str(rec.get("version"))] = versions.get(str(rec.get("version")), 0) + 1
            if rec.get("bundle_sha256") != bundle_sha256:
                continue
            preds.append(
                {
                    "time": _utc(rec["time"]),
                    "kind": kind,
                    "status": int(rec.get("status") or 0),
                    "risk": rec.get("risk"),
                    "card_uuid": rec.get("card_uuid"),
                    "patient_ref": rec.get("patient_ref"),
                    "inputs_sha256": rec.get("inputs_sha256"),
                    "bins": rec.get("bins"),
                    "flags": rec.get("flags") or {},
                }
            )
        elif kind == "feedback":
            feedback.append(
                {
                    "time": _utc(rec["time"]),
                    "card_uuid": rec.get("card_uuid"),
                    "outcome": rec.get("outcome"),
                    "override_reason": rec.get("override_reason"),
                }
            )
    cols = ["time", "kind", "status", "risk", "card_uuid", "patient_ref", "inputs_sha256", "bins", "flags"]
    return Calls(
        pd.DataFrame(preds, columns=cols),
        pd.DataFrame(feedback, columns=["time", "card_uuid", "outcome", "override_reason"]),
        n,
        versions,
    )
