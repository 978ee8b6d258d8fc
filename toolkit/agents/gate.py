"""Validation gates: the study's declared conditions, checked against a run's results."""

from __future__ import annotations

from typing import Any

from toolkit.errors import GateError
from toolkit.study.results import ModelResult, StudyResults
from toolkit.study.spec import GateSpec


def check_gates(gates: list[GateSpec], model: str, results: StudyResults) -> list[dict[str, Any]]:
    """Evaluate every gate that applies to ``model``; raise :class:`GateError` listing failures."""
    mres = results.models.get(model)
    if mres is None:
        raise GateError(f"gates: results have no model {model!r}; available: {sorted(results.models)}")
    metrics = mres.metrics
    outcome: list[dict[str, Any]] = []
    for g in gates:
        if g.model is not None and g.model != model:
            continue
        if g.c_index_lower_min is not None:
            v = metrics.get("c_harrell_lower")
            outcome.append(_ge("c_index_lower_min", v, g.c_index_lower_min))
        if g.auroc_lower_min is not None:
            outcome.append(_ge("auroc_lower_min", metrics.get("auroc_lower"), g.auroc_lower_min))
        if g.min_events is not None:
            outcome.append(_ge("min_events", mres.events, g.min_events))
        if g.o_e_ratio_range is not None:
            v = metrics.get("oof_o_e_ratio")
            lo, hi = g.o_e_ratio_range
            ok = v is not None and lo <= v <= hi
            outcome.append(
                {
                    "gate": "o_e_ratio_range",
                    "value": v,
                    "required": [lo, hi],
                    "passed": ok,
                    "shortfall": None if ok or v is None else (lo - v if v < lo else v - hi),
                }
            )
        if g.calibration_slope_range is not None:
            outcome.append(
                _in_range(
                    "calibration_slope_range", metrics.get("oof_calibration_slope"), g.calibration_slope_range
                )
            )
        if g.subgroup_gap_max is not None:
            outcome.append(_subgroup_gap(g.subgroup_gap_metric, g.subgroup_gap_max, mres))
        if g.external_validation_required:
            ext = mres.external
            outcome.append(
                {
                    "gate": "external_validation_required",
                    "value": None if ext is None else ext.get("split"),
                    "required": "an external validation split",
                    "passed": ext is not None,
                    "shortfall": None,
                    "detail": None
                    if ext is not None
                    else "the results have no external validation; declare validation.external in study.yaml",
                }
            )
    failed = [o for o in outcome if not o["passed"]]
    if failed:
        lines = []
        for f in failed:
            by = f" (short by {f['shortfall']:.4g})" if isinstance(f.get("shortfall"), float | int) else ""
            detail = f": {f['detail']}" if f.get("detail") else ""
            lines.append(
                f"  - gate {f['gate']} failed: value {f['value']} vs required {f['required']}{by}{detail}"
            )
        raise GateError(
            f"model {model!r} failed {len(failed)} gate(s); refusing to package:\n" + "\n".join(lines)
        )
    return outcome


def _in_range(name: str, value: Any, bounds: tuple[float, float]) -> dict[str, Any]:
    lo, hi = bounds
    ok = value is not None and lo <= float(value) <= hi
    return {
        "gate": name,
        "value": value,
        "required": [lo, hi],
        "passed": ok,
        "shortfall": None if ok or value is None else (lo - value if value < lo else value - hi),
        "detail": "the results have no out-of-fold calibration slope" if value is None else None,
    }


def _subgroup_gap(metric: str, limit: float, mres: ModelResult) -> dict[str, Any]:
    """The largest gap in ``metric`` across the levels of any declared subgroup must be <= limit."""
    gaps = [
        g for g in (mres.subgroups.gaps if mres.subgroups else []) if g.metric == metric and g.gap is not None
    ]
    worst = max(gaps, key=lambda g: float(g.gap or 0.0)) if gaps else None
    value = None if worst is None else worst.gap
    ok = value is not None and value <= limit
    if worst is None:
        detail = f"the results have no subgroup gap in {metric} (declare cohort subgroups)"
    else:
        detail = f"{metric} ranges from {worst.lowest} to {worst.highest} across {worst.variable}"
    return {
        "gate": f"subgroup_gap_max[{metric}]",
        "value": value,
        "required": limit,
        "passed": ok,
        "shortfall": None if ok or value is None else float(value) - limit,
        "detail": None if ok else detail,
    }


def _ge(name: str, value: Any, required: float) -> dict[str, Any]:
    ok = value is not None and float(value) >= required
    return {
        "gate": name,
        "value": value,
        "required": required,
        "passed": ok,
        "shortfall": None if ok or value is None else float(required) - float(value),
    }
