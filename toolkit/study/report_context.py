"""What the report's own sections need beyond results.json: predictor definitions, the TRIPOD+AI
checklist, the author statements and model-card details (all derived from the spec and results)."""

from __future__ import annotations

from typing import Any

from toolkit.study.counts import count, days, model_counts
from toolkit.study.dictionary import DataDictionary, dictionary_of
from toolkit.study.results import StudyResults
from toolkit.study.spec import StudySpec
from toolkit.study.tripod import SECTION_TITLES, STATUS_LABEL, ReportStatements, tripod_checklist

MODEL_TYPES = {
    "cox": "Cox proportional hazards; risk = 1 − exp(−H0(horizon) · exp(linear predictor))",
    "xgboost_survival": "gradient-boosted trees with a Cox objective (XGBoost); Breslow baseline hazard for absolute risk",
}

STATEMENT_LABELS = {
    "abstract": "Abstract",
    "background": "Background",
    "intended_use": "Intended use",
    "out_of_scope": "Out-of-scope uses",
    "health_inequalities": "Health inequalities",
    "data_source": "Data source",
    "data_dates": "Data dates",
    "setting": "Setting",
    "treatments": "Treatments",
    "data_preparation": "Data preparation",
    "outcome_assessment": "Outcome assessment",
    "predictors": "Choice of predictors",
    "predictor_assessment": "Predictor assessment",
    "sample_size": "Sample size",
    "fairness": "Fairness",
    "ethics": "Ethics",
    "funding": "Funding",
    "conflicts": "Conflicts of interest",
    "protocol": "Protocol",
    "registration": "Registration",
    "data_sharing": "Data sharing",
    "code_sharing": "Code sharing",
    "patient_involvement": "Patient and public involvement",
    "interpretation": "Interpretation",
    "input_data_handling": "Poor or missing inputs in use",
    "user_requirements": "Users and expertise",
    "next_steps": "Next steps",
}


def _codes(f: Any, concept_sets: dict[str, Any]) -> str:
    if f.codes:
        return ", ".join(f.codes)
    codes = concept_sets.get(f.concept)
    listed = f" ({', '.join(codes)})" if isinstance(codes, list) else ""
    return f"concept set {f.concept}{listed}"


def _window(w: Any) -> str:
    start = "any time before" if w.start == "all" else f"from day {w.start_days:g}"
    return f"{start} to day {w.end_days:g}"


AGG_TEXT = {
    "present": "recorded at least once (yes/no)",
    "count": "number of records",
    "last": "last value",
    "first": "first value",
    "mean": "mean value",
    "min": "lowest value",
    "max": "highest value",
    "sum": "sum of values",
    "slope": "slope of values per day",
}


def predictor_rows(spec: StudySpec) -> list[dict[str, str]]:
    """One row per predictor: its name, label and unit (data dictionary), where it comes from and
    how it is computed."""
    sets = dict(getattr(spec.cohort, "concept_sets", {}) or {})
    d = dictionary_of(spec)
    rows = [
        {"name": s, "source": "cohort / registry", "definition": "value at index (static attribute)"}
        for s in spec.features.static
    ]
    for w in spec.features.windows:
        definition = f"{AGG_TEXT.get(w.agg, w.agg)} of {_codes(w, sets)}, {_window(w.window)}"
        if w.value is not None and w.value.unit:
            definition += f", unit {w.value.unit}"
        if w.transform:
            definition += f"; {w.transform}-transformed"
        rows.append({"name": w.name, "source": "registry events", "definition": definition})
    return [{**r, "label": d.label(r["name"]), "unit": d.unit(r["name"]) or ""} for r in rows]


def table1_view(entry: dict[str, Any], d: DataDictionary) -> dict[str, Any]:
    """Table 1 as the report shows it: group columns named by the dictionary in its order
    (Overall first), each row's variable and level by their labels, levels in order (the rows
    themselves, and results.json, are as computed)."""
    by = entry.get("by")
    groups = []
    for g in entry["groups"]:
        level = g.split("=", 1)[1] if by and g.startswith(f"{by}=") else None
        groups.append({"key": g, "level": level, "label": g if level is None else d.level(str(by), level)})
    if by:
        order = d.order(by, [g["level"] for g in groups if g["level"] is not None])
        groups.sort(key=lambda g: -1 if g["level"] is None else order.index(g["level"]))
    return {
        "groups": groups,
        "rows": _labelled_rows(entry["rows"], d),
        "by_label": d.with_unit(by) if by else None,
    }


def _row_label(row: dict[str, Any], d: DataDictionary, *, one_row: bool = False) -> str:
    """A row's label from the dictionary; ``one_row``: a yes/no variable's single row, named by
    the variable alone."""
    v, raw = row.get("variable"), str(row["label"])
    if not v:
        return raw
    level = row.get("level")
    prefix = f"{v} = {level}" if level is not None else v
    rest = raw[len(prefix) :] if raw.startswith(prefix) else ""
    if level is not None and not one_row:
        return f"{d.label(v)}: {d.level(v, level)}{rest}"
    return f"{d.with_unit(v) if 'missing' not in rest and not one_row else d.label(v)}{rest}"


