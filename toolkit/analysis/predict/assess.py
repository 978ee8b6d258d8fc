"""Journal-grade assessment of predicted absolute risk at a horizon.

:func:`point_metrics` computes every metric once (no confidence intervals): it is what the
optimism bootstrap, the subgroup tables and the CV folds call.  :func:`assess` adds percentile
bootstrap confidence intervals (replicates drawn as multinomial weights, all replicates in one
vectorised pass), the calibration table by risk decile, the smoothed calibration curve, the
threshold table and the decision curve, with disclosure control on anything that counts persons.

A metric that cannot be computed (one outcome class, constant predictions, no comparable pairs,
follow-up shorter than the horizon) is left out and a sentence saying why is added to
``warnings``; a metric is never silently NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.analysis.predict import censored as cz
from toolkit.analysis.predict import metrics as mx
from toolkit.analysis.predict.concordance import harrell_c, uno_c
from toolkit.analysis.predict.smooth import smoothed_calibration
from toolkit.analysis.survival.km import km_curve
from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import AnalysisError

DEFAULT_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)
DCA_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)
#: metrics with percentile bootstrap intervals (cheap to recompute with weights)
BOOTSTRAPPED = (
    "c_harrell",
    "c_uno",
    "auroc",
    "auprc",
    "brier",
    "scaled_brier",
    "auc_td",
    "brier_ipcw",
    "ipa",
    "o_e_ratio",
)


def ibs_times(horizon: float, k: int = 10, *, from_zero: bool = False) -> np.ndarray:
    """The time grid of the integrated Brier score: ``k`` equal steps up to the horizon.

    By default the grid starts at ``h/k`` (the integral covers [h/k, h], Regent's original
    choice, kept so existing results do not change); ``from_zero=True`` adds 0 and the integral
    covers [0, h], as riskRegression's IBS does (it integrates from 0 and divides by h).  The
    [0, h] value reads about 10 % lower: the Brier score is smallest early on, and that stretch
    is no longer left out.
    """
    return horizon * np.arange(0 if from_zero else 1, k + 1) / k


@dataclass
class _Collector:
    warnings: list[str] = field(default_factory=list)

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            with np.errstate(all="ignore"):
                value = fn()
        except AnalysisError as exc:
            msg = f"{name}: {exc}" if not str(exc).startswith(name) else str(exc)
            if msg not in self.warnings:
                self.warnings.append(msg)
            return None
        return value


def _outcome_for_calibration(time: np.ndarray, event: np.ndarray, horizon: float) -> tuple[np.ndarray, str]:
    """0/1 at the horizon when nobody is censored before it, else pseudo-observations."""
    label = mx.horizon_label(time, event, horizon)
    if not np.isnan(label).any() and not ((event >= 2) & (time < horizon)).any():
        return label, "binary"
    return cz.pseudo_observations(time, event, horizon), "pseudo"


def point_metrics(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    *,
    risk_matrix: np.ndarray | None = None,
    smooth: bool = True,
    collector: _Collector | None = None,
    ibs_from_zero: bool = False,
) -> tuple[dict[str, float], list[str]]:
    """Every metric at ``horizon``; ``risk_matrix`` (persons x :func:`ibs_times`, with
    ``from_zero=ibs_from_zero``) adds the IBS."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(int)
    risk = mx.check_risk(risk)
    if len(time) != len(risk):
        raise AnalysisError(f"{len(risk)} predictions for {len(time)} persons")
    col = collector or _Collector()
    status = (event == 1).astype(int)
    label = mx.horizon_label(time, event, horizon)
    ok = ~np.isnan(label)
    y, p = label[ok], risk[ok]
    out: dict[str, Any] = {
        "n": float(len(time)),
        "events": float(status.sum()),
        "n_evaluable": float(ok.sum()),
        "c_harrell": col.run("c_harrell", lambda: harrell_c(time, status, risk)),
        "c_uno": col.run("c_uno", lambda: uno_c(time, status, risk, horizon)),
        "auroc": col.run("auroc", lambda: mx.auroc(y, p)),
        "auprc": col.run("auprc", lambda: mx.auprc(y, p)),
        "brier": col.run("brier", lambda: mx.brier(y, p)),
        "scaled_brier": col.run("scaled_brier", lambda: mx.scaled_brier(y, p)),
    }
    one = np.ones((1, len(time)))
    iw = col.run("IPCW", lambda: cz.censoring_weights(time, status, horizon, one))
    if iw is not None:
        out["auc_td"] = col.run("auc_td", lambda: cz.auc_td(time, status, risk, horizon, ipcw=iw))
        out["brier_ipcw"] = col.run("brier_ipcw", lambda: cz.brier_ipcw(time, status, risk, horizon, ipcw=iw))
        out["ipa"] = col.run("ipa", lambda: cz.ipa(time, status, risk, horizon, ipcw=iw))
    if risk_matrix is not None:
        grid = ibs_times(horizon, from_zero=ibs_from_zero)
        if risk_matrix.shape != (len(time), len(grid)):
            raise AnalysisError(
                f"ibs: the risk matrix has shape {risk_matrix.shape}; expected {(len(time), len(grid))} "
                f"(persons x ibs_times(horizon, from_zero={ibs_from_zero}))"
            )
        out["ibs"] = col.run("ibs", lambda: cz.integrated_brier(time, status, risk_matrix, grid))
    observed = cz.km_risk(time, status, horizon)
    out["observed_risk"] = float(observed)
    out["mean_predicted_risk"] = float(risk.mean())
    out["o_e_ratio"] = float(observed) / float(risk.mean()) if risk.mean() > 0 else None
    if out["o_e_ratio"] is None:
        col.warnings.append("o_e_ratio: every predicted risk is 0")
    yc, _ = _outcome_for_calibration(time, event, horizon)
    rc = col.run("calibration", lambda: mx.recalibration(yc, risk))
    if rc is not None:
        out["citl"], out["calibration_intercept"], out["calibration_slope"] = rc.citl, rc.intercept, rc.slope
        out["citl_lower"], out["citl_upper"] = rc.ci("citl")
        out["calibration_slope_lower"], out["calibration_slope_upper"] = rc.ci("slope")
    if smooth:
        sc = col.run("smoothed calibration", lambda: smoothed_calibration(risk, yc))
        if sc is not None:
            out.update({"ici": sc.ici, "e50": sc.e50, "e90": sc.e90, "emax": sc.emax})
    clean = {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}
    for k, v in out.items():
        if v is not None and not np.isfinite(v):
            col.warnings.append(f"{k}: not finite on these data; left out")
    if (event >= 2).any():
        msg = (
            "competing events are treated as censored in the Kaplan-Meier and censoring-weighted "
            "metrics (net risk); the 0/1 label counts them as event-free"
        )
        if msg not in col.warnings:
            col.warnings.append(msg)
    return clean, col.warnings


