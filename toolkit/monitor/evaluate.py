"""One monitoring window, judged: drift, rates, feedback and (when matured) performance.

:func:`evaluate_windows` is a pure function of frames, so the same decision rule runs on an
audit log (``regent agent monitor``) and in simulations (tests/monitor): no I/O here.

``predictions`` has one row per prediction call: ``time`` (UTC), ``status`` (200 answered, 412
refused for missing data), ``risk``, ``card_uuid``, ``patient_ref``, ``inputs_sha256``, ``bins``
(input -> reference bin or None) and ``flags`` (input -> flags), and, when outcomes were read,
``time_fu``/``event_fu`` (days, 0/1/2) and ``link``.  ``feedback`` has ``card_uuid`` and
``outcome`` (accepted | overridden).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from toolkit.agents.contract import MonitoringSpec
from toolkit.analysis.predict.assess import bootstrap_intervals, point_metrics
from toolkit.analysis.predict.censored import pseudo_observations
from toolkit.analysis.predict.metrics import horizon_label
from toolkit.analysis.predict.reference import InputReference, ReferenceDistributions, bin_index
from toolkit.analysis.predict.smooth import smoothed_calibration
from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import AnalysisError
from toolkit.monitor.drift import bin_counts, binned_ks, psi
from toolkit.monitor.report import Check, Estimate, Feedback, Performance, Rates, WindowReport
from toolkit.monitor.windows import Window

FLAGS = ("missing", "imputed", "out_of_range")


@dataclass(frozen=True)
class Settings:
    """How to judge: the contract's thresholds, the horizon, the as-of date, the policy."""

    spec: MonitoringSpec
    reference: ReferenceDistributions
    horizon_days: float
    as_of: dt.datetime | None
    policy: DisclosurePolicy
    bootstrap: int = 200
    seed: int = 0
    #: False: confidence intervals only where a decision needs one (a point estimate outside its
    #: band); the decisions are the same, the report shows fewer intervals (simulations use it)
    intervals: bool = True


def _band(check: str, subject: str, est: Estimate, band: tuple[float, float], judged: str | None) -> Check:
    """Alert when the whole CI lies outside ``band``; watch when only the estimate does."""
    thr = f"[{band[0]:g}, {band[1]:g}]"
    if judged is not None or est.value is None:
        return Check(
            check=check,
            subject=subject,
            value=est.value,
            threshold=thr,
            status="not judged",
            reason=judged or "not estimable",
        )
    lo = est.lower if est.lower is not None else est.value
    hi = est.upper if est.upper is not None else est.value
    if hi < band[0] or lo > band[1]:
        status = "alert"
    elif not band[0] <= est.value <= band[1]:
        status = "watch"
    else:
        status = "ok"
    return Check(
        check=check,
        subject=subject,
        value=est.value,
        lower=est.lower,
        upper=est.upper,
        threshold=thr,
        status=status,
    )


def _above(
    check: str,
    subject: str,
    value: float | None,
    limit: float,
    judged: str | None,
    *,
    lower: float | None = None,
    upper: float | None = None,
    use_ci: bool = False,
) -> Check:
    """Alert when ``value`` (or, with ``use_ci``, the CI's lower bound) exceeds ``limit``."""
    thr = f"<= {limit:.3g}"
    if judged is not None or value is None:
        return Check(
            check=check,
            subject=subject,
            value=value,
            threshold=thr,
            status="not judged",
            reason=judged or "not estimable",
        )
    key = lower if use_ci and lower is not None else value
    status = "alert" if key > limit else "watch" if value > limit else "ok"
    return Check(
        check=check, subject=subject, value=value, lower=lower, upper=upper, threshold=thr, status=status
    )


def _shown(n: int, policy: DisclosurePolicy) -> str:
    """A count as text under the policy: ``<k`` for 1..k-1."""
    released = policy.count(n)
    return f"<{policy.min_cell}" if released is None else str(released)


def _distinct(preds: pd.DataFrame) -> pd.DataFrame:
    """Repeated calls (same patient, same inputs) count once; calls without a patient all count."""
    has = preds["patient_ref"].notna()
    dedup = preds[has].drop_duplicates(["patient_ref", "inputs_sha256"])
    return pd.concat([dedup, preds[~has]]).sort_values("time", kind="stable")