def _labelled_rows(rows: list[dict[str, Any]], d: DataDictionary) -> list[dict[str, Any]]:
    """The rows labelled, each variable's level rows in the dictionary's (or natural) order in
    place of the sorted, and a yes/no variable in one row."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(rows):
        j = i
        while (
            j < len(rows)
            and rows[j].get("level") is not None
            and rows[j].get("variable") == rows[i].get("variable")
        ):
            j += 1
        if j == i:
            out.append({**rows[i], "label": _row_label(rows[i], d)})
            i += 1
            continue
        block = rows[i:j]
        order = d.order(str(block[0]["variable"]), [str(r["level"]) for r in block])
        block = sorted(block, key=lambda r: order.index(str(r["level"])))
        out += _one_row_if_binary(block, d) or [{**r, "label": _row_label(r, d)} for r in block]
        i = j
    return out


#: The levels of a yes/no variable as results.json writes them (0/1 indicators, booleans)
_BINARY = ({"0", "1"}, {"0.0", "1.0"}, {"False", "True"}, {"false", "true"})


def _one_row_if_binary(block: list[dict[str, Any]], d: DataDictionary) -> list[dict[str, Any]]:
    """A yes/no variable's one row, its "yes" count (the "no" count is its complement in each
    column, shown by the group's n and the missing row), the test's p moved to it; [] for any
    other variable."""
    levels = {str(r["level"]) for r in block}
    if len(block) != 2 or levels not in _BINARY:
        return []
    no, yes = sorted(block, key=lambda r: str(r["level"]).lower() in ("1", "1.0", "true"))
    row = {**yes, "label": _row_label(yes, d, one_row=True)}
    for key in ("p", "test"):
        if row.get(key) is None and no.get(key) is not None:
            row[key] = no[key]
    return [row]


def method_facts(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """How an analysis was computed, from the scalar keys of its entry that its own section does
    not show: (key, sentence part), for the line under the section."""
    e = entry
    facts: list[tuple[str, str]] = []
    if e.get("conf_type") or e.get("conf_level"):
        level = f"{100 * float(e['conf_level']):g}%" if e.get("conf_level") is not None else ""
        facts += [("conf_type", f"{level} confidence intervals, {e.get('conf_type') or 'plain'} scale"),
                  ("conf_level", "")]  # fmt: skip
    if e.get("estimator"):
        facts.append(("estimator", f"estimator: {e['estimator']}"))
    if e.get("variance"):
        facts.append(("variance", f"variance: {e['variance']}"))
    if e.get("iterations") is not None:
        facts.append(("iterations", f"Newton–Raphson converged in {e['iterations']} iterations"))
    if e.get("loglik") is not None:
        null = e.get("loglik_null")
        facts += [("loglik", f"log-likelihood {e['loglik']:.2f}" + (f" (null model {null:.2f})" if null is not None else "")),
                  ("loglik_null", "")]  # fmt: skip
    if "robust" in e or "strata" in e:
        facts += [("robust", "robust (sandwich) standard errors" if e.get("robust") else "model-based standard errors"),
                  ("strata", f"stratified by {e['strata']}" if e.get("strata") else "no strata")]  # fmt: skip
    if "cause" in e:
        facts.append(("cause", f"event code modelled: {e['cause']}"))
    if e.get("metric"):
        facts.append(("metric", f"metric: {e['metric']}"))
    return [(k, t) for k, t in facts if k in e and (t or k in ("conf_level", "loglik_null"))]


def ordered_groups(
    groups: list[dict[str, Any]], by: str | None, d: DataDictionary, *, key: str = "group"
) -> list[dict[str, Any]]:
    """Groups (or subgroup cells, ``key="level"``) in the dictionary's (or natural) order."""
    if not by:
        return groups
    order = d.order(by, [str(g[key]) for g in groups])
    return sorted(groups, key=lambda g: order.index(str(g[key])) if str(g[key]) in order else len(order))


def kind_context(d: DataDictionary) -> dict[str, Any]:
    """What the kinds' report partials use besides their entry (``a``), spec (``a_spec``), name,
    results path (``p``), images and ``min_cell``: the data dictionary and its helpers."""
    return {
        "d": d,  # d.label(name), d.with_unit(name), d.term(term), d.level(name, level)
        "table1_view": lambda entry: table1_view(entry, d),
        "ordered_groups": lambda groups, by: ordered_groups(groups, by, d),
        "method_facts": method_facts,
        "cause_name": lambda code: d.level("event", code) if "event" in d.entries else f"cause {code}",
        "in_order": lambda cells, var: ordered_groups(cells, var, d, key="level"),
    }


def report_context(spec: StudySpec, results: StudyResults) -> dict[str, Any]:
    outcome = getattr(spec.cohort, "outcome", None)
    outcome_name = outcome.name if outcome is not None else "outcome"
    statements = [
        {"key": k, "label": STATEMENT_LABELS.get(k, k), "text": getattr(spec.report, k)}
        for k in ReportStatements.model_fields
        if getattr(spec.report, k)
    ]
    return {
        **kind_context(dictionary_of(spec)),
        "predictors": predictor_rows(spec),
        "checklist": tripod_checklist(spec, results),
        "status_label": STATUS_LABEL,
        "section_titles": {
            **SECTION_TITLES,
            **{f"#analysis-{name}": name for name in results.analyses},
        },
        "statements": statements,
        "outcome_name": outcome_name,
        "subgroups": list(getattr(spec.cohort, "subgroups", []) or []),
        "model_specs": {m.name: m for m in spec.models},
        "model_types": MODEL_TYPES,
        # what each horizon model's numbers rest on, in the words every place uses (study/counts.py)
        "model_counts": {name: model_counts(m, outcome_name) for name, m in results.models.items()},
        "horizon_counts": [
            {"days": days(h.days), "events": count(h.events_at_horizon), "evaluable": count(h.n_evaluable)}
            for h in results.cohort.horizons
            if "n_evaluable" in h.model_fields_set
        ],
    }
