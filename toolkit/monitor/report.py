"""``MonitoringReport``: the typed form of monitoring.json.  Its JSON *is* the file on disk.

Every count in it passed the disclosure policy of the agent's reference (a count of 1..k-1 is
null, and so is a rate whose numerator is such a count); PSI, KS and the performance estimates
are statistics of whole windows.  ``regent agent monitor`` writes it with an HTML rendering,
the server reads it for its gauges and card notice, and the MLflow logger for its metrics.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolkit.monitor.calls import MonitorError

REPORT_SCHEMA_VERSION = "1"
Status = Literal["ok", "watch", "alert", "not judged"]
#: the checks a calibration alert consists of (the card notice names these)
CALIBRATION_CHECKS = ("o_e", "calibration_slope", "calibration_intercept", "ici")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Estimate(_Model):
    value: float | None = Field(description="Point estimate (null when it could not be computed).")
    lower: float | None = Field(None, description="95% confidence interval, lower bound.")
    upper: float | None = Field(None, description="95% confidence interval, upper bound.")


class Check(_Model):
    """One judgment: a statistic of one window against its threshold."""

    check: str = Field(
        description="psi, ks, prediction_psi, missing_rate, imputed_rate, "
        "out_of_range_rate, override_rate, o_e, calibration_slope, "
        "calibration_intercept, ici, c_index."
    )
    subject: str = Field(description="The input, `risk`, `feedback` or `outcomes`.")
    value: float | None
    lower: float | None = None
    upper: float | None = None
    threshold: str = Field(description="What passes, e.g. `<= 0.2` or `[0.8, 1.2]`.")
    status: Status
    reason: str | None = Field(None, description="Why a check was not judged, or why it alerts.")


class Rates(_Model):
    """Shares of calls with a flag (null when the count behind it is 1..k-1)."""

    missing_rate: float | None
    imputed_rate: float | None
    out_of_range_rate: float | None


class Feedback(_Model):
    cards: int | None = Field(description="Cards shown (calls answered with a card).")
    replies: int | None = Field(description="CDS feedback replies about those cards.")
    accepted: int | None
    overridden: int | None
    accept_rate: float | None = Field(description="accepted / replies.")
    override_rate: float | None = Field(description="overridden / replies.")


class Performance(_Model):
    matured: bool = Field(description="Whether the window's horizon has passed by the registry's as-of date.")
    linked: int | None = Field(
        description="Patients matched with a registry person (first call per patient)."
    )
    events: int | None = Field(description="Outcomes within the horizon among them.")
    censored_before_horizon: int | None
    metrics: dict[str, Estimate] = Field(
        description="observed_risk, expected_risk, o_e, calibration_slope, calibration_intercept, "
        "ici, c_index, auc (time-dependent, IPCW)."
    )
    calibration_outcome: str | None = Field(None, description="`binary` or `pseudo` (censoring).")


class WindowReport(_Model):
    start: dt.datetime
    end: dt.datetime
    calls: int | None = Field(description="Prediction calls (any status).")
    predictions: int | None = Field(description="Calls answered with a risk.")
    refused_missing: int | None = Field(description="Calls refused for missing required data (412).")
    distinct: int | None = Field(
        description="Predictions after dropping repeats (same patient, same inputs)."
    )
    rates: dict[str, Rates] = Field(description="Per input: shares of predictions with the flag.")
    psi: dict[str, float] = Field(description="Per input, and `risk`: population stability index.")
    ks: dict[str, float] = Field(description="Per input, and `risk`: binned Kolmogorov-Smirnov.")
    mean_risk: float | None
    feedback: Feedback
    performance: Performance | None
    checks: list[Check]


class Alert(_Model):
    check: str
    subject: str
    since: dt.datetime = Field(description="Start of the first window of the current run of alerts.")
    window_start: dt.datetime = Field(description="The latest judged window, in which it alerts.")
    value: float | None
    threshold: str


class Linkage(_Model):
    linked: int | None = Field(description="Predictions matched with a followed registry person.")
    unlinked: int | None = Field(description="CDS predictions whose patient is not in the link file.")
    not_followed: int | None = Field(description="Linked, but not under registry observation at the call.")
    outcome_before_call: int | None = Field(
        description="The outcome is recorded before the call (data mismatch)."
    )
    no_patient: int | None = Field(description="Predictions without a patient (REST, MCP): not linkable.")


class MonitoringReport(_Model):
    """monitoring.json: what ``regent agent monitor`` found for one agent bundle."""

    schema_version: str = REPORT_SCHEMA_VERSION
    generated_at: dt.datetime
    agent: str
    version: str
    bundle_sha256: str
    registered_model: str | None
    model_version: int | None
    mlflow_run_id: str | None
    horizon_days: float
    window_days: float
    as_of: dt.datetime | None = Field(description="The registry's outcomes are complete up to here.")
    min_cell: int
    thresholds: dict[str, Any] = Field(description="The contract's monitoring block, as applied.")
    clinical_owner: str
    audit_records: int
    linkage: Linkage | None
    windows: list[WindowReport]
    alerts: list[Alert] = Field(description="Active alerts: alerting in the latest window that judged them.")

    @property
    def calibration_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.check in CALIBRATION_CHECKS]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def read_report(path: Path | str) -> MonitoringReport:
    """Read a monitoring.json (or the folder that holds one)."""
    from pydantic import ValidationError

    p = Path(path)
    p = p / "monitoring.json" if p.is_dir() else p
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MonitorError(f"{p}: not a readable monitoring.json ({type(exc).__name__})") from None
    try:
        return MonitoringReport.model_validate(data)
    except ValidationError as exc:
        raise MonitorError(f"{p}: not a monitoring report ({exc.error_count()} schema errors)") from None


def active_alerts(windows: list[WindowReport]) -> list[Alert]:
    """For each (check, subject): alerting in the latest window that judged it, since when."""
    latest: dict[tuple[str, str], tuple[int, Check]] = {}
    for i, w in enumerate(windows):
        for c in w.checks:
            if c.status != "not judged":
                latest[(c.check, c.subject)] = (i, c)
    alerts = []
    for (check, subject), (i, c) in latest.items():
        if c.status != "alert":
            continue
        first = i
        for j in range(i - 1, -1, -1):
            prior = [x for x in windows[j].checks if (x.check, x.subject) == (check, subject)]
            if prior and prior[0].status == "alert":
                first = j
            elif prior and prior[0].status != "not judged":
                break
        alerts.append(
            Alert(
                check=check,
                subject=subject,
                since=windows[first].start,
                window_start=windows[i].start,
                value=c.value,
                threshold=c.threshold,
            )
        )
    return sorted(alerts, key=lambda a: (a.check, a.subject))