def _bins_of(rows: pd.DataFrame, ref: InputReference) -> np.ndarray:
    out = [(b or {}).get(ref.name) if isinstance(b, dict) else None for b in rows["bins"]]
    return np.asarray([-1 if v is None else int(v) for v in out], int)


def _drift(rows: pd.DataFrame, s: Settings) -> tuple[dict[str, float], dict[str, float], list[Check]]:
    psis: dict[str, float] = {}
    kss: dict[str, float] = {}
    checks: list[Check] = []
    spec = s.spec
    refs = [r for r in s.reference.inputs if r.bins]
    for ref in [*refs, s.reference.risk]:
        if ref is s.reference.risk:
            b = np.asarray([-1 if (j := bin_index(ref, r)) is None else j for r in rows["risk"]], int)
        else:
            b = _bins_of(rows, ref)
        counts = bin_counts(b, len(ref.bins))
        n = int(counts.sum())
        few = (
            f"{_shown(n, s.policy)} observed values; judged from {spec.min_calls}"
            if n < spec.min_calls
            else None
        )
        if n > 0:
            psis[ref.name] = psi(ref.shares, counts)
            kss[ref.name] = binned_ks(ref.shares, counts)
        name = "prediction_psi" if ref is s.reference.risk else "psi"
        limit = spec.prediction_psi if ref is s.reference.risk else spec.psi
        checks.append(_above(name, ref.name, psis.get(ref.name), limit, few))
        if spec.ks is not None and ref is not s.reference.risk:
            checks.append(_above("ks", ref.name, kss.get(ref.name), spec.ks, few))
    return psis, kss, checks


def _rates(rows: pd.DataFrame, s: Settings) -> tuple[dict[str, Rates], list[Check]]:
    n = len(rows)
    out: dict[str, Rates] = {}
    checks: list[Check] = []
    few = f"{_shown(n, s.policy)} calls; judged from {s.spec.min_calls}" if n < s.spec.min_calls else None
    for ref in s.reference.inputs:
        shares: dict[str, float | None] = {}
        for flag in FLAGS:
            k = int(sum(flag in (f or {}).get(ref.name, ()) for f in rows["flags"]))
            rate = k / n if n else None
            shares[flag] = None if s.policy.is_small(k) or s.policy.is_small(n) else rate
            base = ref.rate(flag, min_cell=s.reference.min_cell)[1]  # type: ignore[arg-type]
            check = _above(f"{flag}_rate", ref.name, rate, base + s.spec.rate_increase, few)
            if shares[flag] is None:  # a small count: the status is released, the rate is not
                check = check.model_copy(update={"value": None})
            checks.append(check)
        out[ref.name] = Rates(**{f"{k}_rate": v for k, v in shares.items()})
    return out, checks


def _feedback(cards: pd.Series, feedback: pd.DataFrame, s: Settings) -> tuple[Feedback, Check]:
    mine = feedback[feedback["card_uuid"].isin(set(cards.dropna()))]
    replies = len(mine)
    acc = int((mine["outcome"] == "accepted").sum())
    ovr = int((mine["outcome"] == "overridden").sum())
    p = s.policy

    def rate(k: int) -> float | None:
        return None if not replies or p.is_small(k) or p.is_small(replies) else k / replies

    fb = Feedback(
        cards=p.count(int(cards.notna().sum())),
        replies=p.count(replies),
        accepted=p.count(acc),
        overridden=p.count(ovr),
        accept_rate=rate(acc),
        override_rate=rate(ovr),
    )
    if s.spec.override_rate is None:
        check = Check(
            check="override_rate",
            subject="feedback",
            value=fb.override_rate,
            threshold="off",
            status="not judged",
            reason="override_rate is off in the contract",
        )
    else:
        few = (
            f"{_shown(replies, p)} replies; judged from {s.spec.min_feedback}"
            if replies < s.spec.min_feedback
            else None
        )
        check = _above(
            "override_rate", "feedback", ovr / replies if replies else None, s.spec.override_rate, few
        )
        if fb.override_rate is None:  # a small count behind it: the status is released, the rate is not
            check = check.model_copy(update={"value": None})
    return fb, check