def bootstrap_intervals(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    *,
    replicates: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[dict[str, float], list[str]]:
    """Percentile bootstrap intervals ``<metric>_lower``/``_upper`` for :data:`BOOTSTRAPPED`."""
    time = np.asarray(time, float)
    status = (np.asarray(event).astype(int) == 1).astype(int)
    risk = np.asarray(risk, float)
    n = len(time)
    if replicates <= 0:
        return {}, []
    rng = np.random.default_rng(seed)
    W = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(float)
    label = mx.horizon_label(time, np.asarray(event), horizon)
    ok = ~np.isnan(label)
    col = _Collector()
    reps: dict[str, Any] = {
        "c_harrell": col.run("c_harrell", lambda: harrell_c(time, status, risk, W)),
        "c_uno": col.run("c_uno", lambda: uno_c(time, status, risk, horizon, W)),
        "auroc": col.run("auroc", lambda: mx.auroc(label[ok], risk[ok], W[:, ok])),
        "auprc": col.run("auprc", lambda: mx.auprc(label[ok], risk[ok], W[:, ok])),
        "brier": col.run("brier", lambda: mx.brier(label[ok], risk[ok], W[:, ok])),
        "scaled_brier": col.run("scaled_brier", lambda: mx.scaled_brier(label[ok], risk[ok], W[:, ok])),
    }
    iw = col.run("IPCW", lambda: cz.censoring_weights(time, status, horizon, W))
    if iw is not None:
        reps["auc_td"] = col.run("auc_td", lambda: cz.auc_td(time, status, risk, horizon, W, ipcw=iw))
        reps["brier_ipcw"] = col.run(
            "brier_ipcw", lambda: cz.brier_ipcw(time, status, risk, horizon, W, ipcw=iw)
        )
        reps["ipa"] = col.run("ipa", lambda: cz.ipa(time, status, risk, horizon, W, ipcw=iw))
    obs = col.run("o_e_ratio", lambda: cz.km_risk(time, status, horizon, W))
    if obs is not None:
        reps["o_e_ratio"] = np.asarray(obs) / ((W * risk).sum(axis=1) / W.sum(axis=1))
    alpha = (1 - level) / 2
    out: dict[str, float] = {}
    notes: list[str] = []
    for k, v in reps.items():
        if v is None:
            continue
        v = np.asarray(v, float)
        good = v[np.isfinite(v)]
        if len(good) < 0.9 * replicates:
            notes.append(
                f"{k}: bootstrap interval not given ({replicates - len(good)} of {replicates} replicates "
                "undefined, e.g. a replicate with one outcome class)"
            )
            continue
        out[f"{k}_lower"], out[f"{k}_upper"] = (float(x) for x in np.quantile(good, [alpha, 1 - alpha]))
    return out, notes


@dataclass(frozen=True)
class Assessment:
    """Metrics, tables and curves of one set of predictions; ``to_dict`` is what results.json holds."""

    metrics: dict[str, float]
    warnings: tuple[str, ...]
    calibration_outcome: str  # "binary" (nobody censored before h) or "pseudo"
    deciles: tuple[dict[str, Any], ...]
    curve: tuple[dict[str, float], ...]
    thresholds: tuple[dict[str, Any], ...]
    decision_curve: tuple[dict[str, Any], ...]
    roc: dict[str, np.ndarray]  # for plots only: never written to results

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibration_outcome": self.calibration_outcome,
            "calibration_deciles": list(self.deciles),
            "calibration_curve": list(self.curve),
            "thresholds": list(self.thresholds),
            "decision_curve": list(self.decision_curve),
            "warnings": list(self.warnings),
        }


