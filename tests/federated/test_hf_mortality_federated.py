"""studies/hf_mortality over three synthetic sites equals the pooled run.

The flagship study as written (cohort, structured, note and image features, Table 1, Kaplan-Meier
by age band, Cox) on a smaller synthetic registry with notes and DICOM images, split into its three
sites; the federated run (exact mode, every site allowing it) is compared with the pooled runner.
Its cross-validated models and the ablation are not federated and are left out of both runs.
Table 1 cells that a site withholds (its count of missing values in a group is 1..k-1) are the
one permitted difference: disclosure control at the site, reported as "withheld".
"""

from __future__ import annotations

import copy
import shutil
import warnings
from pathlib import Path

import pytest
import yaml

from toolkit.federated import (
    InProcessTransport,
    RunOptions,
    SiteLimits,
    SiteNode,
    run_federated,
    split_registry,
)

from .conftest import REPO
from .test_federated_equal import assert_same

pytestmark = pytest.mark.slow


def test_hf_mortality_federated_over_three_sites_equals_pooled(tmp_path: Path) -> None:
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize
    from toolkit.study.runner import run_study

    registry = synthesize(tmp_path / "reg" / "hf.duckdb", SynthConfig(1200, 3, 7))
    sites = split_registry(registry, tmp_path / "sites")
    study = tmp_path / "hf_mortality"
    shutil.copytree(REPO / "studies/hf_mortality", study)
    spec = yaml.safe_load((study / "study.yaml").read_text())
    federable = {"table1", "kaplan_meier", "cox", "logrank", "rmst", "cumulative_incidence", "logistic"}
    spec["analyses"] = [a for a in spec["analyses"] if a["type"] in federable]
    spec.pop("models", None)
    spec.pop("gates", None)
    (study / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert {a["type"] for a in spec["analyses"]} >= {"table1", "kaplan_meier", "cox"}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom notes about the synthetic files' long values
        pooled = run_study(
            study, out=tmp_path / "pooled", registry=registry, use_cache=False
        ).results.to_json()
        nodes = [SiteNode(p, name=s, limits=SiteLimits(allow_exact=True)) for s, p in sites.items()]
        fed = run_federated(
            study, InProcessTransport(nodes), out=tmp_path / "fed", options=RunOptions(exact=True)
        ).results.to_json()
    assert fed["federated"]["sites"] == ["SITE01", "SITE02", "SITE03"]
    assert set(fed["analyses"]) == set(pooled["analyses"])
    withheld = 0
    for name in pooled["analyses"]:
        p, f = pooled["analyses"][name], fed["analyses"][name]
        if p.get("type") == "table1":
            p, f, n = _drop_withheld(p, f)
            withheld += n
        elif "missing_data" in p:
            p, f = _drop_site_withheld(p, f)
        assert_same(p, f, name)
    cells = sum(
        len(r["cells"]) for a in pooled["analyses"].values() if a.get("type") == "table1" for r in a["rows"]
    )
    assert withheld < cells / 5  # ~400 persons per site: a few missing-value counts are under 10
    assert (fed["cohort"]["n"], fed["cohort"]["events"]) == (
        pooled["cohort"]["n"],
        pooled["cohort"]["events"],
    )
    assert fed["data_quality"] == pooled["data_quality"] or all(
        f["count"] is None or f == p for f, p in zip(fed["data_quality"], pooled["data_quality"], strict=True)
    )


def _drop_site_withheld(pooled: dict, fed: dict) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """A regression's missing-data statement without the counts a site withheld (1..k-1 persons
    lacking a covariate there): the federated entry has None where the pooled one has the sum."""
    p, f = copy.deepcopy(pooled), copy.deepcopy(fed)
    pm, fm = p["missing_data"], f["missing_data"]
    if fm["removed"] is None:
        pm["removed"] = None
    for pv, fv in zip(pm["variables"], fm["variables"], strict=True):
        if fv["missing"] is None:
            assert pv["missing"] is None or pv["missing"] > 0
            pv["missing"] = None
    return p, f


def _drop_withheld(pooled: dict, fed: dict) -> tuple[dict, dict, int]:  # type: ignore[type-arg]
    """Table 1 rows without the cells either run withheld (and the SMD that needs them).

    Both runs follow the same rules, but a site protects its own counts first (a missing-value
    count 1..k-1 at one site), so the federated table may withhold a cell the pooled one shows and
    then choose other complementary cells; every cell both publish must be equal, and so must the
    footnote when both withhold the same kinds of cells."""
    p, f = copy.deepcopy(pooled), copy.deepcopy(fed)
    n = 0
    for pr, fr in zip(p["rows"], f["rows"], strict=True):
        gone = {g for row in (pr, fr) for g, c in row["cells"].items() if c in ("withheld", "<10")}
        gone |= {g for row in (pr, fr) for g in (row.get("suppressed") or {})}
        for g in gone:
            n += 1
            for key in ("cells", "counts", "missing", "suppressed"):
                for row in (pr, fr):
                    if isinstance(row.get(key), dict):
                        row[key].pop(g, None)
        if gone:
            pr["smd"] = fr["smd"] = None
        for row in (pr, fr):
            if row.get("suppressed") == {}:
                del row["suppressed"]
    notes = (p.pop("disclosure_note", None), f.pop("disclosure_note", None))
    assert notes[1] is not None or n == 0  # a table that withholds says why
    return p, f, n