def _bootstrap_ici(risk: np.ndarray, y: np.ndarray, replicates: int, seed: int) -> tuple[float, float] | None:
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(replicates):
        idx = rng.integers(0, len(risk), len(risk))
        try:  # 40 evaluation points: the ICI moves by < 1e-3 against 100 (measured), 3x faster
            vals.append(smoothed_calibration(risk[idx], y[idx], max_points=40).ici)
        except AnalysisError:
            continue
    if len(vals) < 0.9 * replicates:
        return None
    lo, hi = np.quantile(vals, [0.025, 0.975])
    return float(lo), float(hi)


def performance_estimates(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    *,
    bootstrap: int,
    seed: int,
    needed: Callable[[dict[str, float]], tuple[bool, bool]] | None = None,
) -> tuple[dict[str, Estimate], str]:
    """Calibration and discrimination at ``horizon`` with 95% CIs, censoring handled as the
    evaluation layer does (Kaplan-Meier O/E, pseudo-observations, IPCW).

    ``needed(point metrics) -> (bootstrap CIs, ICI CI)`` skips intervals no decision needs.
    """
    with np.errstate(all="ignore"):
        m, _ = point_metrics(time, event, risk, horizon)
        want_boot, want_ici = needed(m) if needed is not None else (True, True)
        ci: dict[str, float] = {}
        if want_boot:
            ci, _ = bootstrap_intervals(time, event, risk, horizon, replicates=bootstrap, seed=seed)
    label = horizon_label(time, event, horizon)
    binary = not np.isnan(label).any() and not ((event >= 2) & (time < horizon)).any()
    y = label if binary else pseudo_observations(time, event, horizon)
    ici_ci = _bootstrap_ici(risk, y, max(bootstrap // 2, 20), seed) if "ici" in m and want_ici else None

    def est(key: str, lo: str | None = None, hi: str | None = None) -> Estimate:
        return Estimate(value=m.get(key), lower=m.get(lo) if lo else None, upper=m.get(hi) if hi else None)

    out = {
        "observed_risk": est("observed_risk"),
        "expected_risk": est("mean_predicted_risk"),
        "o_e": Estimate(
            value=m.get("o_e_ratio"), lower=ci.get("o_e_ratio_lower"), upper=ci.get("o_e_ratio_upper")
        ),
        "calibration_slope": est("calibration_slope", "calibration_slope_lower", "calibration_slope_upper"),
        "calibration_intercept": est("citl", "citl_lower", "citl_upper"),
        "ici": Estimate(
            value=m.get("ici"), lower=ici_ci[0] if ici_ci else None, upper=ici_ci[1] if ici_ci else None
        ),
        "c_index": Estimate(
            value=m.get("c_harrell"), lower=ci.get("c_harrell_lower"), upper=ci.get("c_harrell_upper")
        ),
        "auc": Estimate(value=m.get("auc_td"), lower=ci.get("auc_td_lower"), upper=ci.get("auc_td_upper")),
    }
    return out, "binary" if binary else "pseudo"


def _needed(spec: MonitoringSpec) -> Callable[[dict[str, float]], tuple[bool, bool]]:
    """Which intervals a decision needs: only those of point estimates outside their bands."""

    def outside(m: dict[str, float]) -> tuple[bool, bool]:
        def out(key: str, band: tuple[float, float]) -> bool:
            return key in m and not band[0] <= m[key] <= band[1]

        boot = out("o_e_ratio", spec.o_e) or (
            spec.c_index_min is not None and m.get("c_harrell", 1.0) < spec.c_index_min
        )
        ici = spec.ici is not None and m.get("ici", 0.0) > spec.ici
        return boot, ici

    return outside


def _performance(rows: pd.DataFrame, w: Window, s: Settings) -> tuple[Performance | None, list[Check]]:
    if "link" not in rows:
        return None, []
    matured = w.matured(s.horizon_days, s.as_of)
    spec, h, p = s.spec, s.horizon_days, s.policy
    ok = rows[(rows["link"] == "ok") & rows["patient_ref"].notna()]
    first = ok.drop_duplicates("patient_ref")  # the first prediction per patient in the window
    t = first["time_fu"].to_numpy(float)
    e = first["event_fu"].to_numpy(int)
    r = first["risk"].to_numpy(float)
    events = int(((e == 1) & (t <= h)).sum())
    censored = int(((e == 0) & (t < h)).sum())
    why = None
    if not matured:
        why = "the horizon has not passed for every call in this window"
    elif events < spec.min_events:
        why = f"{_shown(events, p)} outcomes; judged from {spec.min_events}"
    metrics: dict[str, Estimate] = {}
    kind = None
    small = p.is_small(events) or p.is_small(len(first) - events)
    if matured and small:
        why = why or "fewer outcomes (or non-outcomes) than the minimum cell: not released"
    if matured and not small and len(first) >= 3 and 0 < events < len(first):
        try:
            metrics, kind = performance_estimates(
                t, e, r, h, bootstrap=s.bootstrap, seed=s.seed, needed=None if s.intervals else _needed(spec)
            )
        except AnalysisError as exc:
            why = why or f"not estimable: {exc}"
    perf = Performance(
        matured=matured,
        linked=p.count(len(first)),
        events=p.count(events),
        censored_before_horizon=p.count(censored),
        metrics=metrics,
        calibration_outcome=kind,
    )
    none = Estimate(value=None)
    checks = [
        _band("o_e", "outcomes", metrics.get("o_e", none), spec.o_e, why),
        _band(
            "calibration_slope",
            "outcomes",
            metrics.get("calibration_slope", none),
            spec.calibration_slope,
            why,
        ),
        _band(
            "calibration_intercept",
            "outcomes",
            metrics.get("calibration_intercept", none),
            spec.calibration_intercept,
            why,
        ),
    ]
    if spec.ici is not None:
        ici = metrics.get("ici", none)
        checks.append(
            _above("ici", "outcomes", ici.value, spec.ici, why, lower=ici.lower, upper=ici.upper, use_ci=True)
        )
    if spec.c_index_min is not None:
        c = metrics.get("c_index", none)
        flipped = Estimate(
            value=None if c.value is None else -c.value,
            lower=None if c.upper is None else -c.upper,
            upper=None if c.lower is None else -c.lower,
        )
        chk = _above(
            "c_index",
            "outcomes",
            flipped.value,
            -spec.c_index_min,
            why,
            lower=flipped.lower,
            upper=flipped.upper,
            use_ci=True,
        )
        checks.append(
            chk.model_copy(
                update={
                    "value": c.value,
                    "lower": c.lower,
                    "upper": c.upper,
                    "threshold": f">= {spec.c_index_min:g}",
                }
            )
        )
    return perf, checks


def evaluate_window(
    w: Window, predictions: pd.DataFrame, feedback: pd.DataFrame, s: Settings
) -> WindowReport:
    """Everything about one window (see the module docstring)."""
    sel = predictions[(predictions["time"] >= w.start) & (predictions["time"] < w.end)]
    answered = sel[sel["status"] == 200]
    refused = sel[sel["status"] == 412]
    distinct = _distinct(answered)
    psis, kss, drift_checks = _drift(distinct, s)
    rates, rate_checks = _rates(pd.concat([distinct, refused]), s)
    fb, fb_check = _feedback(answered["card_uuid"], feedback, s)
    perf, perf_checks = _performance(answered, w, s)
    p = s.policy
    risks = distinct["risk"].to_numpy(float)
    return WindowReport(
        start=w.start,
        end=w.end,
        calls=p.count(len(sel)),
        predictions=p.count(len(answered)),
        refused_missing=p.count(len(refused)),
        distinct=p.count(len(distinct)),
        rates=rates,
        psi=psis,
        ks=kss,
        mean_risk=float(risks.mean()) if len(risks) and not p.is_small(len(risks)) else None,
        feedback=fb,
        performance=perf,
        checks=[*drift_checks, *rate_checks, fb_check, *perf_checks],
    )


def evaluate_windows(
    windows: Sequence[Window], predictions: pd.DataFrame, feedback: pd.DataFrame, s: Settings
) -> list[WindowReport]:
    return [evaluate_window(w, predictions, feedback, s) for w in windows]