def assess(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    *,
    risk_matrix: np.ndarray | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    policy: DisclosurePolicy | None = None,
    ibs_from_zero: bool = False,
) -> Assessment:
    """Everything about one set of predictions at ``horizon`` (see the module docstring)."""
    policy = policy or DisclosurePolicy(enabled=False)
    time = np.asarray(time, float)
    event = np.asarray(event).astype(int)
    risk = mx.check_risk(risk)
    metrics, warnings = point_metrics(
        time, event, risk, horizon, risk_matrix=risk_matrix, ibs_from_zero=ibs_from_zero
    )
    cis, notes = bootstrap_intervals(time, event, risk, horizon, replicates=bootstrap, seed=seed)
    metrics.update(cis)
    warnings = [*warnings, *notes]
    yc, kind = _outcome_for_calibration(time, event, horizon)
    col = _Collector(warnings)
    sc = col.run("smoothed calibration", lambda: smoothed_calibration(risk, yc))
    curve: tuple[dict[str, float], ...] = ()
    if sc is not None:
        pick = np.unique(np.linspace(0, len(sc.grid) - 1, min(len(sc.grid), 100)).round().astype(int))
        curve = tuple(
            {"predicted_risk": float(sc.grid[i]), "observed_risk": float(sc.curve[i])} for i in pick
        )
    status = (event == 1).astype(int)
    thr = np.asarray(thresholds, float)
    rows = cz.threshold_table_km(time, status, risk, horizon, thr)
    dca_rows = cz.threshold_table_km(time, status, risk, horizon, DCA_GRID)
    prevalence = cz.km_risk(time, status, horizon)
    treat_all = mx.net_benefit_treat_all(float(prevalence), DCA_GRID)
    dca = tuple(
        {
            "threshold": float(t),
            "net_benefit": _released(r, policy)["net_benefit"],
            "treat_all": float(a),
            "treat_none": 0.0,
        }
        for t, r, a in zip(DCA_GRID, dca_rows, treat_all, strict=True)
        if t <= max(0.05, float(np.quantile(risk, 0.99)))
    )
    return Assessment(
        metrics=metrics,
        warnings=tuple(dict.fromkeys(col.warnings)),
        calibration_outcome=kind,
        deciles=tuple(decile_table(time, event, risk, horizon, policy)),
        curve=curve,
        thresholds=tuple(_released(r, policy) for r in rows),
        decision_curve=dca,
        roc=_roc_points(time, event, risk, horizon),
    )


