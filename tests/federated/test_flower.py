"""Integration: three real site processes (Flower SuperNodes) and a SuperLink on loopback.

The same study runs over Flower's deployment runtime and over the in-process transport: the
results are identical.  A site whose own settings forbid exact per-time counts refuses an exact
run, and the coordinator reports the site, the round and the reason; nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.federated import InProcessTransport, RunOptions, SiteLimits, SiteNode, run_federated
from toolkit.federated.flower import FlowerDeployment, runtime_available

from .conftest import make_study
from .test_federated_equal import assert_same

pytestmark = pytest.mark.slow

ANALYSES = [
    {"name": "km_sex", "type": "kaplan_meier", "by": "sex", "times": [365]},
    {"name": "cox", "type": "cox", "ties": "breslow", "covariates": ["age"]},
    {"name": "logit", "type": "logistic", "outcome": "label_365d", "covariates": ["age", "copd"]},
]


def test_three_site_processes_on_loopback_match_in_process(
    site_registries: dict[str, Path], pooled_registry: Path, tmp_path: Path
) -> None:
    if not runtime_available():
        pytest.fail("Flower runtime missing: run `make install` (installs flwr 1.42 into .venv/flower)")
    study = make_study(tmp_path / "study", pooled_registry, ANALYSES)
    limits = {s: SiteLimits(allow_exact=s != "SITE03") for s in site_registries}
    expected = run_federated(
        study,
        InProcessTransport([SiteNode(p, name=s, limits=limits[s]) for s, p in site_registries.items()]),
        out=tmp_path / "inprocess",
    ).results.to_json()
    with FlowerDeployment(site_registries, limits=limits) as dep:
        assert sorted(p.name for p in dep.procs) == [
            "superlink",
            "supernode-SITE01",
            "supernode-SITE02",
            "supernode-SITE03",
        ]
        ok = dep.run(study, out=tmp_path / "flower", options=RunOptions(timeout_s=120), timeout_s=300)
        assert ok["ok"], dep.logs()
        refused = dep.run(
            study, out=tmp_path / "exact", options=RunOptions(exact=True, timeout_s=120), timeout_s=300
        )
    import json

    got = json.loads((tmp_path / "flower" / "results.json").read_text())
    assert got["federated"]["transport"] == "flower" and got["federated"]["sites"] == sorted(site_registries)
    assert got["federated"]["rounds"] == expected["federated"]["rounds"]
    assert_same(expected["analyses"], got["analyses"], rel=1e-12)
    assert got["cohort"] == expected["cohort"]
    # the site that does not allow exact counts refuses; the coordinator names it and the round
    assert not refused["ok"] and refused["type"] == "SiteRefusal"
    assert refused["site"] == "SITE03" and refused["round"] == 1
    assert "allow_exact" in refused["error"] and "site SITE03" in refused["error"]
    assert not (tmp_path / "exact" / "results.json").exists()
