"""The model card of an agent bundle: intended use and ONC HTI-1-style source attributes,
performance with confidence intervals, calibration, and the evidence it came from."""

from __future__ import annotations

from typing import Any

from toolkit.agents.contract import AgentContract
from toolkit.study.counts import count, model_counts
from toolkit.study.results import StudyResults


def _fmt(v: Any, digits: int = 3) -> str:
    return "NA" if v is None else f"{float(v):.{digits}f}"


def model_card_markdown(contract: AgentContract, manifest: dict[str, Any], results: StudyResults) -> str:
    m = manifest["performance"]
    mres = results.model(contract.source.model)
    lines = [
        f"# Model card: {contract.title}",
        "",
        f"Agent `{contract.name}` version `{manifest['version']}`; model `{manifest['model']['registered_model']}` "
        f"version {manifest['model']['model_version']} ({manifest['model']['type']}), MLflow run "
        f"`{manifest['model']['mlflow_run_id']}`.",
        "",
        "## Intended use",
        contract.intended_use,
        "",
        "## Target population",
        contract.target_population,
        "",
        "## Out-of-scope uses",
        *([f"- {x}" for x in contract.out_of_scope] or ["- none declared"]),
        "",
        "## Contraindications",
        *([f"- {x}" for x in contract.contraindications] or ["- none declared"]),
        "",
        "## Output",
        f"Absolute {contract.output.horizon_label} risk of {contract.output.outcome_label}; risk groups: "
        + ", ".join(f"{g.label} (< {g.upper:.0%})" for g in contract.output.risk_groups)
        + ".",
        "",
        "## Inputs",
        "| input | type | unit | valid range | source (FHIR R4) | when missing |",
        "|---|---|---|---|---|---|",
    ]
    for i in contract.inputs:
        src = "—" if i.fhir is None else f"{i.fhir.resource} {' '.join(i.fhir.codes) or i.fhir.field or ''}"
        miss = "refuse" if i.missing == "refuse" else f"impute {i.missing.impute} (stated on the card)"
        rng = "" if i.range is None else f"{i.range[0]}–{i.range[1]}"
        lines.append(f"| {i.name} | {i.type} | {i.unit or ''} | {rng} | {src} | {miss} |")
    lines += [
        "",
        "## Development data and validation (source attributes)",
        f"- Study: `{results.study}` — {results.title}",
        f"- Registry: {results.registry.source} (digest `{results.registry.digest}`)",
        f"- Cohort: {count(results.cohort.n)} persons, {count(results.cohort.events)} outcome events over all "
        "follow-up",
        f"- Horizon: {mres.horizon_days:g} days; internal validation by cross-validation.",
        *(f"- {line}" for line in model_counts(mres, contract.output.outcome_label).lines()),
        "",
        "## Performance (cross-validated, 95% CI)",
        f"- C-index: {_fmt(m.get('c_harrell_mean'))} ({_fmt(m.get('c_harrell_lower'))}–{_fmt(m.get('c_harrell_upper'))})",
        f"- AUROC at the horizon: {_fmt(m.get('auroc_mean'))} ({_fmt(m.get('auroc_lower'))}–{_fmt(m.get('auroc_upper'))})",
        f"- Brier score at the horizon: {_fmt(m.get('brier_mean'))}",
        f"- Observed/expected risk (out-of-fold): {_fmt(m.get('oof_o_e_ratio'), 2)}",
        "",
        "## Calibration (deciles of out-of-fold predicted risk)",
        "| predicted | observed |",
        "|---|---|",
        *[f"| {_fmt(c.predicted_risk)} | {_fmt(c.observed_risk)} |" for c in mres.calibration_deciles],
        "",
        "## Gates",
        *(
            [
                f"- {g['gate']}: {'passed' if g['passed'] else 'FAILED'} (value {g['value']}, required {g['required']})"
                for g in manifest.get("gates", [])
            ]
            or ["- no gates declared"]
        ),
        "",
        "## Maintenance and owners",
        *[f"- {o.name} <{o.contact}>" for o in contract.owners],
        "",
        "Disclosure control: "
        + ("on" if results.disclosure.enabled else "OFF")
        + f" (minimum cell {results.disclosure.min_cell}).",
        "",
    ]
    return "\n".join(lines)