def _released(row: dict[str, float], policy: DisclosurePolicy) -> dict[str, Any]:
    """A threshold row as released: rates are hidden when either side holds a small count."""
    out: dict[str, Any] = {k: v for k, v in row.items() if k not in ("n_positive", "n_negative")}
    small = policy.is_small(row["n_positive"]) or policy.is_small(row["n_negative"])
    if small:
        for k in ("positive_fraction", "sensitivity", "specificity", "ppv", "npv", "net_benefit"):
            out[k] = None
        out["suppressed"] = True
    out["n_positive"] = None if small else policy.count(row["n_positive"])  # else n - it is the small one
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}


def decile_table(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float, policy: DisclosurePolicy
) -> list[dict[str, Any]]:
    """Mean predicted and Kaplan-Meier observed risk (95% CI) per decile of predicted risk."""
    edges = np.unique(np.quantile(risk, np.linspace(0, 1, 11)))
    groups = np.clip(np.searchsorted(edges, risk, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for g in np.unique(groups):
        sel = groups == g
        curve = km_curve(time[sel], (event[sel] == 1).astype(int))
        s, lo, hi, _ = curve.at(horizon)
        n = int(sel.sum())
        row: dict[str, Any] = {
            "group": int(g) + 1,
            "n": policy.count(n),
            "predicted_risk": float(risk[sel].mean()),
            "observed_risk": 1.0 - s,
            "observed_lower": 1.0 - hi,
            "observed_upper": 1.0 - lo,
        }
        ev = int((event[sel] == 1).sum())
        if policy.is_small(n) or policy.is_small(ev) or policy.is_small(n - ev):
            row.update({"observed_risk": None, "observed_lower": None, "observed_upper": None})
            row["suppressed"] = True
        rows.append(row)
    return rows


def _roc_points(
    time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float
) -> dict[str, np.ndarray]:
    """ROC points for the plot: among evaluable persons, and the IPCW cumulative/dynamic curve."""
    out: dict[str, np.ndarray] = {}
    label = mx.horizon_label(time, event, horizon)
    ok = ~np.isnan(label)
    y, p = label[ok], risk[ok]
    if len(y) and 0 < y.sum() < len(y):
        out["fpr"], out["tpr"] = _roc(y, p, np.ones(len(y)))
    status = (event == 1).astype(int)
    try:
        case, control, ipcw = cz.censoring_weights(time, status, horizon, np.ones((1, len(time))))
    except AnalysisError:
        return out
    if case.any() and control.any():
        keep = case | control
        w = np.where(case, ipcw[0], 1.0)[keep]
        out["fpr_td"], out["tpr_td"] = _roc(case[keep].astype(float), risk[keep], w)
    return out


def _roc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-p, kind="mergesort")
    ps = p[order]
    last = np.concatenate([np.nonzero(np.diff(ps))[0], [len(ps) - 1]])
    tp = np.cumsum(w[order] * y[order])[last]
    fp = np.cumsum(w[order] * (1 - y[order]))[last]
    return np.concatenate([[0.0], fp / fp[-1]]), np.concatenate([[0.0], tp / tp[-1]])
