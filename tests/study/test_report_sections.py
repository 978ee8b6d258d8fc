"""Nothing computed goes unshown: every section of results.json has its place in the report.

The sections are derived from results.json itself (its top-level keys, the cohort's, each
analysis and each key of its entry, each key of each model), so a key added to results.json fails
this test until the report shows it.  A place is an element of report.html that carries the
section's path in its ``data-results`` attribute (the templates mark what they show).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from toolkit.study.report import render_report

MARK = re.compile(r'data-results="([^"]*)"')


def sections(results: dict[str, Any]) -> set[str]:
    """Every section of a results.json, as a dotted path."""
    out = {k for k in results if k not in ("cohort", "analyses", "models")}
    out |= {f"cohort.{k}" for k in results["cohort"]}
    for name, entry in results["analyses"].items():
        out |= {f"analyses.{name}", *(f"analyses.{name}.{k}" for k in entry)}
    for name, model in results["models"].items():
        out |= {f"models.{name}.{k}" for k in model}
    return out


def places(html: str) -> set[str]:
    return {p for m in MARK.findall(html) for p in m.split()}


def unshown(out: Path) -> list[str]:
    import json

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return sorted(sections(results) - places((out / "report.html").read_text(encoding="utf-8")))


def test_every_section_of_the_gbsg2_results_has_its_place(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    _, _, root = gbsg2_run
    assert unshown(root / "out") == []


def test_the_check_finds_a_section_without_a_place(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    results = run.results.to_json()
    html = render_report(run.spec, run.results, run.plots, run.policy, run.cohort.attrition)
    assert sections(results) <= places(html)
    # a model block the templates do not know (as a new results.json key would be) has no place
    results["models"]["cox_5y"]["new_block"] = {}
    assert sections(results) - places(html) == {"models.cox_5y.new_block"}
