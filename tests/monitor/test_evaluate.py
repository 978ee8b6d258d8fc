"""The decision rule on hand-made windows: drift, rates, feedback, calibration, disclosure."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit.agents.contract import MonitoringSpec
from toolkit.analysis.predict.reference import ReferenceDistributions, bin_index, reference_distributions
from toolkit.disclosure import DisclosurePolicy
from toolkit.monitor.calls import MonitorError
from toolkit.monitor.evaluate import Settings, evaluate_window, evaluate_windows
from toolkit.monitor.report import active_alerts
from toolkit.monitor.windows import Window, parse_window, windows_over

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
W = Window(T0, T0 + dt.timedelta(days=30))


@pytest.fixture(scope="module")
def reference() -> ReferenceDistributions:
    rng = np.random.default_rng(7)
    x = pd.DataFrame({"age": rng.normal(70, 10, 3000).round(), "lab": rng.lognormal(7, 1, 3000)})
    x.loc[rng.random(3000) < 0.1, "lab"] = np.nan
    return ReferenceDistributions.model_validate(
        reference_distributions(x, rng.beta(2, 6, 3000), policy=DisclosurePolicy())
    )


def _settings(reference: ReferenceDistributions, **spec: Any) -> Settings:
    return Settings(
        MonitoringSpec(**spec),
        reference,
        365.0,
        T0 + dt.timedelta(days=800),
        DisclosurePolicy(),
        bootstrap=100,
    )


def _calls(
    reference: ReferenceDistributions,
    n: int,
    *,
    seed: int,
    age_shift: float = 0.0,
    lab_missing: float = 0.1,
    risk_scale: float = 1.0,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age, lab = rng.normal(70 + age_shift, 10, n).round(), rng.lognormal(7, 1, n)
    missing = rng.random(n) < lab_missing
    risk = rng.beta(2, 6, n)
    # outcomes drawn from risk_scale x the predicted risk: O/E = risk_scale (no censoring)
    event = (rng.random(n) < np.clip(risk * risk_scale, 0, 1)).astype(int)
    ref_age, ref_lab = reference.input("age"), reference.input("lab")
    assert ref_age is not None and ref_lab is not None
    rows = []
    for i in range(n):
        flags = {"lab": ["imputed", "missing"]} if missing[i] else {}
        rows.append(
            {
                "time": T0 + dt.timedelta(minutes=i),
                "status": 200,
                "risk": float(risk[i]),
                "card_uuid": f"c{seed}-{i}",
                "patient_ref": f"p{seed}-{i}",
                "inputs_sha256": f"h{seed}-{i}",
                "bins": {
                    "age": bin_index(ref_age, age[i]),
                    "lab": None if missing[i] else bin_index(ref_lab, lab[i]),
                },
                "flags": flags,
                "time_fu": 365.0 if not event[i] else float(rng.uniform(1, 365)),
                "event_fu": int(event[i]),
                "link": "ok",
            }
        )
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


NO_FEEDBACK = pd.DataFrame(columns=["time", "card_uuid", "outcome"])


def _status(report: Any, check: str, subject: str) -> str:
    return next(c.status for c in report.checks if (c.check, c.subject) == (check, subject))


def test_a_stable_window_passes_every_check(reference: ReferenceDistributions) -> None:
    report = evaluate_window(W, _calls(reference, 600, seed=1), NO_FEEDBACK, _settings(reference))
    judged = [c for c in report.checks if c.status != "not judged"]
    assert judged and all(c.status in ("ok", "watch") for c in judged), [
        c for c in judged if c.status == "alert"
    ]
    o_e = report.performance.metrics["o_e"] if report.performance else None
    assert o_e is not None and o_e.lower is not None and o_e.lower <= 1.0 <= (o_e.upper or 0)


def test_input_drift_alerts_on_the_shifted_input_only(reference: ReferenceDistributions) -> None:
    report = evaluate_window(
        W, _calls(reference, 600, seed=2, age_shift=8), NO_FEEDBACK, _settings(reference)
    )
    assert _status(report, "psi", "age") == "alert" and report.psi["age"] > 0.2
    assert _status(report, "psi", "lab") == "ok"


def test_a_rise_in_missing_values_alerts(reference: ReferenceDistributions) -> None:
    report = evaluate_window(
        W, _calls(reference, 600, seed=3, lab_missing=0.4), NO_FEEDBACK, _settings(reference)
    )
    assert (
        _status(report, "missing_rate", "lab") == "alert"
        and _status(report, "imputed_rate", "lab") == "alert"
    )
    assert report.rates["lab"].missing_rate == pytest.approx(0.4, abs=0.05)


def test_calibration_alerts_only_when_the_whole_interval_leaves_the_band(
    reference: ReferenceDistributions,
) -> None:
    decayed = evaluate_window(
        W, _calls(reference, 600, seed=4, risk_scale=1.8), NO_FEEDBACK, _settings(reference)
    )
    assert _status(decayed, "o_e", "outcomes") == "alert"
    assert _status(decayed, "calibration_intercept", "outcomes") == "alert"
    # a small decay in a small window: the estimate leaves the band, its interval does not
    mild = evaluate_window(
        W, _calls(reference, 150, seed=5, risk_scale=1.3), NO_FEEDBACK, _settings(reference)
    )
    assert _status(mild, "o_e", "outcomes") in ("watch", "ok")


def test_windows_whose_horizon_has_not_passed_are_not_judged(reference: ReferenceDistributions) -> None:
    early = Settings(MonitoringSpec(), reference, 365.0, T0 + dt.timedelta(days=100), DisclosurePolicy())
    report = evaluate_window(W, _calls(reference, 300, seed=6), NO_FEEDBACK, early)
    assert report.performance is not None and not report.performance.matured
    assert _status(report, "o_e", "outcomes") == "not judged" and report.performance.metrics == {}


def test_too_few_calls_are_reported_not_judged_and_small_counts_are_withheld(
    reference: ReferenceDistributions,
) -> None:
    report = evaluate_window(
        W, _calls(reference, 40, seed=7, lab_missing=0.1), NO_FEEDBACK, _settings(reference)
    )
    assert _status(report, "psi", "age") == "not judged" and report.calls == 40
    if report.rates["lab"].missing_rate is None:  # 1..9 missing of 40: the rate would give it away
        assert (
            next(c for c in report.checks if c.check == "missing_rate" and c.subject == "lab").value is None
        )
    tiny = evaluate_window(W, _calls(reference, 5, seed=8), NO_FEEDBACK, _settings(reference))
    assert tiny.calls is None and tiny.predictions is None and tiny.mean_risk is None
    reasons = " ".join(c.reason or "" for c in tiny.checks)
    assert "<10 calls" in reasons and "5 calls" not in reasons and "5 observed" not in reasons


def test_a_small_number_of_overrides_is_withheld_with_its_rate(reference: ReferenceDistributions) -> None:
    calls = _calls(reference, 200, seed=11)
    feedback = pd.DataFrame(
        {
            "time": calls["time"][:30],
            "card_uuid": calls["card_uuid"][:30],
            "outcome": ["overridden"] * 3 + ["accepted"] * 27,
        }
    )
    report = evaluate_window(W, calls, feedback, _settings(reference))
    check = next(c for c in report.checks if c.check == "override_rate")
    assert report.feedback.overridden is None and report.feedback.override_rate is None
    assert check.status == "ok" and check.value is None and report.feedback.accept_rate == pytest.approx(0.9)


def test_overrides_above_the_threshold_alert(reference: ReferenceDistributions) -> None:
    calls = _calls(reference, 200, seed=9)
    feedback = pd.DataFrame(
        {
            "time": calls["time"][:40],
            "card_uuid": calls["card_uuid"][:40],
            "outcome": ["overridden"] * 30 + ["accepted"] * 10,
        }
    )
    report = evaluate_window(W, calls, feedback, _settings(reference))
    assert report.feedback.replies == 40 and report.feedback.override_rate == pytest.approx(0.75)
    assert _status(report, "override_rate", "feedback") == "alert"
    off = evaluate_window(W, calls, feedback, _settings(reference, override_rate=None))
    assert _status(off, "override_rate", "feedback") == "not judged"


def test_repeated_calls_of_a_patient_count_once(reference: ReferenceDistributions) -> None:
    calls = _calls(reference, 200, seed=10)
    twice = pd.concat([calls, calls.assign(time=calls["time"] + pd.Timedelta(hours=1))], ignore_index=True)
    report = evaluate_window(W, twice, NO_FEEDBACK, _settings(reference))
    assert report.predictions == 400 and report.distinct == 200


def test_active_alerts_run_from_the_first_window_of_the_current_run(
    reference: ReferenceDistributions,
) -> None:
    frames = [_calls(reference, 300, seed=20), _calls(reference, 300, seed=21, age_shift=8)]
    frames.append(_calls(reference, 300, seed=22, age_shift=8))
    days = [0, 30, 60]
    calls = pd.concat(
        [f.assign(time=f["time"] + pd.Timedelta(days=d)) for f, d in zip(frames, days, strict=True)],
        ignore_index=True,
    )
    windows = windows_over(T0, calls["time"].max(), dt.timedelta(days=30))
    reports = evaluate_windows(windows, calls, NO_FEEDBACK, _settings(reference))
    (alert,) = [a for a in active_alerts(reports) if a.check == "psi"]
    assert (
        alert.subject == "age" and alert.since == windows[1].start and alert.window_start == windows[2].start
    )
    # a fourth, stable window ends the alert
    calls4 = pd.concat(
        [calls, _calls(reference, 300, seed=23).assign(time=lambda f: f["time"] + pd.Timedelta(days=90))]
    )
    windows4 = windows_over(T0, calls4["time"].max(), dt.timedelta(days=30))
    assert not [
        a
        for a in active_alerts(evaluate_windows(windows4, calls4, NO_FEEDBACK, _settings(reference)))
        if a.check == "psi"
    ]


def test_window_lengths() -> None:
    assert parse_window("30d") == dt.timedelta(days=30) and parse_window("2w") == dt.timedelta(days=14)
    assert parse_window("12h") == dt.timedelta(hours=12)
    for bad in ("0d", "30", "1mo", "-3d"):
        with pytest.raises(MonitorError, match="--window"):
            parse_window(bad)
    (w,) = windows_over(T0 + dt.timedelta(hours=13), T0 + dt.timedelta(hours=20), dt.timedelta(days=1))
    assert w.start == T0 and w.matured(365, T0 + dt.timedelta(days=366)) and not w.matured(365, None)
